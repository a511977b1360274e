"""The micro-batching benchmark (make bench-client's second table) runs end to end and reports what it measured."""

from __future__ import annotations

import re

import pytest

from devtools import bench_batching

pytestmark = pytest.mark.slow


def test_the_table_has_a_row_per_batch_size_with_rows_per_request_up_to_the_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_batching.main(["--sizes", "1,4", "--rows", "64", "--max-wait-us", "1000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "max_wait_us=1000" in lines[0]
    rows = {int(line.split()[0]): line.split() for line in lines[2:]}
    assert sorted(rows) == [1, 4]
    assert float(rows[1][1]) == 1.0 and 1.0 <= float(rows[4][1]) <= 4.0
    assert rows[1][-1] == "+0.00"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sizes", "2,4"], "starting with 1"),
        (["--sizes", "1,128"], "sizes from 1 to 64"),
        (["--max-wait-us", "5000"], "allowed: 0 to 1000, got 5000"),
        (["--rows", "10"], "allowed: at least 64, got 10"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        bench_batching.main(argv)
    assert raised.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(re.escape(message), error), error
