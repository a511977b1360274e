"""The committed Inferentia archive, checked without torch: layout, what Neo's torch 1.9 can load, and the
equivalence check its build recorded (the build reran it; tests/model_build/ reruns it with torch).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from modelpack import inf1_format as inf1
from modelpack.model_source import model_output
from stacks.artifact import inspect_artifact

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = REPO_ROOT / "model_artifacts" / "inf1" / inf1.ARTIFACT
MANIFEST = REPO_ROOT / "model_artifacts" / "inf1" / inf1.MANIFEST
SOURCE_ARCHIVE = REPO_ROOT / "model_artifacts" / "model.tar.gz"
SOURCE_MANIFEST = REPO_ROOT / "model_artifacts" / "model-manifest.json"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def source_manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SOURCE_MANIFEST.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def pth() -> bytes:
    with tarfile.open(ARCHIVE, "r:gz") as archive:
        member = archive.extractfile(inf1.MODEL_FILE)
        assert member is not None, f"{inf1.MODEL_FILE} is not a regular file in {ARCHIVE.name}"
        return member.read()


def torchscript_zip(version: int, code: str) -> bytes:
    """A minimal archive in TorchScript's zip layout (what torch's writer produces, without torch)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02N.")
        archive.writestr("archive/code/__torch__/m.py", code)
        archive.writestr("archive/.data/version", f"{version}\n")
    return out.getvalue()


def test_archive_holds_model_pth_alone_at_its_root_with_fixed_headers() -> None:
    data = ARCHIVE.read_bytes()
    assert data[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = archive.getmembers()
    assert [(m.name, m.isfile(), m.mode, m.mtime, m.uid, m.gid) for m in members] == [
        (inf1.MODEL_FILE, True, 0o644, 0, 0, 0)
    ]


def test_manifest_checksum_is_the_archives(manifest: dict[str, Any]) -> None:
    assert manifest["sha256"] == hashlib.sha256(ARCHIVE.read_bytes()).hexdigest()


def test_archive_was_built_from_the_committed_xgboost_model(manifest: dict[str, Any]) -> None:
    assert manifest["source_sha256"] == hashlib.sha256(SOURCE_ARCHIVE.read_bytes()).hexdigest(), (
        "model_artifacts/model.tar.gz changed since the inferentia archive was built: run make inf1-model"
    )


def test_kit_artifact_check_accepts_the_archive(manifest: dict[str, Any]) -> None:
    checked = inspect_artifact(ARCHIVE)
    assert checked.model_file == inf1.MODEL_FILE
    assert checked.feature_count == len(manifest["features"])
    assert checked.sha256 == manifest["sha256"]


def test_manifest_describes_the_neo_job(manifest: dict[str, Any], source_manifest: dict[str, Any]) -> None:
    width = len(source_manifest["features"])
    assert manifest["model_file"] == inf1.MODEL_FILE
    assert manifest["features"] == source_manifest["features"]
    assert manifest["neo"] == {
        "framework": inf1.NEO_FRAMEWORK,
        "framework_version": inf1.NEO_FRAMEWORK_VERSION,
        "target_device": inf1.NEO_TARGET_DEVICE,
        "data_input_config": {"input0": [1, width]},
        "compiler_options": '"--fast-math none"',
        "max_readable_file_format_version": inf1.NEO_TORCH_MAX_FILE_FORMAT_VERSION,
    }
    assert manifest["input"] == {"name": "input0", "shape": [1, width], "dtype": "float32"}


def test_manifest_carries_the_sources_contract_fields(
    manifest: dict[str, Any], source_manifest: dict[str, Any]
) -> None:
    """objective, output (with the traced model's shape), num_class for multi:softprob, sample_payload and the
    reference rows and predictions, from the source."""
    output = model_output(source_manifest)
    assert manifest["objective"] == output.objective
    assert ("num_class" in manifest) == (output.num_class is not None)
    assert manifest.get("num_class") == output.num_class
    assert {key: manifest["output"][key] for key in ("kind", "columns")} == output.as_manifest()["output"]
    shape = [1, output.columns] if output.kind == "class_probabilities" else [1]
    assert manifest["output"]["shape"] == shape and manifest["output"]["dtype"] == "float32"
    assert manifest["sample_payload"] == source_manifest["sample_payload"]
    assert manifest["reference"] == {key: source_manifest["reference"][key] for key in ("rows", "predictions")}


def test_recorded_equivalence_check_passed_on_enough_rows(manifest: dict[str, Any]) -> None:
    validation = manifest["validation"]
    if manifest["output"]["kind"] != "value":  # a value's tolerance scales with its size
        assert validation["tolerance"] == inf1.TOLERANCE
    assert validation["rows"] >= 1000
    assert validation["row_source"] == "scripts/model_rows.py probe_rows"
    assert 0 <= validation["max_abs_diff"] <= validation["tolerance"]


def test_file_format_version_is_one_torch_1_9_reads(pth: bytes, manifest: dict[str, Any]) -> None:
    version = inf1.file_format_version(pth)
    assert version == manifest["torchscript_file_format_version"]
    assert version <= inf1.NEO_TORCH_MAX_FILE_FORMAT_VERSION == 6


def test_archive_code_calls_only_operators_torch_1_9_has(pth: bytes, manifest: dict[str, Any]) -> None:
    ops = inf1.code_ops(pth)
    assert list(ops) == manifest["torchscript_ops"]
    assert set(ops) <= inf1.TORCH_1_9_OPS
    inf1.check_loadable(inf1.file_format_version(pth), ops)


def test_archive_has_no_source_maps_in_the_layout_torch_1_9_cannot_parse(pth: bytes) -> None:
    names = inf1.records(pth)
    assert "data.pkl" in names
    assert not [name for name in names if name.endswith(".debug_pkl")]


def test_operator_reading_finds_each_call_in_serialized_code() -> None:
    code = "x0 = torch.t(x)\n_1 = torch.add(torch.select(_0, 1, 0), m)\ny = (trees).forward(x, )\n"
    assert inf1.code_ops(torchscript_zip(3, code)) == ("aten::add", "aten::select", "aten::t")


def test_loadability_check_rejects_newer_file_formats_and_operators() -> None:
    newer = torchscript_zip(inf1.NEO_TORCH_MAX_FILE_FORMAT_VERSION + 1, "y = torch.scaled_dot_product_attention(q)\n")
    assert inf1.file_format_version(newer) == 7
    with pytest.raises(inf1.ConversionError, match="file-format version 7"):
        inf1.check_loadable(inf1.file_format_version(newer), inf1.code_ops(newer))
    with pytest.raises(inf1.ConversionError, match="aten::scaled_dot_product_attention"):
        inf1.check_loadable(3, inf1.code_ops(newer))
