"""The gpu profile's Triton model repository, checked without the model-building layer: reproducible from the
XGBoost model, laid out as SageMaker's Triton serve script expects, scoring what the XGBoost archive scores.
tests/model_build/test_triton_build.py parses its config with Triton's own schema and scores it with Treelite.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import xgboost as xgb

from modelpack import build_triton_artifact as triton
from modelpack.model_rows import probe_rows
from modelpack.model_source import ModelOutput, SourceError, model_output
from stacks import catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = REPO_ROOT / "model_artifacts" / "triton" / "model.tar.gz"
MANIFEST = REPO_ROOT / "model_artifacts" / "triton" / "model-manifest.json"
SOURCE_ARCHIVE = REPO_ROOT / "model_artifacts" / "model.tar.gz"
SOURCE_MANIFEST = REPO_ROOT / "model_artifacts" / "model-manifest.json"

CONFIG_FILE = f"{triton.MODEL_NAME}/config.pbtxt"
MODEL_FILE = f"{triton.MODEL_NAME}/1/xgboost.json"
N_ROWS = 500

FloatArray = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def source_manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SOURCE_MANIFEST.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def archive_bytes() -> bytes:
    return ARCHIVE.read_bytes()


@pytest.fixture(scope="module")
def members(archive_bytes: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as tar:
        return {member.name: member for member in tar.getmembers()}


@pytest.fixture(scope="module")
def files(archive_bytes: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as tar:
        extracted = {member.name: tar.extractfile(member) for member in tar.getmembers() if member.isfile()}
        return {name: handle.read() for name, handle in extracted.items() if handle is not None}


@pytest.fixture(scope="module")
def packaged_booster(files: dict[str, bytes]) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(bytearray(files[MODEL_FILE]))
    return booster


@pytest.fixture(scope="module")
def rows(packaged_booster: xgb.Booster) -> FloatArray:
    """Rows on and beside the model's own split thresholds, as wide as the model, some values missing."""
    data = probe_rows(packaged_booster, N_ROWS, seed=20261121)
    data[np.random.default_rng(20261121).random(data.shape) < 0.05] = np.nan
    return data


@pytest.fixture(scope="module")
def xgboost_probabilities(packaged_booster: xgb.Booster, rows: FloatArray) -> FloatArray:
    predictions: FloatArray = packaged_booster.predict(xgb.DMatrix(rows))
    return predictions


def test_committed_archive_and_manifest_are_what_the_script_builds(
    tmp_path_factory: pytest.TempPathFactory, archive_bytes: bytes
) -> None:
    out_dir = tmp_path_factory.mktemp("triton")
    triton.build(SOURCE_ARCHIVE, out_dir)
    assert (out_dir / "model.tar.gz").read_bytes() == archive_bytes
    assert (out_dir / "model-manifest.json").read_bytes() == MANIFEST.read_bytes()


def test_archive_is_one_model_folder_with_a_config_and_version_1(
    members: dict[str, tarfile.TarInfo], archive_bytes: bytes
) -> None:
    """SageMaker's Triton serve script refuses a config.pbtxt at the top of /opt/ml/model."""
    assert list(members) == ["rtb-filter", "rtb-filter/1", MODEL_FILE, CONFIG_FILE]
    for member in members.values():
        assert member.isdir() or member.isreg(), member.name
        assert (member.mode, member.mtime, member.uid, member.gid) == (0o755 if member.isdir() else 0o644, 0, 0, 0)
        assert (member.uname, member.gname) == ("", "")
    assert archive_bytes[3] & 0x08 == 0, "gzip header embeds a file name"
    assert archive_bytes[4:8] == b"\x00\x00\x00\x00", "gzip header embeds a timestamp"


def test_manifest_describes_the_archive_its_source_and_the_pinned_image(
    manifest: dict[str, Any], source_manifest: dict[str, Any], archive_bytes: bytes, members: dict[str, Any]
) -> None:
    assert manifest["sha256"] == hashlib.sha256(archive_bytes).hexdigest()
    assert manifest["source_artifact"] == {
        "path": "model_artifacts/model.tar.gz",
        "sha256": hashlib.sha256(SOURCE_ARCHIVE.read_bytes()).hexdigest(),
    }
    assert manifest["xgboost_version"] == source_manifest["xgboost_version"] == xgb.__version__
    assert manifest["features"] == source_manifest["features"]
    assert manifest["model_file"] in members
    version = catalog.triton_image_version()
    assert manifest["triton"]["image_version"] == version
    assert manifest["triton"]["image_tag"] == catalog.triton_image_table(version)["tag"]
    model_name = manifest["container_environment"]["SAGEMAKER_TRITON_DEFAULT_MODEL_NAME"]
    assert model_name == manifest["triton"]["model_name"] and members[model_name].isdir()


def test_packaged_model_scores_what_the_xgboost_archive_scores(
    files: dict[str, bytes], rows: FloatArray, xgboost_probabilities: FloatArray
) -> None:
    with tarfile.open(SOURCE_ARCHIVE, "r:gz") as tar:
        handle = tar.extractfile("xgboost-model")
        assert handle is not None
        source = xgb.Booster()
        source.load_model(bytearray(handle.read()))
    np.testing.assert_array_equal(source.predict(xgb.DMatrix(rows)), xgboost_probabilities)


def test_manifest_carries_the_sources_contract_fields(
    manifest: dict[str, Any], source_manifest: dict[str, Any]
) -> None:
    """features, objective, output (num_class for multi:softprob), sample_payload and reference, from the source."""
    output = model_output(source_manifest)
    assert manifest["objective"] == source_manifest["objective"]
    assert {key: manifest[key] for key in ("output", "num_class") if key in manifest} == output.as_manifest()
    assert manifest["sample_payload"] == source_manifest["sample_payload"]
    reference = manifest["reference"]
    assert reference["rows"] == source_manifest["reference"]["rows"]
    assert reference["predictions"] == source_manifest["reference"]["predictions"]
    assert [float(v) for v in manifest["sample_payload"].split(",")] in reference["rows"]
    assert manifest["sample_request"]["inputs"][0]["shape"] == [1, len(manifest["features"])]


def test_raw_output_holds_the_decoded_predictions(manifest: dict[str, Any]) -> None:
    """What a client decodes from output__0: column 1 of (1 - p, p) for binary, the whole row otherwise."""
    raw = np.array(manifest["reference"][triton.OUTPUT_NAME])
    expected = np.array(manifest["reference"]["predictions"], dtype=np.float64)
    assert raw.shape == (len(manifest["reference"]["rows"]), *manifest["triton"]["output"]["dims"])
    column = manifest["triton"]["output"].get("positive_class_column")
    decoded = raw[:, column] if column is not None else raw.reshape(expected.shape)
    np.testing.assert_array_equal(decoded, expected)


def test_committed_config_is_the_one_for_the_manifests_output_and_width(
    files: dict[str, bytes], manifest: dict[str, Any]
) -> None:
    fil = triton.fil_settings(model_output(manifest))
    assert files[CONFIG_FILE].decode("utf-8") == triton.config_pbtxt(len(manifest["features"]), fil)
    assert manifest["triton"]["input"]["dims"] == [len(manifest["features"])]
    assert manifest["triton"]["output"]["dims"] == [fil.columns]
    assert (manifest["triton"]["output_class"], manifest["triton"]["predict_proba"]) == (
        fil.output_class,
        fil.predict_proba,
    )


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (ModelOutput("binary:logistic", "probability", 1, None), triton.FilOutput(True, True, 2)),
        (ModelOutput("multi:softprob", "class_probabilities", 5, 5), triton.FilOutput(True, True, 5)),
        (ModelOutput("reg:logistic", "probability", 1, None), triton.FilOutput(False, False, 1)),
        (ModelOutput("reg:squarederror", "value", 1, None), triton.FilOutput(False, False, 1)),
        (ModelOutput("reg:pseudohubererror", "value", 1, None), triton.FilOutput(False, False, 1)),
    ],
)
def test_fil_settings_per_output_kind(output: ModelOutput, expected: triton.FilOutput) -> None:
    """notes/contract.md: classifiers with output_class and predict_proba ([2] for binary, [num_class] for
    multi:softprob); reg:logistic and the value objectives as regressors, one column."""
    fil = triton.fil_settings(output)
    assert fil == expected
    config = triton.config_pbtxt(12, fil)
    assert "dims: [ 12 ]" in config and f"dims: [ {expected.columns} ]" in config
    flags = 'string_value: "true"' if expected.output_class else 'string_value: "false"'
    assert config.count(flags) == 2 + (0 if expected.output_class else 1)  # + xgboost_allow_unknown_field


def test_an_objective_fils_loader_rejects_is_refused_in_one_line() -> None:
    with pytest.raises(SourceError, match=r"^reg:absoluteerror cannot be served by Triton FIL: Treelite"):
        triton.fil_settings(ModelOutput("reg:absoluteerror", "value", 1, None))
