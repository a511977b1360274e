"""Bring your own model: scripts/package_model.py on models of other shapes than the sample's, end to end offline.

Two models are trained here (12 features regression; 40 features, 3 classes), packaged by the command for the
cpu and gpu profiles (the inferentia trace needs the model-building layer: tests/model_build), synthesized in
a stage of each profile, and read back as the container and the kit's client read them. Then the refusals.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from devtools.bench_client import local_client
from devtools.fake_endpoint import FakeEndpoint, packaged_model, stand_in
from modelpack import package_model
from modelpack.archive import reproducible_tar_gz
from modelpack.model_source import CPU_ONLY_OBJECTIVES
from rtb_client import OBJECTIVE_KINDS, ModelSchema, RequestError, codec_for, predict
from stacks.stages import load_stage
from tests.conftest import REPO_ROOT, synthesize

Labels = Callable[[np.ndarray], np.ndarray]
SHAPES: dict[str, tuple[dict[str, Any], int, Labels]] = {
    "reg12": ({"objective": "reg:squarederror"}, 12, lambda x: x[:, 0] * 2.0 + x[:, 3]),
    "multi40": (
        {"objective": "multi:softprob", "num_class": 3},
        40,
        lambda x: (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5),
    ),
}


def train(name: str, **extra: Any) -> xgb.Booster:
    params, width, label = SHAPES[name]
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, width)).astype(np.float32)
    settings = {"nthread": 1, "max_depth": 3, "seed": 7, **params, **extra}
    if settings.get("booster") == "gblinear":
        del settings["max_depth"]  # a tree setting: a linear booster warns that it ignores it
    # The log-link objectives take positive labels (gamma strictly so).
    positive = settings["objective"] in CPU_ONLY_OBJECTIVES
    labels = np.abs(label(x)) + 0.1 if positive else label(x)
    return xgb.train(settings, xgb.DMatrix(x, label=labels), num_boost_round=6)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each model packaged for cpu and gpu, from a JSON booster file and a training job's archive."""
    root = tmp_path_factory.mktemp("own-models")
    folders = {}
    for name in SHAPES:
        model = root / f"{name}.json"
        train(name).save_model(model)
        folders[name] = root / name
        package_model.package(model, folders[name], None, ("cpu", "gpu"))
    return folders


def manifest_of(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / "model-manifest.json").read_text())
    return loaded


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_cpu_archive_loads_and_scores_as_the_container_does(packaged: dict[str, Path], name: str) -> None:
    manifest = manifest_of(packaged[name])
    with tarfile.open(packaged[name] / "model.tar.gz", "r:gz") as archive:
        first = archive.getmembers()[0]  # the container loads the first file at the root
        assert first.name == "xgboost-model"
        member = archive.extractfile(first)
        assert member is not None
        booster = xgb.Booster()
        booster.load_model(bytearray(member.read()))
    _, width, _ = SHAPES[name]
    assert len(manifest["features"]) == width == booster.num_features()
    rows = np.array(manifest["reference"]["rows"], dtype=np.float32)
    scored = booster.predict(xgb.DMatrix(rows))
    assert np.array_equal(np.array(manifest["reference"]["predictions"], dtype=np.float32), scored)
    assert manifest["sample_payload"].split(",") == [repr(value) for value in manifest["reference"]["rows"][0]]


def test_the_manifest_says_what_each_objective_answers(packaged: dict[str, Path]) -> None:
    assert manifest_of(packaged["reg12"])["output"] == {"kind": "value", "columns": 1}
    multi = manifest_of(packaged["multi40"])
    assert (multi["output"], multi["num_class"]) == ({"kind": "class_probabilities", "columns": 3}, 3)


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_triton_config_takes_the_models_width_and_answers_its_columns(packaged: dict[str, Path], name: str) -> None:
    manifest = manifest_of(packaged[name])
    with tarfile.open(packaged[name] / "triton" / "model.tar.gz", "r:gz") as archive:
        member = archive.extractfile("rtb-filter/config.pbtxt")
        assert member is not None
        config = member.read().decode()
    dims = [int(value) for value in re.findall(r"dims: \[ (\d+) \]", config)]
    columns = manifest["output"]["columns"]
    assert dims == [len(manifest["features"]), columns]


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_client_takes_the_models_rows_and_refuses_the_samples(packaged: dict[str, Path], name: str) -> None:
    schema = ModelSchema.from_manifest(manifest_of(packaged[name]))
    rows = manifest_of(packaged[name])["reference"]["rows"]
    for profile in ("cpu", "gpu"):
        assert codec_for(profile).encode(rows)  # rows of the model's width are sent
    schema.check_rows(rows)
    with pytest.raises(RequestError, match=f"the model takes {len(schema.features)}"):
        schema.check_rows([[2.0, 0.0, 0.0, 7.0, 3.0, 20.0, 2.0]])


@pytest.mark.parametrize(
    ("name", "stage"), [("reg12", "dev"), ("multi40", "dev"), ("reg12", "gpu"), ("multi40", "gpu")]
)
def test_a_stage_serves_the_packaged_model(packaged: dict[str, Path], name: str, stage: str, tmp_path: Path) -> None:
    folder = packaged[name] if stage == "dev" else packaged[name] / "triton"
    settings = dataclasses.replace(load_stage(stage), model_artifact=str(folder / "model.tar.gz"))
    synthesized = synthesize(settings, tmp_path)
    assert synthesized.of_type("AWS::SageMaker::Model")
    assert settings.artifact.manifest["features"] == manifest_of(packaged[name])["features"]


def test_packaging_is_reproducible(packaged: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "again.json"
    train("multi40").save_model(model)
    package_model.package(model, tmp_path / "out", None, ("cpu", "gpu"))
    for relative in ("model.tar.gz", "triton/model.tar.gz"):
        assert (tmp_path / "out" / relative).read_bytes() == (packaged["multi40"] / relative).read_bytes()


def test_a_training_jobs_archive_is_packaged_like_its_booster(packaged: dict[str, Path], tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(reproducible_tar_gz({"xgboost-model": bytes(train("reg12").save_raw(raw_format="ubj"))}))
    package_model.package(archive, tmp_path / "out", None, ("cpu",))
    assert (tmp_path / "out" / "model.tar.gz").read_bytes() == (packaged["reg12"] / "model.tar.gz").read_bytes()


def test_feature_names_come_from_the_file(tmp_path: Path) -> None:
    model = tmp_path / "reg.json"
    train("reg12").save_model(model)
    names = [f"signal_{index}" for index in range(12)]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    package_model.package(model, tmp_path / "out", tmp_path / "names.txt", ("cpu",))
    assert manifest_of(tmp_path / "out")["features"] == names


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _newer(tmp_path: Path) -> Path:
    model = json.loads(bytes(train("reg12").save_raw(raw_format="json")))
    model["version"] = [9, 1, 0]
    return _write(tmp_path, "newer.json", json.dumps(model).encode())


def _two_files(tmp_path: Path) -> Path:
    booster = bytes(train("reg12").save_raw(raw_format="json"))
    return _write(tmp_path, "model.tar.gz", reproducible_tar_gz({"xgboost-model": booster, "extra.json": booster}))


def _saved(tmp_path: Path, name: str, **extra: Any) -> Path:
    path = tmp_path / "model.json"
    train(name, **extra).save_model(path)
    return path


REFUSALS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "newer XGBoost": (
        lambda tmp: [str(_newer(tmp))],
        "the model was saved with XGBoost 9.1.0, newer than the kit's",
    ),
    "two model files": (lambda tmp: [str(_two_files(tmp))], r"holds 2 files \(extra.json, xgboost-model\)"),
    "pickle": (lambda tmp: [str(_write(tmp, "m.pkl", pickle.dumps({"a": 1})))], "holds a pickled booster"),
    "softmax": (
        lambda tmp: [str(_saved(tmp, "multi40", objective="multi:softmax"))],
        "objective 'multi:softmax' is not served: it answers a class label",
    ),
    "poisson on gpu": (
        lambda tmp: [str(_saved(tmp, "reg12", objective="count:poisson")), "--profiles", "cpu,gpu"],
        "gpu: objective count:poisson is served by the cpu profile only: the gpu profile's converter",
    ),
    "gamma on inferentia": (
        lambda tmp: [str(_saved(tmp, "reg12", objective="reg:gamma")), "--profiles", "cpu,inferentia"],
        r"inferentia: objective reg:gamma is served by the cpu profile only: .* \(hummingbird-ml's trace\)",
    ),
    "cox": (
        lambda tmp: [str(_saved(tmp, "reg12", objective="survival:cox"))],
        "objective 'survival:cox' is not served: the kit's profiles are not checked for its output",
    ),
    "linear booster": (lambda tmp: [str(_saved(tmp, "reg12", booster="gblinear"))], "is a gblinear booster"),
    "short feature list": (
        lambda tmp: [str(_saved(tmp, "reg12")), "--features", str(_write(tmp, "f.txt", b"a\nb\nc\n"))],
        "lists 3 names; the model takes 12 features",
    ),
    "unknown profile": (lambda tmp: [str(_saved(tmp, "reg12")), "--profiles", "cpu,tpu"], "--profiles 'cpu,tpu'"),
    "missing file": (lambda tmp: [str(tmp / "nope.json")], "no such file"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_model_the_containers_cannot_serve_is_refused_in_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_args, expected = REFUSALS[case]
    assert package_model.main([*make_args(tmp_path), "--out-dir", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("package_model: ")
    assert re.search(expected, error), error
    assert not (tmp_path / "out" / "model.tar.gz").exists()


def test_a_categorical_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(200, 3)).astype(np.float32)
    matrix = xgb.DMatrix(x, label=x[:, 0], feature_types=["c", "q", "q"], enable_categorical=True)
    model = tmp_path / "cat.json"
    xgb.train({"nthread": 1, "max_depth": 2, "tree_method": "hist"}, matrix, 3).save_model(model)
    assert package_model.main([str(model), "--out-dir", str(tmp_path / "out")]) == 1
    assert "splits on categorical features" in capsys.readouterr().err


def test_the_ubjson_version_is_read_from_the_model_itself() -> None:
    raw = bytes(train("reg12").save_raw(raw_format="ubj"))
    assert package_model.saved_version(raw) == xgb.__version__
    assert package_model.saved_version(io.BytesIO(bytes(train("reg12").save_raw(raw_format="json"))).read()) == (
        xgb.__version__
    )


def test_no_code_outside_the_samples_own_files_names_its_features() -> None:
    # Shapes come from manifests: the sample's feature names, as string literals, belong to its training
    # script and artifacts ("hour" as a word in a comment is not a feature).
    sample = json.loads((REPO_ROOT / "model_artifacts" / "model-manifest.json").read_text())["features"]
    own = {REPO_ROOT / "modelpack" / "train_model.py"}
    # Every room of code (each top-level package) and the client package; tests and artifacts are not code.
    rooms = sorted({init.parent for init in REPO_ROOT.glob("*/__init__.py")} - {REPO_ROOT / "tests"})
    code = [path for folder in [REPO_ROOT / "client", *rooms] for path in sorted(folder.rglob("*.py"))]
    assert {REPO_ROOT / name for name in ("stacks", "scripts", "modelpack", "loadgen")} <= set(rooms)
    named = {
        str(path.relative_to(REPO_ROOT)): [name for name in sample if re.search(rf"[\"']{re.escape(name)}[\"']", text)]
        for path in code
        if path not in own and (text := path.read_text())
    }
    assert {path: names for path, names in named.items() if names} == {}
    assert len(code) > 20 and len(sample) > 1  # the scan saw the code and the names


# --- the log-link objectives: the cpu profile serves them, the others refuse them in one line -----------------


@pytest.mark.parametrize("objective", CPU_ONLY_OBJECTIVES)
def test_a_log_link_model_is_packaged_for_cpu_and_skipped_for_the_others_with_the_reason(
    objective: str, tmp_path: Path
) -> None:
    model = _saved(tmp_path, "reg12", objective=objective)
    lines = package_model.package(model, tmp_path / "out", None)
    assert lines[0].startswith(f"cpu: {tmp_path / 'out' / 'model.tar.gz'} (12 features, {objective})")
    for line, profile in zip(lines[1:], ("gpu", "inferentia"), strict=True):
        assert line.startswith(f"{profile}: skipped (objective {objective} is served by the cpu profile only: "), line
    assert not (tmp_path / "out" / "triton").exists()
    manifest = manifest_of(tmp_path / "out")
    assert OBJECTIVE_KINDS[objective] == "positive_value" == manifest["output"]["kind"]
    assert ModelSchema.from_manifest(manifest) == ModelSchema(tuple(manifest["features"]), "positive_value", 1)
    assert all(prediction > 0 for prediction in manifest["reference"]["predictions"])


def test_the_cpu_profile_serves_a_poisson_model_and_the_client_checks_its_answers(tmp_path: Path) -> None:
    model = _saved(tmp_path, "reg12", objective="count:poisson")
    package_model.package(model, tmp_path / "out", None, ("cpu",))
    manifest = manifest_of(tmp_path / "out")
    rows = manifest["reference"]["rows"]
    served = packaged_model(tmp_path / "out" / "model.tar.gz")
    with FakeEndpoint(workers=1, service_time=0.001, model=served) as server:
        assert predict(local_client(server.url), "ep", rows, served.schema) == manifest["reference"]["predictions"]
    assert all(value > 0 for (value,) in stand_in(manifest).scores(rows))  # the fake's stand-in answers so too
    schema = ModelSchema.from_manifest(manifest)
    for bad in (b"0.0\n", b"-1.5\n"):  # a margin, or an answer of another link, is not a count's rate
        with pytest.raises(RequestError, match="allowed: positive numbers"):
            codec_for("cpu").decode(bad, 1, schema)


def test_a_stage_serves_a_log_link_model_on_cpu(tmp_path: Path) -> None:
    model = _saved(tmp_path, "reg12", objective="reg:tweedie")
    package_model.package(model, tmp_path / "out", None, ("cpu",))
    settings = dataclasses.replace(load_stage("dev"), model_artifact=str(tmp_path / "out" / "model.tar.gz"))
    synthesized = synthesize(settings, tmp_path / "synth")
    assert synthesized.of_type("AWS::SageMaker::Model")
    assert settings.artifact.manifest["objective"] == "reg:tweedie"
