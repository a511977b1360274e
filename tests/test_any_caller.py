"""Any caller's data: numpy arrays and numpy scalars wherever the client takes rows (duck-typed: the client
imports no numpy), and the invoke command with rows that start with a negative number or a stage served by a
local endpoint on a machine without AWS configuration."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devtools.bench_client import answers_for, local_client, local_endpoint, local_session
from devtools.fake_endpoint import FakeEndpoint, stand_in
from modelpack.model_manifest import sample
from operations import invoke
from rtb_client import PROFILES, ModelSchema, RequestError, check_rows, codec_for, encode_rows, predict
from stacks.stages import load_stage

from .conftest import REPO_ROOT, offline_env

NAMES = ("a", "b", "c")
SCHEMA = ModelSchema(NAMES, "probability", 1)
MANIFEST = {"features": list(NAMES), "objective": "binary:logistic", "output": {"kind": "probability", "columns": 1}}
ROWS = [[0.5, -1.25, 369.9999], [1234567.0, 1e-07, -0.0]]


class Array:
    """An array type of no library: what the client may rely on is ``__array__`` and ``tolist``."""

    def __init__(self, rows: Any) -> None:
        self.rows = rows

    def __array__(self) -> Any:
        raise AssertionError("tolist is enough")

    def tolist(self) -> Any:
        return self.rows

    def __bool__(self) -> bool:
        raise ValueError("The truth value of an array with more than one element is ambiguous.")

    def __len__(self) -> int:
        raise AssertionError("read through tolist")


@pytest.mark.parametrize(
    "rows",
    [
        np.array(ROWS),
        [np.array(row) for row in ROWS],
        [[np.float64(value) for value in row] for row in ROWS],
        [tuple(row) for row in ROWS],
        Array(ROWS),
        [Array(row) for row in ROWS],
    ],
    ids=["2-D array", "1-D arrays", "numpy scalars", "tuples", "duck array", "duck rows"],
)
def test_every_form_of_the_same_rows_sends_the_same_request(rows: Any) -> None:
    check_rows(rows, SCHEMA)
    for profile in PROFILES:
        expected = b"".join(codec_for(profile).encode([row]) for row in ROWS)
        if profile != "inferentia":  # one row per request there
            expected = codec_for(profile).encode(ROWS)
            assert codec_for(profile).encode(rows) == expected, profile  # the codec alone takes them too
        checked = SCHEMA.checked_rows(rows, profile)
        assert checked == ROWS and all(type(value) is float for row in checked for value in row)
    assert encode_rows(rows, SCHEMA) == b"0.5,-1.25,369.9999\n1234567.0,1e-07,-0.0\n"


def test_rows_of_numpy_scalars_of_every_width_are_read_as_python_floats() -> None:
    row: list[Any] = [np.float32(0.1), np.int64(7), np.float16(2.5)]
    (checked,) = SCHEMA.checked_rows([row], "cpu")
    assert checked == [float(np.float32(0.1)), 7.0, 2.5] and all(type(value) is float for value in checked)
    assert encode_rows([row], SCHEMA) == b"0.10000000149011612,7.0,2.5\n"  # float32's value, exactly


@pytest.mark.parametrize("profile", PROFILES)
def test_predict_takes_a_2d_array_and_a_list_alike(profile: str) -> None:
    model = stand_in(MANIFEST)
    with local_endpoint(answers_for(profile, model)) as endpoint:
        client = local_client(endpoint.url)
        from_array = predict(client, "ep", np.array(ROWS), SCHEMA, profile=profile)
        from_list = predict(client, "ep", ROWS, SCHEMA, profile=profile)
    assert from_array == from_list == [answer for (answer,) in model.scores(ROWS)]
    bodies = [body for _, _, body in endpoint.seen.requests]
    assert bodies[: len(bodies) // 2] == bodies[len(bodies) // 2 :]


def test_one_row_as_a_1d_array_is_checked_where_the_api_takes_one_row() -> None:
    assert SCHEMA.row_problem(np.array(ROWS[0])) is None
    assert SCHEMA.row_problem(np.array([1.0, np.nan, 2.0]), "cpu") is None
    assert SCHEMA.row_problem(np.array([1.0, 2.0])) == "has 2 values; the model takes 3: a, b, c"


def test_a_1d_array_given_as_rows_says_to_wrap_it() -> None:
    one_row: tuple[Any, ...] = (np.array(ROWS[0]), ROWS[0])
    for rows in one_row:
        with pytest.raises(RequestError, match=re.escape("rows is one row of 3 values, not a list of rows; allowed:")):
            SCHEMA.check_rows(rows)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.array([[1.0, 2.0, np.inf]]), "row 0 value 2 (c) is inf; allowed: finite numbers"),
        (np.array([[1.0, 2.0, 1e39]]), "row 0 value 2 (c) is 1e+39; allowed: finite numbers within float32's range"),
        ([[np.bool_(True), 2.0, 3.0]], "row 0 value 0 (a) is True; allowed: finite numbers"),
        (np.array([["1", "2", "3"]]), "row 0 value 0 (a) is '1'; allowed: finite numbers"),
        (np.zeros((0, 3)), "no rows to score"),
        (np.zeros((2, 4)), "row 0 has 4 values; the model takes 3"),
        (np.float32(1.0), "rows is '1.0'; allowed: a list of rows or a 2-D array"),
        ("1,2,3", "rows is '1,2,3'; allowed: a list of rows or a 2-D array"),
    ],
)
def test_bad_arrays_are_one_line_request_errors(rows: Any, message: str) -> None:
    with pytest.raises(RequestError, match=re.escape(message)) as raised:
        SCHEMA.check_rows(rows, "cpu")
    assert "\n" not in str(raised.value)


def test_rows_may_come_from_any_iterable() -> None:
    assert SCHEMA.checked_rows(iter(ROWS)) == ROWS
    assert SCHEMA.checked_rows(row for row in np.array(ROWS)) == ROWS


# --- invoke: rows that start with a minus -------------------------------------------------------------------


def _served(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str, list[bytes]]:
    """invoke with ``argv`` against a local endpoint answering as the cpu container, for a 3-feature manifest."""
    manifest = tmp_path / "model-manifest.json"
    manifest.write_text(json.dumps(MANIFEST))
    with local_endpoint(answers_for("cpu", stand_in(MANIFEST))) as endpoint:
        base = ["--endpoint-name", "local", "--endpoint-url", endpoint.url, "--region", "us-east-1"]
        code = invoke.main([*base, "--manifest", str(manifest), *argv], session=local_session())
    out, err = capsys.readouterr()
    return code, out, err, [body for _, _, body in endpoint.seen.requests]


@pytest.mark.parametrize(
    "argv",
    [["--rows", "-1.5,2,-0.25"], ["--rows=-1.5,2,-0.25"], ["-1.5,2,-0.25"], ["--", "-1.5,2,-0.25"]],
    ids=["--rows ROW", "--rows=ROW", "ROW", "-- ROW"],
)
def test_a_row_that_starts_with_a_negative_number_is_a_row(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err, bodies = _served(argv, tmp_path, capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[1].startswith("-1.5,2.0,-0.25 -> ")
    assert bodies == [b"-1.5,2.0,-0.25\n"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repeat", "-1", "1,2,3"], "argument --repeat: allowed: 1 or more, got -1"),
        (["-1,2,3", "-4,5,6"], "unrecognized arguments: -4,5,6"),
        (["--rows", "-1,2,3", "4,5,6"], "give the rows one way: a ROW argument (or --rows ROW), - to read stdin, or"),
        (["-1,2"], "the row has 2 values; the model takes 3: a, b, c"),
        (["-inf,2,3"], "the row: '-inf' is not a finite number"),
    ],
)
def test_minus_rows_keep_one_line_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err, bodies = _served(argv, tmp_path, capsys)
    assert (code, out, bodies) == (2, "", [])
    assert err.startswith(f"invoke: {message}") and err.count("\n") == 1, err


def test_the_help_says_how_to_give_a_row_that_starts_with_a_minus() -> None:
    text = invoke.build_parser().format_help()
    assert "--rows -1.5,2,..." in " ".join(text.split())
    assert 'or after "--"' in " ".join(text.split())


# --- invoke --stage with a local endpoint: no AWS configuration ------------------------------------------------


def _dev_served() -> tuple[str, FakeEndpoint]:
    """The sample row of the model dev serves, as text, and a fake endpoint shaped like that model."""
    dev = load_stage("dev")
    row, _ = sample(dev.artifact.manifest, dev.artifact_file)
    server = FakeEndpoint(workers=1, service_time=0.001, profile=dev.profile, model=stand_in(dev.artifact.manifest))
    return ",".join(map(repr, row)), server


def _shown(answer: Any) -> str:
    return repr(answer[0]) if len(answer) == 1 else str(answer)


def test_a_stage_with_a_local_endpoint_needs_no_stack_lookup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    text, server = _dev_served()
    with server:  # no session given: the command builds its own, as on a fresh machine
        code = invoke.main(["--stage", "dev", "--endpoint-url", server.url, text])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    (answer,) = server.model.scores([[float(value) for value in text.split(",")]])
    assert out.splitlines()[:2] == [
        f"endpoint {invoke.LOCAL_ENDPOINT}: 1 row(s) per call, 1 call(s)",
        f"{text} -> {_shown(answer)}",
    ]
    assert server.stats.served == 1


@pytest.mark.slow
def test_the_stage_example_of_the_help_runs_on_a_machine_without_aws_configuration(tmp_path: Path) -> None:
    (example,) = [line for line in (invoke.__doc__ or "").splitlines() if "--stage dev --endpoint-url" in line]
    command = example.split("#")[0].split()
    assert command[:2] == ["python", "scripts/invoke.py"]
    text, server = _dev_served()
    with server:
        argv = [{"http://127.0.0.1:8080": server.url, "ROW": text}.get(word, word) for word in command[2:]]
        result = subprocess.run(
            [sys.executable, "scripts/invoke.py", *argv],
            cwd=REPO_ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"endpoint {invoke.LOCAL_ENDPOINT}: 1 row(s) per call")
    assert server.stats.served == 1
