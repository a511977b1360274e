"""The Inferentia archive rebuilt with torch: the traced model scores like XGBoost, and the committed files are
what the build writes (the conversion is deterministic); models other than the sample (another width, a value
output, three classes) convert as well. Needs the model-building layer: make test-model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xgboost as xgb

from modelpack import build_inf1_artifact as inf1
from modelpack import inf1_format
from modelpack.model_rows import probe_rows
from modelpack.model_source import model_output, read_source

REPO_ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = REPO_ROOT / "model_artifacts" / "inf1" / inf1_format.ARTIFACT
MANIFEST = REPO_ROOT / "model_artifacts" / "inf1" / inf1_format.MANIFEST
SOURCE_MANIFEST = REPO_ROOT / "model_artifacts" / "model-manifest.json"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_inf1_artifact.py"
# A different draw from the one the build validates with, so the check is independent of it.
HELD_OUT_SEED = inf1.VALIDATION_SEED + 1
HELD_OUT_ROWS = 1000

Scored = tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder a fresh build wrote ``model.tar.gz`` and its manifest into."""
    out_dir = tmp_path_factory.mktemp("inf1")
    try:
        inf1.build(out_dir)
    except inf1_format.ConversionError as error:
        # Something else in this session used TorchScript first, so names would be mangled: build the
        # way people do, in a fresh interpreter.
        if "mangled" not in str(error):
            raise
        subprocess.run([sys.executable, str(BUILD_SCRIPT), "--out-dir", str(out_dir)], check=True, cwd=REPO_ROOT)
    return out_dir


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def pth() -> bytes:
    with tarfile.open(ARCHIVE, "r:gz") as archive:
        member = archive.extractfile(inf1_format.MODEL_FILE)
        assert member is not None, f"{inf1_format.MODEL_FILE} is not a regular file in {ARCHIVE.name}"
        return member.read()


@pytest.fixture(scope="module")
def traced(pth: bytes) -> torch.jit.ScriptModule:
    return inf1.load_traced(pth)


def load_source(source: Path) -> tuple[xgb.XGBClassifier, dict[str, Any]]:
    """The converter's view of a cpu archive, and the archive's manifest."""
    model_bytes, manifest = read_source(source)
    return inf1.load_trees(model_bytes, manifest, model_output(manifest)), manifest


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    booster: xgb.Booster = load_source(inf1.DEFAULT_SOURCE)[0].get_booster()
    return booster


@pytest.fixture(scope="module")
def held_out(booster: xgb.Booster) -> np.ndarray[Any, np.dtype[np.float32]]:
    return probe_rows(booster, HELD_OUT_ROWS, HELD_OUT_SEED)


def score(
    traced: torch.jit.ScriptModule,
    booster: xgb.Booster,
    rows: np.ndarray[Any, np.dtype[np.float32]],
    *,
    one_by_one: bool = True,
) -> Scored:
    """(traced scores, XGBoost's scores) as float64; one row per call is the shape Neo compiles."""
    tensor = torch.from_numpy(rows)
    with torch.no_grad(), inf1.single_thread():
        if one_by_one:
            scores = np.concatenate([traced(tensor[i : i + 1]).numpy() for i in range(len(rows))])
        else:
            scores = traced(tensor).numpy()
    return scores.astype(np.float64), booster.predict(xgb.DMatrix(rows)).astype(np.float64)


def test_rebuild_reproduces_the_committed_archive_byte_for_byte(rebuilt: Path) -> None:
    assert (rebuilt / inf1_format.ARTIFACT).read_bytes() == ARCHIVE.read_bytes(), (
        "model_artifacts/inf1/model.tar.gz is stale: run python scripts/build_inf1_artifact.py"
    )


def test_rebuild_writes_the_committed_manifest(rebuilt: Path, manifest: dict[str, Any]) -> None:
    fresh = json.loads((rebuilt / inf1_format.MANIFEST).read_text(encoding="utf-8"))
    # The measured error may differ in the last bit on another CPU; everything else must not.
    fresh["validation"].pop("max_abs_diff")
    committed = json.loads(json.dumps(manifest))
    committed["validation"].pop("max_abs_diff")
    assert fresh == committed


def test_traced_model_matches_xgboost_on_held_out_rows(
    traced: torch.jit.ScriptModule, booster: xgb.Booster, held_out: np.ndarray[Any, np.dtype[np.float32]]
) -> None:
    scores, expected = score(traced, booster, held_out)
    assert np.max(np.abs(scores - expected)) <= inf1_format.TOLERANCE


def test_traced_model_matches_xgboost_on_a_batch(
    traced: torch.jit.ScriptModule, booster: xgb.Booster, held_out: np.ndarray[Any, np.dtype[np.float32]]
) -> None:
    with torch.no_grad():
        batch = traced(torch.from_numpy(held_out))
    assert batch.shape == (HELD_OUT_ROWS,)
    assert batch.dtype == torch.float32
    scores, expected = score(traced, booster, held_out, one_by_one=False)
    assert np.max(np.abs(scores - expected)) <= inf1_format.TOLERANCE


def test_traced_model_scores_the_source_manifest_reference_rows(
    traced: torch.jit.ScriptModule, booster: xgb.Booster
) -> None:
    reference = json.loads(SOURCE_MANIFEST.read_text(encoding="utf-8"))["reference"]
    rows = np.array(reference["rows"], dtype=np.float32)
    scores, _ = score(traced, booster, rows)
    np.testing.assert_allclose(scores, reference["predictions"], rtol=0, atol=inf1_format.TOLERANCE)


def test_comparison_is_not_vacuous_held_out_rows_sit_on_split_thresholds(
    traced: torch.jit.ScriptModule, booster: xgb.Booster, held_out: np.ndarray[Any, np.dtype[np.float32]]
) -> None:
    # Nudging every value one float below itself turns each `x < t` split into `x <= t`, the classic
    # XGBoost-vs-LightGBM mix-up. Probe rows sit on thresholds, so the check must catch it.
    nudged = np.nextafter(held_out, np.float32(-np.inf)).astype(np.float32)
    scores, _ = score(traced, booster, nudged, one_by_one=False)
    _, expected = score(traced, booster, held_out, one_by_one=False)
    assert np.max(np.abs(scores - expected)) > 100 * inf1_format.TOLERANCE


def test_manifest_describes_the_archive_and_the_neo_job(manifest: dict[str, Any]) -> None:
    """The sample: 7 features, one probability."""
    source = json.loads(SOURCE_MANIFEST.read_text(encoding="utf-8"))
    assert manifest["model_file"] == inf1_format.MODEL_FILE
    assert manifest["xgboost_version"] == source["xgboost_version"]
    assert manifest["source_sha256"] == source["sha256"]
    assert manifest["features"] == source["features"]
    assert manifest["torch_version"] == torch.__version__
    assert manifest["neo"] == {
        "framework": "PYTORCH",
        "framework_version": "1.9",
        "target_device": "ml_inf1",
        "data_input_config": {"input0": [1, 7]},
        "compiler_options": '"--fast-math none"',
        "max_readable_file_format_version": 6,
    }
    assert manifest["input"] == {"name": "input0", "shape": [1, 7], "dtype": "float32"}
    assert manifest["validation"]["max_abs_diff"] <= manifest["validation"]["tolerance"] == inf1_format.TOLERANCE


def test_traced_graph_uses_only_operators_torch_1_9_has(
    traced: torch.jit.ScriptModule, manifest: dict[str, Any]
) -> None:
    ops = inf1.traced_ops(traced)
    assert list(ops) == manifest["torchscript_ops"]
    assert set(ops) <= inf1_format.TORCH_1_9_OPS


def test_second_trace_in_one_interpreter_is_refused(rebuilt: Path) -> None:
    classifier, source = load_source(inf1.DEFAULT_SOURCE)
    shape = inf1.input_shape(source)
    with pytest.raises(inf1_format.ConversionError, match="mangled"):
        inf1.serialize(inf1.trace(inf1.convert(classifier, model_output(source), shape), shape))


# Models other than the sample (tests/model_build/conftest.py MODELS), each built in a fresh interpreter as
# people do (one trace per interpreter).


def build_in_fresh_interpreter(source: Path, out_dir: Path) -> Path:
    subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--source", str(source), "--out-dir", str(out_dir)],
        check=True,
        cwd=REPO_ROOT,
        capture_output=True,
    )
    return out_dir


@pytest.fixture(scope="module")
def other_build(packaged: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(cpu archive, folder its inf1 build was written to)."""
    return packaged, build_in_fresh_interpreter(packaged, tmp_path_factory.mktemp("inf1-other"))


def test_other_models_manifest_takes_width_and_output_from_the_source(other_build: tuple[Path, Path]) -> None:
    source, out_dir = other_build
    _, source_manifest = load_source(source)
    described = json.loads((out_dir / inf1_format.MANIFEST).read_text(encoding="utf-8"))
    width = len(source_manifest["features"])
    assert described["features"] == source_manifest["features"]
    assert described["input"]["shape"] == described["neo"]["data_input_config"]["input0"] == [1, width]
    assert described["objective"] == source_manifest["objective"]
    assert described.get("num_class") == source_manifest.get("num_class")
    columns = source_manifest["output"]["columns"]
    assert {key: described["output"][key] for key in ("kind", "columns")} == source_manifest["output"]
    assert described["output"]["shape"] == ([1, columns] if columns > 1 else [1])
    assert described["sample_payload"] == source_manifest["sample_payload"]
    assert described["reference"] == source_manifest["reference"]
    assert 0 <= described["validation"]["max_abs_diff"] <= described["validation"]["tolerance"]


def test_other_models_traced_model_matches_xgboost_on_probe_rows(other_build: tuple[Path, Path]) -> None:
    source, out_dir = other_build
    classifier, source_manifest = load_source(source)
    booster = classifier.get_booster()
    described = json.loads((out_dir / inf1_format.MANIFEST).read_text(encoding="utf-8"))
    with tarfile.open(out_dir / inf1_format.ARTIFACT, "r:gz") as archive:
        member = archive.extractfile(inf1_format.MODEL_FILE)
        assert member is not None
        traced = inf1.load_traced(member.read())
    rows = probe_rows(booster, HELD_OUT_ROWS, HELD_OUT_SEED)
    expected = booster.predict(xgb.DMatrix(rows)).astype(np.float64)
    columns = source_manifest["output"]["columns"]
    assert expected.shape == ((HELD_OUT_ROWS, columns) if columns > 1 else (HELD_OUT_ROWS,))
    for one_by_one in (True, False):
        scores, _ = score(traced, booster, rows, one_by_one=one_by_one)
        assert scores.shape == expected.shape
        # The tolerance the build recorded: TOLERANCE, or for values TOLERANCE times their largest magnitude.
        assert np.max(np.abs(scores - expected)) <= described["validation"]["tolerance"]
    if columns > 1:
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    reference = np.array(source_manifest["reference"]["rows"], dtype=np.float32)
    scores, _ = score(traced, booster, reference)
    np.testing.assert_allclose(
        scores, source_manifest["reference"]["predictions"], rtol=0, atol=described["validation"]["tolerance"]
    )
    assert set(inf1.traced_ops(traced)) <= inf1_format.TORCH_1_9_OPS


def test_other_models_build_is_reproducible(other_build: tuple[Path, Path], tmp_path: Path) -> None:
    source, out_dir = other_build
    again = build_in_fresh_interpreter(source, tmp_path / "again")
    assert (again / inf1_format.ARTIFACT).read_bytes() == (out_dir / inf1_format.ARTIFACT).read_bytes()
