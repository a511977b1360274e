"""The Inferentia archive rebuilt with torch: the traced model scores like XGBoost, and the committed files are
what the build writes (the conversion is deterministic). Needs the model-building layer: make test-model.
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

from scripts import build_inf1_artifact as inf1
from scripts import inf1_format, train_model

REPO_ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = REPO_ROOT / "model_artifacts" / "inf1" / inf1_format.ARTIFACT
MANIFEST = REPO_ROOT / "model_artifacts" / "inf1" / inf1_format.MANIFEST
SOURCE_MANIFEST = REPO_ROOT / "model_artifacts" / train_model.MANIFEST
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_inf1_artifact.py"
# A different draw from the one the build validates with, so the check is independent of it.
HELD_OUT_SEED = train_model.SEED + 2
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


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    booster: xgb.Booster = inf1.load_classifier(inf1.read_source_model(inf1.DEFAULT_SOURCE)).get_booster()
    return booster


@pytest.fixture(scope="module")
def held_out() -> np.ndarray[Any, np.dtype[np.float32]]:
    rows, _ = train_model.make_dataset(np.random.default_rng(HELD_OUT_SEED), HELD_OUT_ROWS)
    return rows


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
    # XGBoost-vs-LightGBM mix-up. Integer features hit integer thresholds, so the check must catch it.
    nudged = np.nextafter(held_out, np.float32(-np.inf)).astype(np.float32)
    scores, _ = score(traced, booster, nudged, one_by_one=False)
    _, expected = score(traced, booster, held_out, one_by_one=False)
    assert np.max(np.abs(scores - expected)) > 100 * inf1_format.TOLERANCE


def test_manifest_describes_the_archive_and_the_neo_job(manifest: dict[str, Any]) -> None:
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
    classifier = inf1.load_classifier(inf1.read_source_model(inf1.DEFAULT_SOURCE))
    with pytest.raises(inf1_format.ConversionError, match="mangled"):
        inf1.serialize(inf1.trace(inf1.convert(classifier)))
