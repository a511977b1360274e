"""Checks on the committed sample model: layout, checksum, reproducibility, behaviour.

The archive is a CDK file asset, so its bytes feed asset hashes and template snapshots;
the model inside must load and score the way the built-in SageMaker XGBoost container
does it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from modelpack import train_model
from stacks import catalog, stages

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACT_DIR = REPO_ROOT / "model_artifacts"
ARCHIVE = ARTIFACT_DIR / "model.tar.gz"
MANIFEST = ARTIFACT_DIR / "model-manifest.json"

MODEL_FILE = "xgboost-model"
EXPECTED_FEATURES = [
    "dow",
    "hour",
    "IndexAdvertiserID",
    "IndexDomain",
    "IndexRegionID",
    "IndexCityID",
    "device_type_id",
]


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def archive_bytes() -> bytes:
    return ARCHIVE.read_bytes()


@pytest.fixture(scope="module")
def model_bytes(archive_bytes: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as tar:
        member = tar.extractfile(MODEL_FILE)
        assert member is not None, f"{MODEL_FILE} is not a regular file in the archive"
        return member.read()


@pytest.fixture(scope="module")
def booster(model_bytes: bytes, tmp_path_factory: pytest.TempPathFactory) -> xgb.Booster:
    """Load as the container does: from a file named xgboost-model, no extension."""
    path = tmp_path_factory.mktemp("model") / MODEL_FILE
    path.write_bytes(model_bytes)
    loaded = xgb.Booster()
    with warnings.catch_warnings():
        # Without an extension XGBoost sniffs the format from the content, and warns.
        warnings.filterwarnings("ignore", message=r".*Unknown file format", category=UserWarning)
        loaded.load_model(str(path))
    return loaded


@pytest.fixture(scope="module")
def same_xgboost_as_training(manifest: dict[str, Any]) -> None:
    """Exact bytes and predictions hold only under the XGBoost version that trained; the pinned
    requirements install it, so a mismatch is a broken environment, not a reason to skip."""
    assert xgb.__version__ == manifest["xgboost_version"], (
        f"model was trained with xgboost {manifest['xgboost_version']} but {xgb.__version__} is installed; "
        "install requirements-dev.txt or retrain with scripts/train_model.py"
    )


def test_tests_run_the_xgboost_of_the_deployed_container(manifest: dict[str, Any]) -> None:
    """Predictions checked here are the container's only if the XGBoost versions are the same."""
    container = catalog.xgboost_image_table(stages.dev().container_version)["xgboost_version"]
    assert xgb.__version__ == container == manifest["xgboost_version"]


def csv_body_to_matrix(body: bytes) -> np.ndarray:
    """Decode a text/csv body as the container does: row per line, empty cell NaN."""
    lines = body.strip().decode("utf-8").split("\n")
    cells = [[cell if cell else "nan" for cell in line.split(",")] for line in lines]
    return np.array(cells).astype(np.float64)


def parse_base_score(value: str) -> list[float]:
    """Accept XGBoost 3.x's vector string ("[5E-1]") and older scalars ("5E-1")."""
    return [float(part) for part in value.strip().strip("[]").split(",") if part.strip()]


def test_archive_holds_only_the_model_file_at_its_root(archive_bytes: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [MODEL_FILE]
    (member,) = members
    assert member.isreg()
    assert not member.islnk()
    assert not member.issym()
    assert not member.name.startswith("/")
    assert ".." not in Path(member.name).parts
    assert (member.mode, member.mtime, member.uid, member.gid) == (0o644, 0, 0, 0)
    assert (member.uname, member.gname) == ("", "")


def test_archive_gzip_header_has_no_timestamp_or_file_name(
    archive_bytes: bytes,
) -> None:
    flags, mtime = archive_bytes[3], archive_bytes[4:8]
    assert archive_bytes[:3] == b"\x1f\x8b\x08"
    assert flags & 0x08 == 0, "gzip header embeds a file name"
    assert mtime == b"\x00\x00\x00\x00", "gzip header embeds a timestamp"


def test_manifest_checksum_matches_archive(manifest: dict[str, Any], archive_bytes: bytes) -> None:
    assert manifest["artifact"] == ARCHIVE.name
    assert manifest["model_file"] == MODEL_FILE
    assert manifest["sha256"] == hashlib.sha256(archive_bytes).hexdigest()


@pytest.mark.usefixtures("same_xgboost_as_training")
def test_retraining_reproduces_the_committed_artifacts_byte_for_byte(
    tmp_path: Path,
) -> None:
    train_model.build(tmp_path)
    assert (tmp_path / ARCHIVE.name).read_bytes() == ARCHIVE.read_bytes()
    assert (tmp_path / MANIFEST.name).read_bytes() == MANIFEST.read_bytes()


@pytest.mark.usefixtures("same_xgboost_as_training")
def test_packaged_model_reproduces_reference_predictions(booster: xgb.Booster, manifest: dict[str, Any]) -> None:
    reference = manifest["reference"]
    rows = np.array(reference["rows"], dtype=np.float32)
    assert rows.shape == (len(reference["predictions"]), len(EXPECTED_FEATURES))
    predictions = booster.predict(xgb.DMatrix(rows))
    np.testing.assert_allclose(predictions, reference["predictions"], rtol=0, atol=1e-7)


def test_model_is_json_with_explicit_base_score_and_binary_objective(
    model_bytes: bytes, manifest: dict[str, Any]
) -> None:
    assert model_bytes.startswith(b"{"), "model is not XGBoost JSON (UBJSON starts with '{L')"
    learner = json.loads(model_bytes)["learner"]
    params = learner["learner_model_param"]
    assert parse_base_score(params["base_score"]) == [0.5]
    assert learner["objective"]["name"] == "binary:logistic" == manifest["objective"]
    assert manifest["features"] == EXPECTED_FEATURES
    assert int(params["num_feature"]) == len(manifest["features"])


def test_sample_payload_scores_a_probability(booster: xgb.Booster, manifest: dict[str, Any]) -> None:
    assert manifest["content_type"] == "text/csv"
    matrix = csv_body_to_matrix(manifest["sample_payload"].encode("utf-8"))
    assert matrix.shape == (1, len(EXPECTED_FEATURES))
    (probability,) = booster.predict(xgb.DMatrix(matrix))
    assert 0.0 < probability < 1.0


def test_row_with_too_many_features_is_rejected(booster: xgb.Booster) -> None:
    wide = csv_body_to_matrix(b"2,0,0.0,7.0,3.0,20.0,2,1")
    with pytest.raises(xgb.core.XGBoostError, match="Number of columns does not match"):
        booster.predict(xgb.DMatrix(wide))


def test_row_with_too_few_features_is_scored_as_if_the_last_were_missing(
    booster: xgb.Booster,
) -> None:
    """A known hazard, pinned so we notice a change: XGBoost does not reject short rows.

    It scores absent trailing columns as missing values, and the container checks the
    feature count only for pickled models, so clients must send all 7 features.
    """
    short = csv_body_to_matrix(b"2,0,0.0,7.0,3.0,20.0")
    padded = np.append(short, [[np.nan]], axis=1)
    (short_score,) = booster.predict(xgb.DMatrix(short))
    (padded_score,) = booster.predict(xgb.DMatrix(padded))
    assert short_score == padded_score
