"""scripts/bench_model.py: the latency budget's model line reads the packaged model's own width and rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from devtools import bench_model
from modelpack import package_model
from modelpack.model_source import read_source


@pytest.fixture(scope="module")
def twelve_features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bench-model")
    x = np.random.default_rng(3).normal(size=(200, 12)).astype(np.float32)
    params = {"objective": "reg:squarederror", "nthread": 1, "max_depth": 3, "seed": 3}
    xgb.train(params, xgb.DMatrix(x, label=x[:, 0] + x[:, 11]), num_boost_round=4).save_model(folder / "m.json")
    package_model.package(folder / "m.json", folder, None, ("cpu",))
    return folder / package_model.ARTIFACT


def test_it_times_the_models_own_rows(twelve_features: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_model.main(["--artifact", str(twelve_features), "--calls", "40", "--slo-ms", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[0] == f"model: 12 features, reg:squarederror, 4 boosting rounds, xgboost {xgb.__version__}"
    assert lines[2].endswith("(40 calls)")
    assert lines[3].startswith("left of the 10 ms SLO")


def test_it_says_what_it_times_and_each_quarter_done_on_stderr(
    twelve_features: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench_model.main(["--artifact", str(twelve_features), "--calls", "40"]) == 0
    artifact, rows = bench_model.shown(twelve_features), len(read_source(twelve_features)[1]["reference"]["rows"])
    assert capsys.readouterr().err.splitlines() == [
        f"bench_model: {artifact}: timing 40 single-row calls on 1 thread over its {rows} reference rows "
        "(CSV parse + DMatrix + predict, and predict alone)",
        "bench_model: 10 of 40 calls timed",
        "bench_model: 20 of 40 calls timed",
        "bench_model: 30 of 40 calls timed",
        "bench_model: 40 of 40 calls timed",
    ]


@pytest.mark.parametrize(("calls", "due"), [(40, {10, 20, 30, 40}), (6, {1, 3, 4, 6}), (3, {1, 2, 3}), (1, {1})])
def test_progress_is_due_after_each_quarter_and_at_the_end(calls: int, due: set[int]) -> None:
    assert bench_model.checkpoints(calls) == due


def test_the_artifact_is_named_as_typed_from_the_working_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert bench_model.shown(tmp_path / "mine" / "model.tar.gz") == "mine/model.tar.gz"
    assert bench_model.shown(Path("/elsewhere/model.tar.gz")) == "/elsewhere/model.tar.gz"


def test_each_call_scores_one_row_of_the_manifests_width(twelve_features: Path) -> None:
    model_bytes, manifest = read_source(twelve_features)
    booster = xgb.Booster()
    booster.load_model(bytearray(model_bytes))
    seen: list[tuple[int, int]] = []
    original = xgb.DMatrix

    class Recording(original):  # type: ignore[misc,valid-type]
        def __init__(self, data: np.ndarray) -> None:
            seen.append(data.shape)
            super().__init__(data)

    payloads = [b"1.5," * 11 + b"2.5"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xgb, "DMatrix", Recording)
        whole, predict = bench_model.time_calls(booster, payloads, 3)
    assert seen == [(1, 12)] * 3
    assert len(whole) == len(predict) == 3
    assert len(manifest["features"]) == 12


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--calls", "0"], "bench_model: argument --calls: allowed: 1 or more, got 0\n"),
        (["--slo-ms", "-1"], "bench_model: --slo-ms -1 is invalid; allowed: a positive number of milliseconds\n"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_model.main(argv) == 2
    assert capsys.readouterr() == ("", message)
