"""Missing values, end to end: a model trained with missing features, packaged by `make package`'s code, served
by the fake endpoint (the XGBoost container's CSV convention: an empty field is NaN; Triton's JSON: NaN), and
scored through the client and the invoke command exactly as ``Booster.predict`` scores the same rows.

The inferentia profile refuses missing values before any request: its traced model does not follow XGBoost's
default directions (docs/profiles.md, "Missing values").
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from devtools.bench_client import answers_for, local_client, local_endpoint, local_session
from devtools.fake_endpoint import FakeEndpoint, Model, ModelError, packaged_model, score_csv, stand_in
from modelpack import package_model
from operations import invoke
from rtb_client import (
    MISSING_REFUSED,
    PROFILES,
    ModelSchema,
    RequestError,
    codec_for,
    encode_rows,
    is_missing,
    predict,
)

FEATURES = 5
NAN = math.nan


def _train(width: int, seed: int) -> xgb.Booster:
    """A binary classifier trained on rows where about a third of the values are missing, and where being
    missing carries signal of its own, so the trees learn default directions both ways."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1500, width)).astype(np.float32)
    label = (x[:, 0] > 0.2) ^ (x[:, -1] < -0.3)
    x[rng.random(x.shape) < 0.3] = np.nan
    label = np.where(np.isnan(x[:, 0]), True, label)
    params = {"objective": "binary:logistic", "max_depth": 4, "nthread": 1, "seed": seed}
    return xgb.train(params, xgb.DMatrix(x, label=label.astype(int), missing=np.nan), num_boost_round=12)


def _default_directions(booster: xgb.Booster) -> set[int]:
    trees = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]["gradient_booster"]["model"]["trees"]
    return {
        d for tree in trees for d, left in zip(tree["default_left"], tree["left_children"], strict=True) if left >= 0
    }


def _package(tmp_path_factory: pytest.TempPathFactory, width: int, seed: int) -> tuple[xgb.Booster, Path]:
    folder = tmp_path_factory.mktemp(f"missing-{width}")
    booster = _train(width, seed)
    booster.save_model(folder / "booster.json")
    package_model.package(folder / "booster.json", folder / "out", None, ("cpu", "gpu"))
    return booster, folder / "out"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[xgb.Booster, Path]:
    """The model as trained, and the folder `make package` wrote (cpu archive and manifest, triton/)."""
    return _package(tmp_path_factory, FEATURES, seed=5)


def _rows() -> list[list[Any]]:
    """Rows with missing values as None and as NaN (Python's and numpy's), in every position, all missing too."""
    rng = np.random.default_rng(11)
    rows: list[list[Any]] = [[float(v) for v in row] for row in rng.normal(size=(30, FEATURES)).astype(np.float32)]
    for index, row in enumerate(rows):
        for position in range(FEATURES):
            if (index + position) % 3 == 0:
                row[position] = [None, NAN, np.float32("nan")][(index * 7 + position) % 3]
    rows.append([None] * FEATURES)
    rows.append([NAN, 0.5, None, -1.5, np.nan])
    return rows


def _expected(booster: xgb.Booster, rows: list[list[Any]]) -> list[float]:
    """``Booster.predict`` on the same rows, NaN as missing (XGBoost's default)."""
    matrix = np.array([[NAN if value is None else float(value) for value in row] for row in rows], dtype=np.float32)
    return [float(value) for value in booster.predict(xgb.DMatrix(matrix, missing=np.nan))]


def test_the_model_learned_default_directions_both_ways(packaged: tuple[xgb.Booster, Path]) -> None:
    booster, _ = packaged
    assert _default_directions(booster) == {0, 1}  # so a client that filled missing values some fixed way fails
    rows = _rows()
    filled = [[0.0 if value is None or value != value else value for value in row] for row in rows]
    assert _expected(booster, filled) != _expected(booster, rows)


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_rows_with_missing_values_score_as_booster_predict(packaged: tuple[xgb.Booster, Path], profile: str) -> None:
    booster, folder = packaged
    archive = folder / "model.tar.gz"
    model = packaged_model(archive)
    rows = _rows()
    with local_endpoint(answers_for(profile, model)) as endpoint:
        got = predict(local_client(endpoint.url), "ep", rows, model.schema, profile=profile)
    assert got == _expected(booster, rows)
    ((_, _, body),) = endpoint.seen.requests
    if profile == "cpu":  # an empty field per missing value, the container's convention
        assert body.decode().splitlines()[-2:] == [",,,,", ",0.5,,-1.5,"]
    else:  # JSON NaN, which Triton's parser reads
        data = json.loads(body)["inputs"][0]["data"]  # Python's json reads NaN as Triton's parser does
        assert [value != value for value in data] == [is_missing(value) for row in rows for value in row]
        assert b"NaN" in body


def test_the_fake_endpoint_scores_them_in_process(packaged: tuple[xgb.Booster, Path]) -> None:
    booster, folder = packaged
    rows = _rows()
    with FakeEndpoint(workers=1, service_time=0.001, model=packaged_model(folder / "model.tar.gz")) as server:
        assert predict(local_client(server.url), "ep", rows, server.model.schema) == _expected(booster, rows)
    assert (server.stats.served, server.stats.model_errors) == (1, 0)


def test_the_invoke_command_sends_empty_fields_and_shows_booster_predict(
    packaged: tuple[xgb.Booster, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    booster, folder = packaged
    text = "0.5,,-1.25,,2.0\n,,,,\nnan,1.0,1.0,1.0,\n"
    (tmp_path / "rows.csv").write_text(text)
    rows = [[NAN if field in ("", "nan") else float(field) for field in line.split(",")] for line in text.splitlines()]
    with FakeEndpoint(workers=1, service_time=0.001, model=packaged_model(folder / "model.tar.gz")) as server:
        argv = ["--endpoint-name", "local", "--endpoint-url", server.url, "--region", "us-east-1"]
        argv += ["--manifest", str(folder / "model-manifest.json"), "--file", str(tmp_path / "rows.csv")]
        code = invoke.main(argv, session=local_session())
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    shown = [line.split(" -> ") for line in out.splitlines()[1:4]]
    assert [sent for sent, _ in shown] == ["0.5,,-1.25,,2.0", ",,,,", ",1.0,1.0,1.0,"]
    assert [float(answer) for _, answer in shown] == _expected(booster, rows)


def test_a_one_feature_row_that_is_missing_is_sent_as_nan(tmp_path_factory: pytest.TempPathFactory) -> None:
    # An empty line would break the container: it sniffs the delimiter from the first line and strips the body.
    booster, folder = _package(tmp_path_factory, 1, seed=3)
    model = packaged_model(folder / "model.tar.gz")
    rows: list[list[Any]] = [[None], [0.25], [NAN]]
    assert codec_for("cpu").encode(rows) == b"nan\n0.25\nnan\n"
    with FakeEndpoint(workers=1, service_time=0.001, model=model) as server:
        assert predict(local_client(server.url), "ep", rows, model.schema) == _expected(booster, rows)


# --- the codecs and the fake container, one fact each ---------------------------------------------------------


SCHEMA = ModelSchema(("a", "b", "c"), "value", 1)


def test_the_cpu_codec_writes_an_empty_field_and_the_gpu_codec_json_nan() -> None:
    rows = [[1.5, None, NAN], [None, -0.0, 2.0]]
    assert encode_rows(rows, SCHEMA) == b"1.5,,\n,-0.0,2.0\n"
    assert codec_for("cpu").encode(rows) == b"1.5,,\n,-0.0,2.0\n"
    sent = json.loads(codec_for("gpu").encode(rows))["inputs"][0]
    assert sent["shape"] == [2, 3] and b'"data": [1.5, NaN, NaN, NaN, -0.0, 2.0]' in codec_for("gpu").encode(rows)


def test_the_fake_cpu_container_reads_empty_fields_and_nan_as_missing() -> None:
    seen: list[list[float]] = []

    def scores(rows: list[list[float]]) -> list[list[float]]:
        seen.extend(rows)
        return [[0.25] for _ in rows]

    model = Model(SCHEMA, "reg:squarederror", scores)
    assert score_csv(b"1.5,,\n,nan,2.0\n\n", model) == b"0.25\n0.25\n"  # the body is stripped, as the container does
    assert [[None if value != value else value for value in row] for row in seen] == [
        [1.5, None, None],
        [None, None, 2.0],
    ]
    with pytest.raises(ModelError, match="different numbers of values"):
        score_csv(b"1,2,3\n\n4,5,6\n", model)  # an empty line inside is a row of one missing value


def test_the_stand_in_scores_a_missing_value_as_zero() -> None:
    model = stand_in(
        {"features": ["a", "b", "c"], "objective": "reg:squarederror", "output": {"kind": "value", "columns": 1}}
    )
    assert model.scores([[NAN, 1.0, 2.0]]) == model.scores([[0.0, 1.0, 2.0]])


# --- who refuses, and how ---------------------------------------------------------------------------------------


def test_inferentia_refuses_missing_values_in_one_line_before_any_request() -> None:
    with local_endpoint() as endpoint, pytest.raises(RequestError) as raised:
        predict(local_client(endpoint.url), "ep", [[1.0, 2.0, 3.0], [1.0, None, 3.0]], SCHEMA, profile="inferentia")
    assert endpoint.seen.requests == []
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        "row 1 value 1 (b) is None, a missing value; the inferentia profile refuses missing values: "
    )
    assert MISSING_REFUSED["inferentia"] in message and "default directions" in message
    with pytest.raises(RequestError, match="the inferentia profile refuses missing values"):
        codec_for("inferentia").encode([[1.0, NAN, 3.0]])  # the codec alone refuses them too


def test_only_inferentia_refuses_missing_values() -> None:
    assert set(MISSING_REFUSED) == {"inferentia"}
    for profile in PROFILES:
        problem = SCHEMA.row_problem([1.0, NAN, None], profile)
        assert (problem is not None) == (profile in MISSING_REFUSED), profile


def test_without_a_profile_a_missing_value_is_a_problem_that_names_the_profiles_that_take_it() -> None:
    assert SCHEMA.row_problem([1.0, NAN, 2.0]) == (
        "value 1 (b) is nan; allowed: finite numbers within float32's range (|x| <= 3.4028234663852886e+38); None or "
        "NaN (a missing value) only for a profile that scores it (cpu, gpu)"
    )
    with pytest.raises(ValueError, match=re.escape("profile='tpu' is invalid: allowed: one of")):
        SCHEMA.check_rows([[1.0, 2.0, 3.0]], "tpu")


@pytest.mark.parametrize("bad", [math.inf, -math.inf, 1e39, "", "nan"])
def test_infinities_out_of_range_values_and_text_are_still_refused(bad: Any) -> None:
    with pytest.raises(RequestError, match=re.escape(f"row 0 value 2 (c) is {bad!r}; allowed: finite numbers")):
        SCHEMA.check_rows([[1.0, None, bad]], "cpu")
