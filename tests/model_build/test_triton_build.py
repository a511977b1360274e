"""The gpu profile's Triton model repository, checked with the model-building layer (make test-model):
configured for the FIL backend, and scoring what XGBoost scores.

The configuration is parsed into Triton's own ``ModelConfig`` message (``model_config_pb2`` from the
tritonclient release of the pinned server), and the model is read with Treelite, the library the FIL
backend loads XGBoost JSON with, so a model Triton could not read or would score differently fails here.
"""

from __future__ import annotations

import copy
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import treelite
import xgboost as xgb
from google.protobuf import text_format  # type: ignore[import-untyped]  # no types-protobuf in the venv
from tritonclient.grpc import model_config_pb2  # type: ignore[import-untyped]  # tritonclient ships no types

from modelpack import build_triton_artifact as triton
from modelpack.model_rows import probe_rows
from modelpack.model_source import read_source
from tests.test_triton_artifact import CONFIG_FILE, MODEL_FILE, N_ROWS, FloatArray

TOLERANCE = 1e-5
# A queue delay is paid by every request at light load: at most 5 % of the 20 ms p99 budget.
MAX_QUEUE_DELAY_US = 1_000


@pytest.fixture(scope="module")
def config(files: dict[str, bytes]) -> Any:
    return text_format.Parse(files[CONFIG_FILE].decode("utf-8"), model_config_pb2.ModelConfig())


def treelite_probabilities(model_json: bytes, rows: FloatArray) -> FloatArray:
    """Score as the FIL backend's loader reads the file: strict XGBoost JSON, then GTIL."""
    model = treelite.frontend.from_xgboost_json(model_json, allow_unknown_field=False)
    scores = np.asarray(treelite.gtil.predict(model, rows, nthread=1), dtype=np.float32)
    assert scores.shape == (len(rows), 1, 1), "a binary classifier has one target and one class column"
    return scores.reshape(-1)


def parameters(config: Any) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


def fil_output(config: Any, probabilities: FloatArray) -> FloatArray:
    """``output__0`` as the FIL backend fills it for a binary classifier (fil_backend's forest models):
    with predict_proba, a [2] output gets (1 - p, p) and a [1] output gets p; without it, the class."""
    params = parameters(config)
    dims = list(config.output[0].dims)
    p = probabilities.reshape(-1, 1)
    if params.get("predict_proba") == "true" and dims == [2]:
        return np.hstack([np.float32(1.0) - p, p])
    if params.get("predict_proba") == "true" and dims == [1]:
        return p
    if dims == [1]:
        return (p > float(params.get("threshold", "0.5"))).astype(np.float32)
    raise AssertionError(f"the FIL backend cannot fill an output of dims {dims} for a binary classifier")


def tensor(found: Any) -> tuple[str, str, list[int]] | None:
    """(name, data type, dims) of the one tensor in ``found``, or None if there is not exactly one."""
    if len(found) != 1:
        return None
    (only,) = found
    return only.name, model_config_pb2.DataType.Name(only.data_type), list(only.dims)


def config_problems(config: Any, manifest: dict[str, Any]) -> list[str]:
    """Everything in the configuration that would stop Triton serving the 7-feature classifier the way
    the manifest (and so the clients) expect; empty when it is right."""
    problems: list[str] = []
    expected = manifest["triton"]
    params = parameters(config)
    if config.name != expected["model_name"]:
        problems.append(f"name {config.name!r} is not the model folder {expected['model_name']!r}")
    if config.backend != "fil":
        problems.append(f"backend {config.backend!r}, not fil")
    if not 0 < config.max_batch_size == expected["max_batch_size"]:
        problems.append(f"max_batch_size {config.max_batch_size}, manifest says {expected['max_batch_size']}")
    # One FP32 row of every feature in; (P(no bid), P(bid)) out, the pair FIL writes for a [2] output.
    wanted = {
        "input": (triton.INPUT_NAME, "TYPE_FP32", [len(manifest["features"])]),
        "output": (triton.OUTPUT_NAME, "TYPE_FP32", [2]),
    }
    for kind, found in (("input", config.input), ("output", config.output)):
        described = expected[kind]
        if tensor(found) != wanted[kind]:
            problems.append(f"{kind} {tensor(found)}, expected {wanted[kind]}")
        if tensor(found) != (described["name"], described["data_type"], described["dims"]):
            problems.append(f"{kind} {tensor(found)}, manifest says {described}")
    if expected["output"]["positive_class_column"] != 1:
        problems.append("the manifest points clients at another column than P(bid)")
    kinds = {model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind) for group in config.instance_group}
    if kinds != {"KIND_GPU"}:
        problems.append(f"instance groups {sorted(kinds)}, not KIND_GPU")
    if not config.HasField("dynamic_batching"):
        problems.append("no dynamic batching")
    elif not 0 < config.dynamic_batching.max_queue_delay_microseconds <= MAX_QUEUE_DELAY_US:
        problems.append(f"queue delay {config.dynamic_batching.max_queue_delay_microseconds} us")
    for key, value in {"model_type": "xgboost_json", "output_class": "true", "predict_proba": "true"}.items():
        if params.get(key) != value:
            problems.append(f"parameter {key}={params.get(key)!r}, not {value!r}")
    if params.get("xgboost_allow_unknown_field", "false") != "false":
        problems.append("unknown XGBoost fields are skipped: a model the loader misreads would still load")
    return problems


def test_config_is_a_valid_triton_model_config_for_the_fil_backend(config: Any, manifest: dict[str, Any]) -> None:
    assert config_problems(config, manifest) == []


MUTATIONS: dict[str, Callable[[Any], object]] = {
    "input of 6 features": lambda c: c.input[0].dims.__setitem__(0, 6),
    "one output column": lambda c: c.output[0].dims.__setitem__(0, 1),
    "output renamed": lambda c: setattr(c.output[0], "name", "probabilities"),
    "FP64 input": lambda c: setattr(c.input[0], "data_type", model_config_pb2.TYPE_FP64),
    "another backend": lambda c: setattr(c, "backend", "onnxruntime"),
    "CPU instances": lambda c: setattr(c.instance_group[0], "kind", model_config_pb2.ModelInstanceGroup.KIND_CPU),
    "class ids instead of probabilities": lambda c: setattr(c.parameters["predict_proba"], "string_value", "false"),
    "unknown fields allowed": lambda c: setattr(c.parameters["xgboost_allow_unknown_field"], "string_value", "true"),
    "no dynamic batching": lambda c: c.ClearField("dynamic_batching"),
    "a 5 ms queue delay": lambda c: setattr(c.dynamic_batching, "max_queue_delay_microseconds", 5_000),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_broken_config_is_caught(config: Any, manifest: dict[str, Any], mutation: str) -> None:
    broken = copy.deepcopy(config)
    MUTATIONS[mutation](broken)
    assert config_problems(broken, manifest) != []


def test_config_is_parsed_against_tritons_schema_not_leniently(files: dict[str, bytes]) -> None:
    misspelled = files[CONFIG_FILE].decode("utf-8").replace("max_batch_size", "max_batchsize")
    with pytest.raises(text_format.ParseError, match="max_batchsize"):
        text_format.Parse(misspelled, model_config_pb2.ModelConfig())


def test_treelite_reads_the_packaged_model_and_predicts_what_xgboost_predicts(
    files: dict[str, bytes], rows: FloatArray, xgboost_probabilities: FloatArray
) -> None:
    np.testing.assert_allclose(treelite_probabilities(files[MODEL_FILE], rows), xgboost_probabilities, atol=TOLERANCE)


def test_a_changed_model_is_caught_by_the_prediction_check(
    files: dict[str, bytes], rows: FloatArray, xgboost_probabilities: FloatArray
) -> None:
    model = json.loads(files[MODEL_FILE])
    first_tree = model["learner"]["gradient_booster"]["model"]["trees"][0]
    first_tree["base_weights"] = [weight + 0.05 for weight in first_tree["base_weights"]]
    first_tree["split_conditions"] = [value + 0.05 for value in first_tree["split_conditions"]]
    changed = treelite_probabilities(json.dumps(model).encode("utf-8"), rows)
    assert np.abs(changed - xgboost_probabilities).max() > TOLERANCE


def test_probability_of_a_bid_lands_in_the_column_the_manifest_names(
    config: Any, manifest: dict[str, Any], files: dict[str, bytes], rows: FloatArray, xgboost_probabilities: FloatArray
) -> None:
    output = fil_output(config, treelite_probabilities(files[MODEL_FILE], rows))
    column = manifest["triton"]["output"]["positive_class_column"]
    assert output.shape == (N_ROWS, *manifest["triton"]["output"]["dims"])
    np.testing.assert_allclose(output[:, column], xgboost_probabilities, atol=TOLERANCE)
    np.testing.assert_allclose(output.sum(axis=1), 1.0, atol=TOLERANCE)
    decided = output.argmax(axis=1) == column
    np.testing.assert_array_equal(decided, xgboost_probabilities > 0.5)


def test_manifest_reference_outputs_are_what_the_fil_backend_returns(
    config: Any, manifest: dict[str, Any], files: dict[str, bytes]
) -> None:
    reference = manifest["reference"]
    rows = np.array(reference["rows"], dtype=np.float32)
    expected = fil_output(config, treelite_probabilities(files[MODEL_FILE], rows))
    np.testing.assert_allclose(reference["output__0"], expected, atol=TOLERANCE)


def test_sample_request_is_a_v2_inference_request_for_the_configured_input(
    config: Any, manifest: dict[str, Any], source_manifest: dict[str, Any]
) -> None:
    (request_input,) = manifest["sample_request"]["inputs"]
    tensor = config.input[0]
    assert request_input["name"] == tensor.name
    assert request_input["datatype"] == model_config_pb2.DataType.Name(tensor.data_type).removeprefix("TYPE_")
    assert request_input["shape"] == [1, *tensor.dims]
    sample = [float(value) for value in source_manifest["sample_payload"].split(",")]
    assert request_input["data"] == sample
    assert manifest["content_types"]["json"] == "application/json"
    binary = manifest["content_types"]["binary"].format(json_header_size=120)
    assert binary == "application/vnd.sagemaker-triton.binary+json;json-header-size=120"


# Models other than the sample (tests/model_build/conftest.py MODELS): another width, a value output, 3 classes.


def treelite_scores(model_json: bytes, rows: FloatArray) -> FloatArray:
    """GTIL's answer as [rows, classes]: one target, one column per class (one for a regressor or binary)."""
    model = treelite.frontend.from_xgboost_json(model_json, allow_unknown_field=False)
    scores: FloatArray = np.asarray(treelite.gtil.predict(model, rows, nthread=1), dtype=np.float32)
    assert scores.ndim == 3 and scores.shape[:2] == (len(rows), 1), scores.shape
    return scores[:, 0, :]


def fil_answer(config: Any, scores: FloatArray) -> FloatArray:
    """``output__0`` as the FIL backend fills it from GTIL's scores (fil_backend src/tl_model.h, predict)."""
    params = parameters(config)
    classifier, proba = params.get("output_class") == "true", params.get("predict_proba") == "true"
    dims = list(config.output[0].dims)
    if classifier and proba and scores.shape[1] == 1 and dims == [2]:
        return np.hstack([np.float32(1.0) - scores, scores])
    if classifier and not proba:
        if scores.shape[1] > 1:
            classes: FloatArray = np.asarray(scores.argmax(axis=1), dtype=np.float32).reshape(-1, 1)
            return classes
        return (scores > float(params.get("threshold", "0.5"))).astype(np.float32)
    assert dims == [scores.shape[1]], f"FIL cannot fill dims {dims} from {scores.shape[1]} values per row"
    return scores


@pytest.fixture(scope="module")
def other_build(packaged: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The gpu build of a model from MODELS: its source manifest, booster, config, files and manifest."""
    out_dir = tmp_path_factory.mktemp("triton-other")
    archive = triton.build(packaged, out_dir)
    model_bytes, source_manifest = read_source(packaged)
    booster = xgb.Booster()
    booster.load_model(bytearray(model_bytes))
    with tarfile.open(fileobj=io.BytesIO(archive.read_bytes()), mode="r:gz") as tar:
        handles = {m.name: tar.extractfile(m) for m in tar.getmembers() if m.isfile()}
        packaged_files = {name: handle.read() for name, handle in handles.items() if handle is not None}
    return {
        "source": packaged,
        "source_manifest": source_manifest,
        "booster": booster,
        "archive": archive.read_bytes(),
        "files": packaged_files,
        "config": text_format.Parse(packaged_files[CONFIG_FILE].decode("utf-8"), model_config_pb2.ModelConfig()),
        "manifest": json.loads((out_dir / triton.MANIFEST).read_text(encoding="utf-8")),
    }


def expected_fil(source: dict[str, Any]) -> tuple[str, str, list[int]]:
    """What notes/contract.md asks of FIL for the MODELS' objectives: (output_class, predict_proba, dims)."""
    if source["objective"] == "multi:softprob":
        return "true", "true", [source["num_class"]]
    assert source["objective"] == "reg:squarederror", "add the new objective here"
    return "false", "false", [1]


def test_other_models_config_has_the_manifests_width_and_output(other_build: dict[str, Any]) -> None:
    config, described, source = other_build["config"], other_build["manifest"], other_build["source_manifest"]
    output_class, predict_proba, dims = expected_fil(source)
    assert list(config.input[0].dims) == described["triton"]["input"]["dims"] == [len(source["features"])]
    assert list(config.output[0].dims) == described["triton"]["output"]["dims"] == dims
    params = parameters(config)
    assert (params["output_class"], params["predict_proba"]) == (output_class, predict_proba)
    assert params["model_type"] == "xgboost_json" and params["xgboost_allow_unknown_field"] == "false"
    assert (described["output"], described.get("num_class")) == (source["output"], source.get("num_class"))
    assert described["features"] == source["features"]
    assert described["sample_payload"] == source["sample_payload"]
    assert "positive_class_column" not in described["triton"]["output"]


def test_other_models_treelite_reproduces_xgboost_for_the_fil_output(other_build: dict[str, Any]) -> None:
    booster = other_build["booster"]
    rows = probe_rows(booster, N_ROWS, seed=7)
    expected = booster.predict(xgb.DMatrix(rows)).astype(np.float32).reshape(len(rows), -1)
    answer = fil_answer(other_build["config"], treelite_scores(other_build["files"][MODEL_FILE], rows))
    assert answer.shape == (len(rows), *other_build["manifest"]["triton"]["output"]["dims"])
    # Values are compared relative to their size: float32 sums of trees round relative to magnitude.
    np.testing.assert_allclose(answer, expected, rtol=TOLERANCE, atol=TOLERANCE)


def test_other_models_reference_is_what_fil_answers_and_clients_decode(other_build: dict[str, Any]) -> None:
    reference, source = other_build["manifest"]["reference"], other_build["source_manifest"]["reference"]
    assert (reference["rows"], reference["predictions"]) == (source["rows"], source["predictions"])
    rows = np.array(reference["rows"], dtype=np.float32)
    answer = fil_answer(other_build["config"], treelite_scores(other_build["files"][MODEL_FILE], rows))
    np.testing.assert_allclose(reference["output__0"], answer, rtol=TOLERANCE, atol=TOLERANCE)
    decoded = np.array(reference["output__0"]).reshape(np.array(reference["predictions"]).shape)
    np.testing.assert_array_equal(decoded, reference["predictions"])


def test_other_models_build_is_reproducible(other_build: dict[str, Any], tmp_path: Path) -> None:
    again = triton.build(other_build["source"], tmp_path)
    assert again.read_bytes() == other_build["archive"]
    assert json.loads((tmp_path / triton.MANIFEST).read_text(encoding="utf-8")) == other_build["manifest"]


@pytest.mark.parametrize("objective", list(triton.FIL_UNSUPPORTED))
def test_refused_objectives_are_still_unreadable_by_the_pinned_treelite(objective: str) -> None:
    """When Treelite learns the objective, this fails: lift the refusal in FIL_UNSUPPORTED."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    params = {"objective": objective, "nthread": 1, "seed": 1}
    booster = xgb.train(params, xgb.DMatrix(x, label=x[:, 0]), num_boost_round=2)
    with pytest.raises(treelite.TreeliteError, match="Unrecognized XGBoost objective"):
        treelite.frontend.from_xgboost_json(bytes(booster.save_raw(raw_format="json")), allow_unknown_field=False)
