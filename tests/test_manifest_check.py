"""The synth reads the model in each profile's artifact and refuses a manifest that does not describe it (issue 21,
item 8): feature count, objective and classes, in one line naming model_artifact.

The cpu and gpu cases use models trained here (12 features regression; 9 features, 3 classes) and packaged by
``make package``'s code; the inferentia case uses the committed trace (torch is not installed here) and a copy whose
pickled trace inputs and buffers are rewritten as a 12-feature, 3-class trace would write them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from modelpack import build_triton_artifact, inf1_format, package_model
from modelpack.archive import reproducible_tar_gz
from modelpack.model_source import SourceError, model_output
from rtb_client import OBJECTIVE_KINDS
from stacks import manifest_check
from stacks.artifact import ArtifactError, inspect_artifact
from stacks.profiles import PROFILES
from stacks.settings import SettingsError, inspect_profile_artifact
from stacks.stages import load_stage

REPO_ROOT = Path(__file__).resolve().parents[1]
# A stage of each profile, to build settings on.
STAGE_OF = {"cpu": "dev", "gpu": "gpu", "inferentia": "inferentia"}
TWELVE = [f"f{index}" for index in range(12)]
PACKAGE = "(make package writes it)"


def train(objective: str, width: int, **extra: Any) -> xgb.Booster:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, width)).astype(np.float32)
    label = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5) if objective == "multi:softprob" else x[:, 0] * 2 + x[:, 3]
    params = {"objective": objective, "nthread": 1, "max_depth": 3, "seed": 11, **extra}
    return xgb.train(params, xgb.DMatrix(x, label=label), num_boost_round=4)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each trained model's cpu archive and Triton repository, as make package writes them."""
    root = tmp_path_factory.mktemp("manifest-check")
    models = {"reg12": train("reg:squarederror", 12), "multi3": train("multi:softprob", 9, num_class=3)}
    folders = {}
    for name, booster in models.items():
        booster.save_model(root / f"{name}.json")
        folders[name] = root / name
        package_model.package(root / f"{name}.json", folders[name], None, ("cpu", "gpu"))
    return folders


def artifact_of(folder: Path, profile: str) -> Path:
    return folder / "model.tar.gz" if profile == "cpu" else folder / "triton" / "model.tar.gz"


def manifest_of(archive: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(archive.with_name("model-manifest.json").read_text())
    return loaded


def copy_with(archive: Path, folder: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the archive in ``folder`` with its manifest changed (the checksum still matches)."""
    folder.mkdir(parents=True, exist_ok=True)
    copied = Path(shutil.copyfile(archive, folder / "model.tar.gz"))
    manifest = manifest_of(archive)
    change(manifest)
    (folder / "model-manifest.json").write_text(json.dumps(manifest))
    return copied


def rebuilt(folder: Path, files: dict[str, bytes], manifest: dict[str, Any]) -> Path:
    """An archive of ``files`` with ``manifest`` beside it, its checksum updated."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "model.tar.gz"
    archive.write_bytes(reproducible_tar_gz(files))
    (folder / "model-manifest.json").write_text(
        json.dumps(manifest | {"sha256": hashlib.sha256(archive.read_bytes()).hexdigest()})
    )
    return archive


def members(archive: Path) -> dict[str, bytes]:
    found = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            if extracted is not None:
                found[member.name] = extracted.read()
    return found


def refusal(profile: str, archive: Path) -> str:
    """inspect_artifact's one line for the profile's layout."""
    with pytest.raises(ArtifactError) as raised:
        inspect_profile_artifact(PROFILES[profile], archive)
    message = str(raised.value)
    assert "\n" not in message
    return message


def settings_problems(profile: str, archive: Path) -> list[str]:
    """The problems of the profile's stage pointed at ``archive`` (a path relative to the repository)."""
    relative = os.path.relpath(archive, REPO_ROOT)
    with pytest.raises(SettingsError) as raised:
        dataclasses.replace(load_stage(STAGE_OF[profile]), model_artifact=relative)
    return [problem.replace(relative, "PATH") for problem in raised.value.problems]


def add_feature(manifest: dict[str, Any]) -> None:
    manifest["features"] = [*manifest["features"], "extra"]


def drop_feature(manifest: dict[str, Any]) -> None:
    manifest["features"] = manifest["features"][:-1]


# --- every profile: the committed artifact passes -------------------------------------------------------------


def test_the_stage_map_names_a_stage_of_each_profile() -> None:
    assert sorted(STAGE_OF) == sorted(PROFILES)
    assert all(load_stage(stage).profile == profile for profile, stage in STAGE_OF.items())


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_committed_artifact_is_what_its_manifest_says(profile: str) -> None:
    archive = REPO_ROOT / PROFILES[profile].default_artifact
    checked = inspect_profile_artifact(PROFILES[profile], archive)
    assert checked.feature_count == len(manifest_of(archive)["features"]) == 7
    # What a stage of the profile serves without a model_artifact (stacks/stages.py may point it at another).
    assert dataclasses.replace(load_stage(STAGE_OF[profile]), model_artifact=None).artifact.sha256 == checked.sha256


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_committed_manifest_with_a_feature_more_or_fewer_is_refused(profile: str, tmp_path: Path) -> None:
    archive = REPO_ROOT / PROFILES[profile].default_artifact
    file = manifest_of(archive)["model_file"]
    how = " (traced with input shape [1, 7])" if profile == "inferentia" else ""
    sample = "dow, hour, IndexAdvertiserID, IndexDomain, IndexRegionID, IndexCityID, device_type_id"
    more = refusal(profile, copy_with(archive, tmp_path / "more", add_feature))
    assert more == (
        f"holds a model ({file}) with 7 features{how} but its manifest lists 8 ({sample}, extra); allowed: a "
        f"manifest listing the model's 7 features {PACKAGE}"
    )
    fewer = copy_with(archive, tmp_path / "fewer", drop_feature)
    assert settings_problems(profile, fewer) == [
        f"model_artifact='PATH' is invalid: the artifact holds a model ({file}) with 7 features{how} but its "
        f"manifest lists 6 ({sample.removesuffix(', device_type_id')}); allowed: a manifest listing the model's 7 "
        f"features {PACKAGE}"
    ]


# --- cpu and gpu: models trained here --------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_packaged_models_of_other_shapes_pass(packaged: dict[str, Path], profile: str) -> None:
    for name, width in (("reg12", 12), ("multi3", 9)):
        archive = artifact_of(packaged[name], profile)
        assert inspect_profile_artifact(PROFILES[profile], archive).feature_count == width
        relative = os.path.relpath(archive, REPO_ROOT)
        settings = dataclasses.replace(load_stage(STAGE_OF[profile]), model_artifact=relative)
        assert settings.artifact.manifest["features"] == manifest_of(archive)["features"]


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_a_manifest_listing_a_feature_more_or_fewer_is_refused(
    packaged: dict[str, Path], profile: str, tmp_path: Path
) -> None:
    archive = artifact_of(packaged["reg12"], profile)
    file = manifest_of(archive)["model_file"]
    more = copy_with(archive, tmp_path / "more", add_feature)
    assert refusal(profile, more) == (
        f"holds a model ({file}) with 12 features but its manifest lists 13 (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, "
        f"... (3 more)); allowed: a manifest listing the model's 12 features {PACKAGE}"
    )
    fewer = copy_with(archive, tmp_path / "fewer", drop_feature)
    assert settings_problems(profile, fewer) == [
        f"model_artifact='PATH' is invalid: the artifact holds a model ({file}) with 12 features but its manifest "
        f"lists 11 (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, ... (1 more)); allowed: a manifest listing the model's "
        f"12 features {PACKAGE}"
    ]


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_a_manifest_naming_another_objective_is_refused(
    packaged: dict[str, Path], profile: str, tmp_path: Path
) -> None:
    archive = artifact_of(packaged["reg12"], profile)
    file = manifest_of(archive)["model_file"]

    def logistic(manifest: dict[str, Any]) -> None:  # consistent in itself: only the model disagrees
        manifest.update(objective="binary:logistic", output={"kind": "probability", "columns": 1})

    expected = (
        f"holds a reg:squarederror model ({file}) but its manifest says objective 'binary:logistic'; allowed: a "
        f"manifest with the model's objective 'reg:squarederror' {PACKAGE}"
    )
    assert refusal(profile, copy_with(archive, tmp_path / "a", logistic)) == expected
    assert settings_problems(profile, copy_with(archive, tmp_path / "b", logistic)) == [
        f"model_artifact='PATH' is invalid: the artifact {expected}"
    ]


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_a_manifest_with_another_class_count_is_refused(
    packaged: dict[str, Path], profile: str, tmp_path: Path
) -> None:
    archive = artifact_of(packaged["multi3"], profile)
    file = manifest_of(archive)["model_file"]

    def four(manifest: dict[str, Any]) -> None:
        manifest.update(num_class=4, output={"kind": "class_probabilities", "columns": 4})

    expected = (
        f"holds a multi:softprob model ({file}) with 3 classes but its manifest says num_class 4; allowed: a "
        f"manifest with num_class 3 {PACKAGE}"
    )
    assert refusal(profile, copy_with(archive, tmp_path / "a", four)) == expected
    assert settings_problems(profile, copy_with(archive, tmp_path / "b", four)) == [
        f"model_artifact='PATH' is invalid: the artifact {expected}"
    ]
    regression = artifact_of(packaged["reg12"], profile)
    regression_file = manifest_of(regression)["model_file"]
    classes = copy_with(regression, tmp_path / "c", lambda manifest: manifest.update(num_class=3))
    assert refusal(profile, classes) == (
        f"holds a reg:squarederror model ({regression_file}), which answers 1 column and no classes, but its "
        f"manifest says num_class 3; allowed: a manifest without num_class {PACKAGE}"
    )


def test_output_columns_and_kind_must_be_the_models(packaged: dict[str, Path], tmp_path: Path) -> None:
    archive = artifact_of(packaged["multi3"], "cpu")
    columns = copy_with(archive, tmp_path / "a", lambda manifest: manifest["output"].update(columns=2))
    assert refusal("cpu", columns) == (
        "holds a multi:softprob model (xgboost-model), which answers 3 columns per row, but its manifest's "
        f"output.columns is 2; allowed: 3 {PACKAGE}"
    )
    kind = copy_with(archive, tmp_path / "b", lambda manifest: manifest["output"].update(kind="value"))
    assert refusal("cpu", kind) == (
        "holds a multi:softprob model (xgboost-model), which answers class_probabilities, but its manifest's "
        f"output.kind is 'value'; allowed: 'class_probabilities' {PACKAGE}"
    )


# --- cpu: the formats a model file comes in ---------------------------------------------------------------------


def cpu_manifest(booster: xgb.Booster, features: list[str], **changes: Any) -> dict[str, Any]:
    return {
        "model_file": "xgboost-model",
        "xgboost_version": xgb.__version__,
        "objective": json.loads(booster.save_config())["learner"]["objective"]["name"],
        "features": features,
        "output": {"kind": "value", "columns": 1},
        **changes,
    }


def test_a_training_jobs_ubjson_model_is_read_not_skipped(tmp_path: Path) -> None:
    """SageMaker's XGBoost training saves ``xgboost-model`` with Booster.save_model, which writes UBJSON to a
    name without ``.json``."""
    booster = train("reg:squarederror", 12)
    with pytest.warns(UserWarning, match="Saving model in the UBJSON format as default"):
        booster.save_model(tmp_path / "xgboost-model")
    ubjson = (tmp_path / "xgboost-model").read_bytes()
    assert ubjson[:2] == b"{L"
    good = rebuilt(tmp_path / "good", {"xgboost-model": ubjson}, cpu_manifest(booster, TWELVE))
    assert inspect_artifact(good).feature_count == 12
    wide = rebuilt(tmp_path / "wide", {"xgboost-model": ubjson}, cpu_manifest(booster, [*TWELVE, "extra"]))
    assert refusal("cpu", wide).startswith("holds a model (xgboost-model) with 12 features but its manifest lists 13")


def test_ubjson_and_json_read_alike() -> None:
    booster = train("multi:softprob", 9, num_class=3)
    booster.feature_names = [f"n{index}" for index in range(9)]
    as_json = manifest_check.read_xgboost(bytes(booster.save_raw(raw_format="json")), "m")
    as_ubjson = manifest_check.read_xgboost(bytes(booster.save_raw(raw_format="ubj")), "m")
    assert dataclasses.replace(as_ubjson, ubjson=False) == as_json
    assert (as_json.features, as_json.num_class, as_json.feature_names[:2]) == (9, 3, ("n0", "n1"))
    assert (as_json.objective, as_json.xgboost_version) == ("multi:softprob", ".".join(xgb.__version__.split(".")[:3]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"\x80\x04\x95",
            "holds 'xgboost-model', a pickle, which the synth does not unpickle (loading one runs its code); allowed: "
            "XGBoost JSON or UBJSON, as Booster.save_model writes them (make package writes JSON)",
        ),
        (
            b"binf\x00\x00\x00\x00\x01",
            "holds 'xgboost-model' in a format the synth cannot read (it starts with b'binf\\x00\\x00\\x00\\x00'); "
            "allowed: XGBoost JSON or UBJSON, as Booster.save_model writes them (make package writes JSON)",
        ),
        (
            b"{}",
            "holds 'xgboost-model', which is not an XGBoost model (no learner parameters, objective and version where "
            "XGBoost writes them); allowed: XGBoost JSON or UBJSON, as Booster.save_model writes them (make package "
            "writes JSON)",
        ),
        (
            b'{"learner": ',
            "holds 'xgboost-model', which does not parse as JSON (Expecting value: line 1 column 13 (char 12)); "
            "allowed: XGBoost JSON or UBJSON, as Booster.save_model writes them (make package writes JSON)",
        ),
        (
            b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{",
            "holds 'xgboost-model', which does not parse as UBJSON (the data ends inside a value at byte 18); "
            "allowed: XGBoost JSON or UBJSON, as Booster.save_model writes them (make package writes JSON)",
        ),
    ],
)
def test_a_model_file_the_synth_cannot_read_is_refused_not_passed(data: bytes, message: str, tmp_path: Path) -> None:
    manifest = {"model_file": "xgboost-model", "xgboost_version": xgb.__version__, "features": ["a"]}
    assert refusal("cpu", rebuilt(tmp_path, {"xgboost-model": data}, manifest)) == message


def test_names_stored_in_the_model_must_be_the_manifests_in_order(tmp_path: Path) -> None:
    booster = train("reg:squarederror", 12)
    booster.feature_names = TWELVE
    data = bytes(booster.save_raw(raw_format="json"))
    swapped = ["f1", "f0", *TWELVE[2:]]
    archive = rebuilt(tmp_path, {"xgboost-model": data}, cpu_manifest(booster, swapped))
    assert refusal("cpu", archive) == (
        "holds a model (xgboost-model) whose feature 0 is named 'f0' but its manifest lists 'f1' there; allowed: the "
        f"names stored in the model, in its order {PACKAGE}"
    )


def test_the_manifest_must_name_the_xgboost_that_saved_the_model(tmp_path: Path) -> None:
    booster = train("reg:squarederror", 12)
    data = bytes(booster.save_raw(raw_format="json"))
    archive = rebuilt(tmp_path, {"xgboost-model": data}, cpu_manifest(booster, TWELVE, xgboost_version="1.7.6"))
    saved = ".".join(xgb.__version__.split(".")[:3])
    assert refusal("cpu", archive) == (
        f"holds a reg:squarederror model (xgboost-model) saved with XGBoost {saved} but its manifest says "
        f"xgboost_version '1.7.6'; allowed: '{saved}' {PACKAGE}"
    )


def test_an_archive_holding_a_file_twice_is_refused(tmp_path: Path) -> None:
    """Unpacked, the second copy replaces the first: the checked model would not be the served one."""
    data = bytes(train("reg:squarederror", 12).save_raw(raw_format="json"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("xgboost-model", "./xgboost-model"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(buffer.getvalue())
    manifest = {"sha256": hashlib.sha256(buffer.getvalue()).hexdigest(), "xgboost_version": "3.2.0", "features": []}
    (tmp_path / "model-manifest.json").write_text(json.dumps(manifest))
    assert refusal("cpu", archive) == "holds './xgboost-model' more than once; allowed: each file once"


# --- gpu: the Triton configuration -----------------------------------------------------------------------------


def with_config(archive: Path, folder: Path, edit: Callable[[str], str]) -> Path:
    """The Triton repository with its config.pbtxt edited, the manifest's checksum updated."""
    files = members(archive)
    config = build_triton_artifact.MODEL_NAME + "/config.pbtxt"
    edited = edit(files[config].decode())
    assert edited != files[config].decode()
    return rebuilt(folder, files | {config: edited.encode()}, manifest_of(archive))


def test_a_triton_config_of_another_width_is_refused(packaged: dict[str, Path], tmp_path: Path) -> None:
    archive = artifact_of(packaged["reg12"], "gpu")
    wider = with_config(archive, tmp_path / "a", lambda text: text.replace("dims: [ 12 ]", "dims: [ 13 ]"))
    assert settings_problems("gpu", wider) == [
        "model_artifact='PATH' is invalid: the artifact holds a Triton config (rtb-filter/config.pbtxt) whose input "
        f"takes dims [13] but the model takes 12 features; allowed: dims [12] {PACKAGE}"
    ]


def test_a_triton_config_answering_other_columns_is_refused(packaged: dict[str, Path], tmp_path: Path) -> None:
    archive = artifact_of(packaged["multi3"], "gpu")
    narrower = with_config(archive, tmp_path / "a", lambda text: text.replace("dims: [ 3 ]", "dims: [ 2 ]"))
    assert refusal("gpu", narrower) == (
        "holds a Triton config (rtb-filter/config.pbtxt) whose output has dims [2] but the FIL backend answers 3 "
        f"columns for a multi:softprob model (rtb-filter/1/xgboost.json); allowed: dims [3] {PACKAGE}"
    )
    labels = with_config(
        archive,
        tmp_path / "b",
        lambda text: re.sub(r'(predict_proba"\s*value: \{ string_value: )"true"', r'\1"false"', text),
    )
    assert refusal("gpu", labels) == (
        "holds a Triton config (rtb-filter/config.pbtxt) whose predict_proba is 'false' but the FIL backend needs "
        f"'true' for a multi:softprob model (rtb-filter/1/xgboost.json); allowed: 'true' {PACKAGE}"
    )


def test_the_manifests_triton_block_must_be_the_configs(packaged: dict[str, Path], tmp_path: Path) -> None:
    archive = artifact_of(packaged["reg12"], "gpu")
    copied = copy_with(archive, tmp_path, lambda manifest: manifest["triton"]["input"].update(dims=[13]))
    assert refusal("gpu", copied) == (
        "holds a Triton config (rtb-filter/config.pbtxt) whose input dims is [12] but its manifest's "
        f"triton.input.dims is [13]; allowed: the same value in both {PACKAGE}"
    )


def test_a_triton_repository_without_its_config_is_refused(packaged: dict[str, Path], tmp_path: Path) -> None:
    archive = artifact_of(packaged["reg12"], "gpu")
    files = {name: data for name, data in members(archive).items() if not name.endswith("config.pbtxt")}
    assert refusal("gpu", rebuilt(tmp_path, files, manifest_of(archive))) == (
        "holds no Triton config rtb-filter/config.pbtxt beside its model rtb-filter/1/xgboost.json; allowed: the "
        "model repository make package writes (<name>/config.pbtxt, <name>/1/xgboost.json)"
    )


@pytest.mark.parametrize("objective", sorted(OBJECTIVE_KINDS))
def test_the_fil_rule_is_the_triton_builders(objective: str) -> None:
    classes = 3 if OBJECTIVE_KINDS[objective] == "class_probabilities" else None
    fields = {"objective": objective, "output": {"kind": OBJECTIVE_KINDS[objective], "columns": classes or 1}}
    output = model_output(fields | ({"num_class": classes} if classes else {}))
    try:
        built = build_triton_artifact.fil_settings(output)
    except SourceError:
        assert objective in build_triton_artifact.FIL_UNSUPPORTED
        return
    assert dataclasses.astuple(manifest_check.fil_output(objective, classes)) == dataclasses.astuple(built)


def test_the_config_reader_reads_what_the_builder_writes() -> None:
    fil = build_triton_artifact.FilOutput(output_class=False, predict_proba=False, columns=1)
    config = manifest_check.parse_pbtxt(build_triton_artifact.config_pbtxt(40, fil))
    assert config["name"] == [build_triton_artifact.MODEL_NAME]
    assert config["input"][0]["dims"] == ["40"]
    assert config["output"][0]["name"] == [build_triton_artifact.OUTPUT_NAME]
    assert config["dynamic_batching"][0]["max_queue_delay_microseconds"] == ["100"]
    with pytest.raises(ValueError, match="not closed"):
        manifest_check.parse_pbtxt('input [ { name: "x" ')


# --- inferentia: the traced model, read without torch ---------------------------------------------------------


INF1 = REPO_ROOT / PROFILES["inferentia"].default_artifact


def test_a_committed_trace_with_another_objective_kind_is_refused(tmp_path: Path) -> None:
    def value(manifest: dict[str, Any]) -> None:
        manifest.update(objective="reg:squarederror")
        manifest["output"].update(kind="value")

    copied = copy_with(INF1, tmp_path, value)
    assert settings_problems("inferentia", copied) == [
        "model_artifact='PATH' is invalid: the artifact holds a traced model (model.pth, sigmoid), which answers "
        "probability, but its manifest says objective 'reg:squarederror', which answers value; allowed: an objective "
        f"that answers probability (binary:logistic, reg:logistic) {PACKAGE}"
    ]


def test_a_trace_keeps_only_the_link_so_objectives_of_one_kind_read_alike(tmp_path: Path) -> None:
    """A documented limit: binary:logistic and reg:logistic both trace to a sigmoid (and answer alike)."""
    copied = copy_with(INF1, tmp_path, lambda manifest: manifest.update(objective="reg:logistic"))
    assert inspect_profile_artifact(PROFILES["inferentia"], copied).feature_count == 7


def test_a_committed_trace_with_classes_in_its_manifest_is_refused(tmp_path: Path) -> None:
    copied = copy_with(INF1, tmp_path, lambda manifest: manifest.update(num_class=2))
    assert refusal("inferentia", copied) == (
        "holds a traced model (model.pth, sigmoid), which answers 1 column and no classes, but its manifest says "
        f"num_class 2; allowed: a manifest without num_class {PACKAGE}"
    )


def test_a_neo_input_shape_other_than_the_traced_one_is_refused(tmp_path: Path) -> None:
    copied = copy_with(INF1, tmp_path, lambda manifest: manifest["neo"].update(data_input_config={"input0": [1, 8]}))
    assert settings_problems("inferentia", copied) == [
        "model_artifact='PATH' is invalid: the artifact holds a traced model (model.pth, sigmoid) traced with input "
        'shape [1, 7] but its manifest\'s neo.data_input_config is {"input0": [1, 8]}; allowed: one input of shape '
        f"[1, 7], which Neo compiles {PACKAGE}"
    ]


def the_pth() -> bytes:
    return members(INF1)[inf1_format.MODEL_FILE]


def records_replaced(pth: bytes, replaced: dict[str, bytes | None]) -> bytes:
    """The TorchScript zip with some records (named without the top folder) replaced, or dropped for None."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(pth)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            record = name.split("/", 1)[1]
            if record not in replaced:
                target.writestr(name, source.read(name))
            elif (data := replaced[record]) is not None:
                target.writestr(name, data)
    return out.getvalue()


# Protocol 2 pickles in the shape torch.jit.save writes them (GLOBAL, BINPERSID, NEWOBJ, BUILD), written by hand
# because torch is not installed here. Checked when written: torch 2.13 traces of a 12-feature regression and a
# 3-class model by scripts/build_inf1_artifact.py read exactly as these do, and SOFTMAX_CODE is that trace's code.
def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _text(value: str) -> bytes:
    return b"X" + len(value.encode()).to_bytes(4, "little") + value.encode()


def _int(value: int) -> bytes:
    return b"J" + value.to_bytes(4, "little")


def _ints(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(value) for value in values) + b"t"


def _tensor(shape: tuple[int, ...]) -> bytes:
    """_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks), the storage a persistent id."""
    strides = tuple(math.prod(shape[index + 1 :]) for index in range(len(shape)))
    storage = _text("storage") + _global("torch", "FloatStorage") + _text("0") + _text("cpu") + _int(math.prod(shape))
    hooks = _global("collections", "OrderedDict") + b")R"
    arguments = b"((" + storage + b"tQ" + _int(0) + _ints(shape) + _ints(strides) + b"\x89" + hooks + b"t"
    return _global("torch._utils", "_rebuild_tensor_v2") + arguments + b"R"


def traced_inputs(shape: tuple[int, ...]) -> bytes:
    tag = _global("torch.jit._pickle", "restore_type_tag")
    listed = tag + b"]" + _tensor(shape) + b"a" + _text("List[Any]") + b"\x86R"
    return b"\x80\x02" + tag + b"}" + _text("forward") + listed + b"s" + _text("Dict[str, List[Any]]") + b"\x86R."


def wrapper_state(wrapper: str, margin: tuple[int, ...]) -> bytes:
    state = b"}(" + _text("base_margin") + _tensor(margin) + _text("training") + b"\x89u"
    return b"\x80\x02" + _global("__torch__.rtb_inf1", wrapper) + b")\x81" + state + b"b."


SOFTMAX_CODE = b"""class ClassProbabilities(Module):
  __parameters__ = []
  __buffers__ = ["base_margin", ]
  base_margin : Tensor
  training : bool
  _is_full_backward_hook : Optional[bool]
  trees : __torch__.hummingbird.ml._executor.Executor
  def forward(self: __torch__.rtb_inf1.ClassProbabilities,
    x: Tensor) -> Tensor:
    base_margin = self.base_margin
    trees = self.trees
    _0 = torch.add((trees).forward(x, ), base_margin)
    return torch.softmax(_0, 1)
"""


def test_the_hand_written_pickles_read_as_the_committed_traces() -> None:
    records = inf1_format.records(the_pth())
    committed = manifest_check._unpickle(records["traced_inputs.pkl"])
    assert committed == manifest_check._unpickle(traced_inputs((1, 7)))
    ours = manifest_check._unpickle(wrapper_state("BidFilter", ()))
    theirs = manifest_check._unpickle(records["data.pkl"])
    assert (ours.qualified_name, ours.state["base_margin"]) == (theirs.qualified_name, theirs.state["base_margin"])


def test_a_twelve_feature_three_class_trace_is_read_from_the_archive(tmp_path: Path) -> None:
    pth = records_replaced(
        the_pth(),
        {
            "traced_inputs.pkl": traced_inputs((1, 12)),
            "data.pkl": wrapper_state("ClassProbabilities", (3,)),
            "code/__torch__/rtb_inf1.py": SOFTMAX_CODE,
        },
    )
    read = manifest_check.read_torchscript(pth, "model.pth")
    assert (read.input_shape, read.facts.kind, read.facts.num_class) == ((1, 12), "class_probabilities", 3)
    manifest = manifest_of(INF1) | {
        "features": TWELVE,
        "objective": "multi:softprob",
        "num_class": 3,
        "output": {"kind": "class_probabilities", "columns": 3},
        "neo": manifest_of(INF1)["neo"] | {"data_input_config": {"input0": [1, 12]}},
        "input": {"name": "input0", "shape": [1, 12], "dtype": "float32"},
    }
    good = rebuilt(tmp_path / "good", {"model.pth": pth}, manifest)
    assert inspect_profile_artifact(PROFILES["inferentia"], good).feature_count == 12
    four = rebuilt(tmp_path / "four", {"model.pth": pth}, manifest | {"num_class": 4})
    assert refusal("inferentia", four) == (
        "holds a traced model (model.pth, softmax) with 3 classes but its manifest says num_class 4; allowed: a "
        f"manifest with num_class 3 {PACKAGE}"
    )
    wider = rebuilt(tmp_path / "wider", {"model.pth": pth}, manifest | {"features": [*TWELVE, "extra"]})
    assert refusal("inferentia", wider) == (
        "holds a model (model.pth) with 12 features (traced with input shape [1, 12]) but its manifest lists 13 "
        f"(f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, ... (3 more)); allowed: a manifest listing the model's 12 features "
        f"{PACKAGE}"
    )


def test_a_trace_without_its_recorded_inputs_is_refused(tmp_path: Path) -> None:
    pth = records_replaced(the_pth(), {"traced_inputs.pkl": None})
    archive = rebuilt(tmp_path, {"model.pth": pth}, manifest_of(INF1))
    assert refusal("inferentia", archive) == (
        "holds a TorchScript model (model.pth) without traced_inputs.pkl, where the synth reads its traced input "
        "shape and output; allowed: a model.pth that scripts/build_inf1_artifact.py traced (make inf1-model)"
    )


def test_a_pickle_naming_anything_else_is_refused_and_nothing_in_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = b"\x80\x02" + _global("os", "system") + _text(f"touch {marker}") + b"\x85R."
    pth = records_replaced(the_pth(), {"traced_inputs.pkl": payload})
    archive = rebuilt(tmp_path / "artifact", {"model.pth": pth}, manifest_of(INF1))
    assert refusal("inferentia", archive) == (
        "holds a TorchScript model (model.pth) whose pickles the synth does not read (it references os.system); "
        "allowed: a model.pth that scripts/build_inf1_artifact.py traced (make inf1-model)"
    )
    assert not marker.exists()


def test_a_trace_calling_another_link_is_refused(tmp_path: Path) -> None:
    code = SOFTMAX_CODE.replace(b"torch.softmax(_0, 1)", b"torch.exp(_0)")
    pth = records_replaced(the_pth(), {"code/__torch__/rtb_inf1.py": code})
    assert refusal("inferentia", rebuilt(tmp_path, {"model.pth": pth}, manifest_of(INF1))) == (
        "holds a TorchScript model (model.pth) whose code calls torch.exp, which the synth cannot map to one output "
        "(sigmoid: a probability, softmax: class probabilities, no link: a value); allowed: a model.pth that "
        "scripts/build_inf1_artifact.py traced (make inf1-model)"
    )


def test_the_operators_read_are_the_ones_the_builder_allows() -> None:
    assert manifest_check.TRACED_OPS == inf1_format.TORCH_1_9_OPS
