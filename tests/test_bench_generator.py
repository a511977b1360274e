"""make bench-generator: the real load test, flat out against a local endpoint, per process count."""

from __future__ import annotations

import re

import pytest

from devtools import bench_generator

# Subprocesses, moto, checkov or the SageMaker SDK: make test runs it, make test-quick leaves it out.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "'0' is invalid: allowed: process counts from 1 to 64"), ("1,x", "'1,x' is not a comma-separated")],
)
def test_bad_process_counts_are_one_line(capsys: pytest.CaptureFixture[str], value: str, message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_generator.main(["--processes", value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_it_prints_the_achieved_rate_per_process_count(capsys: pytest.CaptureFixture[str]) -> None:
    # A rate any machine sends: what is checked is that the run and its row come out, not how fast.
    assert bench_generator.main(["--processes", "1", "--per-process-rps", "40", "--step-seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "offered 40 RPS per process for 2 s" in out
    (row,) = [line for line in out.splitlines() if re.match(r"\s+1\s+\d+", line)]
    achieved, ratio = float(row.split()[1]), row.split()[-2]
    assert achieved > 0 and ratio == "1.00", row
