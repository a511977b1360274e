"""The kit's client and the post-deploy smoke test, against botocore's real service models (Stubber), the
recorded bodies of each serving profile (tests/fixtures/client), local stand-ins for the containers, and
models of other shapes than the sample's (built here) served by the fake endpoint in every profile's format."""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import io
import json
import math
import random
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

import rtb_client
from devtools.bench_client import Reply, answers_for, local_endpoint
from devtools.fake_endpoint import FakeEndpoint, Model, packaged_model, profile_model, score_csv, stand_in
from modelpack.model_manifest import packaged_manifest_path, read_manifest, sample
from operations import smoke_test
from operations.invoke import EndpointSession
from rtb_client import (
    FLOAT32_MAX,
    PROFILES,
    ModelSchema,
    Prediction,
    RequestError,
    codec_for,
    decode_predictions,
    encode_rows,
    predict,
    runtime_client,
    stack_output,
)
from stacks.stages import load_stage

from .conftest import REPO_ROOT, offline_env

# The sample model's committed manifest: the only place its 7 features and their names appear in these tests.
# Tests of the sample name its archive (SAMPLE_ARCHIVE), never a stage: a stage may serve a model of the user's.
SAMPLE_ARCHIVE = "model_artifacts/model.tar.gz"
SAMPLE_MANIFEST = read_manifest(REPO_ROOT / "model_artifacts" / "model-manifest.json")
SCHEMA = ModelSchema.from_manifest(SAMPLE_MANIFEST)
SAMPLE = [float(value) for value in SAMPLE_MANIFEST["sample_payload"].split(",")]
ROWS = [SAMPLE, [1.0, 23.0, 10.0, 50.0, 35.0, 370.0, 7.0], [6.0, 15.0, 0.0, 18.0, 5.0, 171.0, 2.0]]
ENDPOINT = "RtbInference-dev-InferenceEndpointA45980A1-ABC123"
RECORDED = REPO_ROOT / "tests" / "fixtures" / "client"
# The packaged model's probability for SAMPLE (model_artifacts/model-manifest.json), as each recorded answer holds it.
SAMPLE_PROBABILITY = 0.652265191078186
# Schemas of other shapes, for the codecs: three features named as no model of the kit names them.
NAMES = ("a", "b", "c")
PROBABILITY = ModelSchema(NAMES, "probability", 1)
VALUE = ModelSchema(NAMES, "value", 1)
CLASSES = ModelSchema(NAMES, "class_probabilities", 3)


@functools.cache  # one session: its clients share the loaded service models, which keeps the tests fast
def _session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def _body(text: str) -> StreamingBody:
    data = text.encode()
    return StreamingBody(io.BytesIO(data), len(data))


# --- the package ad servers install: boto3 its only dependency, nothing of the kit's app -------------------


def test_the_client_is_a_package_of_its_own_whose_only_dependency_is_boto3() -> None:
    project = tomllib.loads((REPO_ROOT / "client" / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == ["boto3>=1.34"]
    installed = importlib.metadata.distribution(project["name"])  # as make setup installed it
    assert installed.requires == project["dependencies"]
    assert Path(rtb_client.__file__).resolve() == REPO_ROOT / "client" / "rtb_client" / "__init__.py"  # editable


def test_the_client_imports_nothing_but_the_standard_library_and_boto3() -> None:
    modules = REPO_ROOT / "client" / "rtb_client"
    imported = set()
    for path in modules.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported - sys.stdlib_module_names == {"boto3", "botocore"}
    # Vendored as one file, it loads with the standard library alone: boto3 is imported on first use.
    code = "import sys; sys.path.insert(0, 'client'); import rtb_client; print('boto3' in sys.modules)"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


def test_runtime_client_pools_connections_with_tight_timeouts_and_bounded_retries() -> None:
    config = runtime_client(_session(), pool_size=32).meta.config
    assert config.max_pool_connections == 32
    assert (config.connect_timeout, config.read_timeout) == (0.5, 1.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert config.tcp_keepalive is True


def test_rows_become_headerless_csv_lines_of_exact_numbers() -> None:
    assert encode_rows([SAMPLE, [1, 23, 10, 50, 35, 369.9999, 1234567]], SCHEMA) == (
        b"2.0,0.0,0.0,7.0,3.0,20.0,2.0\n1.0,23.0,10.0,50.0,35.0,369.9999,1234567.0\n"
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (SAMPLE[:6], "row 0 has 6 values; the model takes 7: " + ", ".join(SCHEMA.features)),
        ([*SAMPLE, 1.0], "row 0 has 8 values; the model takes 7"),
        ([math.inf, *SAMPLE[1:]], "row 0 value 0 (dow) is inf; allowed: finite numbers within float32's range"),
        ([*SAMPLE[:3], -math.inf, *SAMPLE[4:]], "row 0 value 3 (IndexDomain) is -inf; allowed: finite numbers"),
        (
            [*SAMPLE[:6], 1e39],
            "row 0 value 6 (device_type_id) is 1e+39; allowed: finite numbers within float32's "
            "range (|x| <= 3.4028234663852886e+38)",
        ),
        (["2", *SAMPLE[1:]], "row 0 value 0 (dow) is '2'; allowed: finite numbers"),
        ([True, *SAMPLE[1:]], "row 0 value 0 (dow) is True; allowed: finite numbers"),
    ],
)
def test_malformed_rows_are_refused_before_any_request(row: list[Any], message: str) -> None:
    with pytest.raises(RequestError, match=re.escape(message)):
        encode_rows([row], SCHEMA)


def test_the_row_count_and_names_come_from_the_schema_not_the_sample() -> None:
    forty = ModelSchema(tuple(f"x{i}" for i in range(40)), "class_probabilities", 3)
    encode_rows([[0.5] * 40], forty)
    with pytest.raises(
        RequestError, match=r"row 1 has 7 values; the model takes 40: x0, x1, .*, x9, \.\.\. \(30 more\)$"
    ):
        encode_rows([[0.5] * 40, SAMPLE], forty)
    assert float.fromhex("0x1.fffffep+127") == FLOAT32_MAX
    encode_rows([[FLOAT32_MAX, -FLOAT32_MAX, 1e-45]], PROBABILITY)


def test_predictions_are_read_whether_comma_or_newline_separated() -> None:
    assert decode_predictions(b"0.25,0.5\n", 2, PROBABILITY) == [0.25, 0.5]
    assert decode_predictions(b"0.25\n0.5\n", 2, PROBABILITY) == [0.25, 0.5]
    with pytest.raises(RequestError, match="expected 3 predictions, got 2"):
        decode_predictions(b"0.25,0.5", 3, PROBABILITY)


def test_class_probabilities_are_read_one_python_list_per_line() -> None:
    body = b"[0.1, 0.2, 0.7]\n[0.25, 0.25, 0.5]\n"
    assert decode_predictions(body, 2, CLASSES) == [(0.1, 0.2, 0.7), (0.25, 0.25, 0.5)]


CSV_SAMPLE = b"2.0,0.0,0.0,7.0,3.0,20.0,2.0\n"


def test_predict_sends_a_valid_invoke_endpoint_request() -> None:
    client = runtime_client(_session(), transport="boto3")  # Stubber stubs boto3's client
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": _body("0.652265191078186\n"), "ContentType": "text/csv"},
            {"EndpointName": ENDPOINT, "ContentType": "text/csv", "Accept": "text/csv", "Body": CSV_SAMPLE},
        )
        assert predict(client, ENDPOINT, [SAMPLE], SCHEMA) == [0.652265191078186]
        stub.assert_no_pending_responses()


def test_stack_output_reads_the_endpoint_name() -> None:
    cloudformation = _session().client("cloudformation")
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", _stacks(), {"StackName": "RtbInference-dev"})
        assert stack_output(cloudformation, "RtbInference-dev", "EndpointName") == ENDPOINT
        stub.add_response("describe_stacks", _stacks(), {"StackName": "RtbInference-dev"})
        with pytest.raises(LookupError, match="has no output Missing"):
            stack_output(cloudformation, "RtbInference-dev", "Missing")


def _stacks() -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": "RtbInference-dev",
                "CreationTime": "2026-11-21T00:00:00Z",
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": [{"OutputKey": "EndpointName", "OutputValue": ENDPOINT}],
            }
        ]
    }


class _Session:
    """A boto3 session whose clients are stubbed (the smoke test asks it for CloudFormation)."""

    def __init__(self, cloudformation: Any) -> None:
        self._cloudformation = cloudformation

    def client(self, name: str) -> Any:
        assert name == "cloudformation"
        return self._cloudformation


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ("0.652265191078186", "ok: "),
        ("0.9", "returned 0.9; the packaged model gives 0.652265191078186"),
        ("1.5", "prediction 0 is 1.5; allowed: probabilities in [0, 1]"),
    ],
)
def test_smoke_test_passes_only_on_the_packaged_models_answer(
    monkeypatch: pytest.MonkeyPatch, answer: str, outcome: str
) -> None:
    monkeypatch.setattr(smoke_test, "load_stage", _stage_with("cpu", SAMPLE_MANIFEST, SAMPLE_ARCHIVE))
    cloudformation = _session().client("cloudformation")
    runtime = runtime_client(_session(), transport="boto3")  # Stubber stubs boto3's client
    with Stubber(cloudformation) as cfn_stub, Stubber(runtime) as runtime_stub:
        cfn_stub.add_response("describe_stacks", _stacks(), {"StackName": "RtbInference-dev"})
        runtime_stub.add_response("invoke_endpoint", {"Body": _body(answer)})
        if outcome.startswith("ok"):
            assert smoke_test.run("dev", _Session(cloudformation), runtime).startswith(f"ok: {ENDPOINT} scored")
        else:
            with pytest.raises((AssertionError, RequestError), match=re.escape(outcome)):
                smoke_test.run("dev", _Session(cloudformation), runtime)


@pytest.mark.slow
def test_the_smoke_test_of_a_local_endpoint_needs_no_aws_configuration(tmp_path: Path) -> None:
    # Its help's local example: the fake endpoint serving the packaged model, on a machine without AWS setup.
    assert "--stage dev --endpoint-url http://127.0.0.1:8080" in (smoke_test.__doc__ or "")
    assert "fake_endpoint --model model_artifacts/model.tar.gz" in (smoke_test.__doc__ or "")
    # The model dev serves (the sample, or a model of the user's that stacks/stages.py points dev at).
    dev = load_stage("dev")
    model = packaged_model(dev.artifact_path)
    _, expected = sample(dev.artifact.manifest, dev.artifact_file)
    shown = ", ".join(f"{value:.6f}" for value in (expected if isinstance(expected, tuple) else (expected,)))
    with FakeEndpoint(
        workers=1, service_time=0.001, profile=dev.profile, model=model, endpoint_name="fake-endpoint"
    ) as server:
        result = subprocess.run(
            [sys.executable, "scripts/smoke_test.py", "--stage", "dev", "--endpoint-url", server.url],
            cwd=REPO_ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: fake-endpoint scored the sample row {shown} in ")
    assert server.stats.served == 1


def test_smoke_test_exits_non_zero_with_one_line_on_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke_test.main(["--stage", "staging"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("smoke test failed: stage 'staging' has 1 invalid setting(s): - stage='staging'")
    assert error.count("\n") == 1


# --- serving profiles: each codec against the bodies recorded from its container's documented format ---


def _recorded(profile: str, kind: str) -> Path:
    (path,) = RECORDED.glob(f"{profile}.{kind}.*")
    return path


def test_each_profile_sends_its_containers_content_type() -> None:
    assert {profile: (codec_for(profile).content_type, codec_for(profile).accept) for profile in PROFILES} == {
        "cpu": ("text/csv", "text/csv"),
        "gpu": ("application/json", "application/json"),
        "inferentia": ("application/json", "application/json"),
    }


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_encodes_the_sample_row_as_its_recorded_request(profile: str) -> None:
    recorded = _recorded(profile, "request")
    body = codec_for(profile).encode([SAMPLE])
    if recorded.suffix == ".json":
        assert json.loads(body) == json.loads(recorded.read_bytes())
    else:
        assert body == recorded.read_bytes()


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_reads_the_probability_from_its_recorded_response(profile: str) -> None:
    assert codec_for(profile).decode(_recorded(profile, "response").read_bytes(), 1, SCHEMA) == [SAMPLE_PROBABILITY]


def test_gpu_takes_class_1_from_per_class_probabilities_given_flat_or_nested() -> None:
    def answer(data: list[Any]) -> bytes:
        output = {"name": "output__0", "datatype": "FP32", "shape": [3, 2], "data": data}
        return json.dumps({"model_name": "rtb-filter", "outputs": [{"name": "other"}, output]}).encode()

    decode = codec_for("gpu").decode
    assert decode(answer([0.9, 0.1, 0.8, 0.2, 0.25, 0.75]), 3, PROBABILITY) == [0.1, 0.2, 0.75]
    assert decode(answer([[0.9, 0.1], [0.8, 0.2], [0.25, 0.75]]), 3, PROBABILITY) == [0.1, 0.2, 0.75]


def _triton(shape: Any, data: Any, name: str = "output__0") -> bytes:
    return json.dumps({"outputs": [{"name": name, "datatype": "FP32", "shape": shape, "data": data}]}).encode()


def test_gpu_reads_one_column_values_and_k_class_probabilities() -> None:
    decode = codec_for("gpu").decode
    assert decode(_triton([2, 1], [0.25, 0.5]), 2, PROBABILITY) == [0.25, 0.5]  # reg:logistic: dims [1]
    assert decode(_triton([2, 1], [-3.5, 1234.5]), 2, VALUE) == [-3.5, 1234.5]
    assert decode(_triton([1, 3], [0.1, 0.2, 0.7]), 1, CLASSES) == [(0.1, 0.2, 0.7)]


@pytest.mark.parametrize(
    ("body", "schema", "expected"),
    [
        (b"[0.25]", PROBABILITY, [0.25]),
        (b"[[0.25]]", PROBABILITY, [0.25]),
        (b"[-3.5]", VALUE, [-3.5]),
        (b"[[0.1, 0.2, 0.7]]", CLASSES, [(0.1, 0.2, 0.7)]),
    ],
)
def test_inferentia_reads_rows_or_rows_by_columns(body: bytes, schema: ModelSchema, expected: list[Any]) -> None:
    assert codec_for("inferentia").decode(body, 1, schema) == expected


@pytest.mark.parametrize(
    ("profile", "body", "schema", "message"),
    [
        ("gpu", b'{"error": "batch-size must be <= 8"}', PROBABILITY, "Triton answered an error: batch-size must be"),
        (
            "gpu",
            _triton([1, 2], [0.5, 0.5], name="output__1"),
            PROBABILITY,
            "no output output__0; outputs: ['output__1']",
        ),
        ("gpu", _triton([1, 3], [0.2, 0.3, 0.5]), PROBABILITY, "output__0 has shape [1, 3]; expected [1, 2] or [1, 1]"),
        ("gpu", _triton([1, 2], [0.5, 0.5]), VALUE, "output__0 has shape [1, 2]; expected [1, 1]"),
        ("gpu", _triton([1, 2], [0.5, 0.5]), CLASSES, "output__0 has shape [1, 2]; expected [1, 3]"),
        ("gpu", _triton([2, 2], [0.5, 0.5, 0.5, 0.5]), PROBABILITY, "output__0 has shape [2, 2]; expected [1, 2]"),
        ("gpu", _triton([1, 2], [0.5]), PROBABILITY, "output__0 of shape [1, 2] holds 1 values"),
        ("gpu", _triton([1, 2], [0.5, "x"]), PROBABILITY, "output__0 holds 'x', not a number"),
        ("gpu", _triton([1, 2], [0.5, 0.6]), PROBABILITY, "class probabilities sum to 1.1; allowed: 1 within 0.0001"),
        ("gpu", b"[0.5, 0.5]", PROBABILITY, "expected a KServe v2 inference response object"),
        ("gpu", b"<html>Bad Gateway</html>", PROBABILITY, "the answer is not JSON"),
        ("inferentia", b"[0.25, 0.75]", PROBABILITY, "expected 1 predictions, got 2"),
        ("inferentia", b"[[0.25, 0.75]]", PROBABILITY, "prediction 0 has 2 values; the model answers 1"),
        ("inferentia", b"[[[0.25]]]", PROBABILITY, "prediction 0 is [[0.25]]; expected a number or [number]"),
        ("inferentia", b"[0.1, 0.2, 0.7]", CLASSES, "expected 1 predictions, got 3"),
        ("inferentia", b"[0.1]", CLASSES, "prediction 0 is 0.1; expected a list of 3 numbers"),
        ("inferentia", b'{"error": "boom"}', PROBABILITY, "expected a JSON array of predictions"),
        ("inferentia", b"[[null]]", PROBABILITY, "prediction 0 holds None, not a number"),
        ("cpu", b"<html>", PROBABILITY, "the answer holds '<html>', not a number"),
        ("cpu", b"1_0\n", VALUE, "the answer holds '1_0', not a number"),
        ("cpu", b"0.5\n", CLASSES, "answer line 0 is '0.5'; expected a list of 3 numbers"),
        ("cpu", b"[0.5, 0.5]\n", CLASSES, "prediction 0 has 2 values; the model answers 3"),
        ("cpu", b"[0.5, x, 0.5]\n", CLASSES, "answer line 0 holds 'x', not a number"),
    ],
)
def test_answers_that_do_not_fit_the_request_are_request_errors(
    profile: str, body: bytes, schema: ModelSchema, message: str
) -> None:
    with pytest.raises(RequestError, match=re.escape(message)):
        codec_for(profile).decode(body, 1, schema)


# --- exact encoding and strict decoding, per codec -------------------------------------------------------


def _sent_numbers(profile: str, body: bytes) -> list[float]:
    """The numbers a container reads from a request body (text/csv, KServe v2 data, or the Neo array)."""
    if profile == "cpu":
        return [float(part) for line in body.decode().splitlines() for part in line.split(",")]
    if profile == "gpu":
        (tensor,) = json.loads(body)["inputs"]
        return [float(value) for value in tensor["data"]]
    return [float(value) for row in json.loads(body) for value in row]


def _same(a: float, b: float) -> bool:
    """Equal as floats, and the same sign of zero."""
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


# %g would send 370, 1.23457e+06, ...; repr(float) reads back as the very same float.
EDGES = [369.9999, 1234567, 1e-7, -0.0, 3.4e38, -3.4e38, FLOAT32_MAX, 5e-324, 0.1, 1 / 3, 2**53 + 1.0]
_SEEDED = random.Random(20261201)
SEEDED = EDGES + [_SEEDED.uniform(-1, 1) * 10 ** _SEEDED.randint(-30, 30) for _ in range(200)]


@pytest.mark.parametrize("profile", PROFILES)
def test_each_codec_sends_every_number_exactly(profile: str) -> None:
    schema = ModelSchema(tuple(f"v{i}" for i in range(len(SEEDED))), "value", 1)
    schema.check_rows([SEEDED])
    sent = _sent_numbers(profile, codec_for(profile).encode([SEEDED]))
    assert all(_same(got, float(want)) for got, want in zip(sent, SEEDED, strict=True))


@pytest.mark.slow
def test_any_float32_range_row_round_trips_through_every_codec() -> None:
    # Hypothesis is imported here, not at the top: the quick loop collects this module without paying for it.
    from hypothesis import given, settings
    from hypothesis import strategies as st

    floats = st.floats(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX, allow_nan=False)

    @settings(derandomize=True, max_examples=300, deadline=None)
    @given(st.lists(floats, min_size=1, max_size=12))
    def round_trips(row: list[float]) -> None:
        ModelSchema(tuple(f"v{i}" for i in range(len(row))), "value", 1).check_rows([row])
        for profile in PROFILES:
            sent = _sent_numbers(profile, codec_for(profile).encode([row]))
            assert all(_same(got, want) for got, want in zip(sent, row, strict=True)), profile

    round_trips()


def _answer(profile: str, schema: ModelSchema, rows: list[list[float]]) -> bytes:
    """An answer in the profile's format holding ``rows`` (``columns`` numbers each), as the container writes it."""
    if profile == "cpu":
        lines = [repr(row[0]) if schema.columns == 1 else str(row) for row in rows]
        return ("\n".join(lines) + "\n").encode()
    if profile == "gpu":
        return _triton([len(rows), schema.columns], [value for row in rows for value in row])
    return json.dumps([row[0] if schema.columns == 1 else row for row in rows]).encode()


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1.7, -3.0, 1.0000001])
def test_a_probability_outside_0_to_1_or_not_finite_is_refused(profile: str, bad: float) -> None:
    allowed = "finite numbers" if not math.isfinite(bad) else "probabilities in [0, 1]"
    with pytest.raises(RequestError, match=re.escape(f"prediction 1 is {bad!r}; allowed: {allowed}")):
        codec_for(profile).decode(_answer(profile, PROBABILITY, [[0.5], [bad]]), 2, PROBABILITY)
    with pytest.raises(RequestError, match=re.escape(f"prediction 0 is {bad!r}; allowed: {allowed}")):
        codec_for(profile).decode(_answer(profile, CLASSES, [[bad, 0.0, 1.0 - bad]]), 1, CLASSES)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_value_may_be_any_finite_number_but_not_nan_or_inf(profile: str) -> None:
    decode = codec_for(profile).decode
    assert decode(_answer(profile, VALUE, [[1.7], [-3.0], [3.4e38]]), 3, VALUE) == [1.7, -3.0, 3.4e38]
    for bad in (math.nan, math.inf):
        with pytest.raises(RequestError, match=f"prediction 0 is {bad!r}; allowed: finite numbers"):
            decode(_answer(profile, VALUE, [[bad]]), 1, VALUE)


@pytest.mark.parametrize("profile", PROFILES)
def test_class_probabilities_must_sum_to_1(profile: str) -> None:
    decode = codec_for(profile).decode
    assert decode(_answer(profile, CLASSES, [[0.1, 0.2, 0.70005]]), 1, CLASSES) == [(0.1, 0.2, 0.70005)]
    with pytest.raises(RequestError, match=r"prediction 0's class probabilities sum to 0\.6000\d*; allowed: 1 within"):
        decode(_answer(profile, CLASSES, [[0.2, 0.2, 0.2]]), 1, CLASSES)


@pytest.mark.parametrize("profile", ["cpu", "inferentia"])
@pytest.mark.parametrize("schema", [PROBABILITY, VALUE, CLASSES])
def test_an_answer_with_the_wrong_number_of_predictions_is_refused(profile: str, schema: ModelSchema) -> None:
    row = [0.5] if schema.columns == 1 else [0.25, 0.25, 0.5]
    with pytest.raises(RequestError, match="expected 3 predictions, got 2"):
        codec_for(profile).decode(_answer(profile, schema, [row, row]), 3, schema)


@pytest.mark.parametrize("schema", [PROBABILITY, VALUE, CLASSES])
def test_a_triton_answer_with_the_wrong_number_of_rows_is_refused(schema: ModelSchema) -> None:
    row = [0.5] if schema.columns == 1 else [0.25, 0.25, 0.5]
    with pytest.raises(RequestError, match=rf"has shape \[2, {schema.columns}\]; expected \[3, "):
        codec_for("gpu").decode(_answer("gpu", schema, [row, row]), 3, schema)


def test_an_unknown_profile_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"profile='tpu' is invalid: allowed: one of \['cpu', 'gpu', 'inferentia'\]"):
        predict(None, ENDPOINT, [SAMPLE], SCHEMA, profile="tpu")


# --- the schema from a manifest ---------------------------------------------------------------------------


def test_every_committed_manifest_gives_the_schema_of_its_model() -> None:
    samples = {packaged_manifest_path(profile) for profile in PROFILES}
    manifests = sorted((REPO_ROOT / "model_artifacts").glob("**/model-manifest.json"))  # with a user's own models
    assert samples <= set(manifests)
    for path in manifests:
        manifest = read_manifest(path)
        schema = ModelSchema.from_manifest(manifest)
        assert schema.features == tuple(manifest["features"]), path
        if path in samples:
            assert (schema.kind, schema.columns) == ("probability", 1), path  # all three serve the binary sample


def _manifest(**fields: Any) -> dict[str, Any]:
    return {"features": list(NAMES), "objective": "binary:logistic", **fields}


@pytest.mark.parametrize(
    ("manifest", "schema"),
    [
        (_manifest(), PROBABILITY),  # written before `output` existed: binary:logistic only
        (_manifest(output={"dtype": "float32", "shape": [1]}), PROBABILITY),  # a tensor description only
        (_manifest(output={"kind": "probability", "columns": 1}), PROBABILITY),
        (_manifest(objective="reg:logistic", output={"kind": "probability", "columns": 1}), PROBABILITY),
        (_manifest(objective="reg:squarederror", output={"kind": "value", "columns": 1}), VALUE),
        (_manifest(objective="reg:pseudohubererror", output={"kind": "value", "columns": 1, "dtype": "x"}), VALUE),
        (
            _manifest(objective="multi:softprob", num_class=3, output={"kind": "class_probabilities", "columns": 3}),
            CLASSES,
        ),
    ],
)
def test_a_manifest_gives_its_schema(manifest: dict[str, Any], schema: ModelSchema) -> None:
    assert ModelSchema.from_manifest(manifest) == schema


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            _manifest(objective="reg:squarederror"),
            "no output kind and columns; allowed without them: objective binary:logistic only, not reg:squarederror",
        ),
        (_manifest(objective="multi:softmax"), "the manifest's objective is 'multi:softmax'; allowed: one of"),
        (
            _manifest(output={"kind": "value", "columns": 1}),
            "output kind is 'value'; objective binary:logistic answers 'probability'",
        ),
        (_manifest(output={"kind": "probability", "columns": 2}), "columns=2 is invalid for probability: allowed: 1"),
        (_manifest(output={"kind": "probability", "columns": "1"}), "output columns is '1'; allowed: a whole number"),
        (
            _manifest(objective="multi:softprob", num_class=4, output={"kind": "class_probabilities", "columns": 3}),
            "output columns is 3 but its num_class is 4; allowed: equal",
        ),
        (_manifest(output=[1]), "the manifest's output is [1]; allowed: an object with kind and columns"),
        ({"objective": "binary:logistic"}, "the manifest's features is None; allowed: a non-empty list of names"),
        (_manifest(features=["a", "a"]), "features repeats a; allowed: unique names"),
        (_manifest(features=["a", ""]), "features holds ''; allowed: non-empty strings"),
    ],
)
def test_a_manifest_that_does_not_describe_a_servable_model_is_one_line(manifest: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelSchema.from_manifest(manifest)


# --- against local stand-ins of the containers ------------------------------------------------------------


def _local_client(url: str) -> Any:
    # Timeouts past any stall of a busy machine: these tests are about answers, not time.
    return runtime_client(EndpointSession(_session(), url), connect_timeout=30.0, read_timeout=30.0)


SAMPLE_STAND_IN = profile_model("cpu")


def _stand_in_answers(rows: list[list[float]], model: Model = SAMPLE_STAND_IN) -> list[Any]:
    return [row[0] if model.schema.columns == 1 else tuple(row) for row in model.scores(rows)]


def test_gpu_scores_many_rows_in_one_kserve_request_of_shape_rows_by_features() -> None:
    with local_endpoint(answers_for("gpu", SAMPLE_STAND_IN)) as endpoint:
        probabilities = predict(_local_client(endpoint.url), "ep", ROWS, SCHEMA, profile="gpu")
    ((_, headers, body),) = endpoint.seen.requests
    assert (headers["Content-Type"], headers["Accept"]) == ("application/json", "application/json")
    (tensor,) = json.loads(body)["inputs"]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("input__0", "FP32", [3, len(SCHEMA.features)])
    assert tensor["data"] == [value for row in ROWS for value in row]
    assert probabilities == _stand_in_answers(ROWS)


def test_inferentia_sends_one_row_per_request_and_keeps_the_rows_order() -> None:
    # Each answer is the row's first value / 10, alternately flat and nested, so order and nesting both show.
    def by_first_value(body: bytes) -> Reply:
        ((first, *_),) = json.loads(body)
        answer = [first / 10] if first < 5 else [[first / 10]]
        return Reply(body=json.dumps(answer).encode(), content_type="application/json")

    with local_endpoint(by_first_value) as endpoint:
        assert predict(_local_client(endpoint.url), "ep", ROWS, SCHEMA, profile="inferentia") == [0.2, 0.1, 0.6]
    assert [json.loads(body) for _, _, body in endpoint.seen.requests] == [[row] for row in ROWS]


@pytest.mark.parametrize("profile", ["gpu", "inferentia"])
def test_rows_are_checked_once_before_any_request_with_their_index(profile: str) -> None:
    with (
        local_endpoint(answers_for(profile, SAMPLE_STAND_IN)) as endpoint,
        pytest.raises(RequestError, match="row 2 has 6 values"),
    ):
        predict(_local_client(endpoint.url), "ep", [*ROWS[:2], ROWS[2][:6]], SCHEMA, profile=profile)
    assert endpoint.seen.requests == []


@pytest.mark.parametrize(("profile", "requests"), [("cpu", 1), ("gpu", 1), ("inferentia", 3)])
def test_predict_through_botocore_and_the_fake_endpoint_of_each_profile(profile: str, requests: int) -> None:
    with FakeEndpoint(workers=2, service_time=0.001, profile=profile) as server:
        probabilities = predict(_local_client(server.url), "ep", ROWS, SCHEMA, profile=profile)
    assert probabilities == _stand_in_answers(ROWS, server.model)
    assert (server.stats.served, server.stats.model_errors) == (requests, 0)


def _stage_with(profile: str, manifest: dict[str, Any], artifact_file: str) -> Callable[[str], Any]:
    """load_stage for a stage whose settings name a serving profile and an artifact (its file and manifest)."""

    def load(stage: str) -> Any:
        settings = load_stage(stage)
        artifact = SimpleNamespace(manifest=manifest)
        return SimpleNamespace(
            stack_name=settings.stack_name, artifact_file=artifact_file, artifact=artifact, profile=profile
        )

    return load


@pytest.mark.parametrize(("answer", "passes"), [(b"[0.6551]", True), (b"[0.6723]", False)])
def test_the_smoke_test_speaks_the_stages_profile_and_allows_for_bf16_on_inferentia(
    monkeypatch: pytest.MonkeyPatch, answer: bytes, passes: bool
) -> None:
    # The sample's cpu manifest, in the inferentia format: today's committed inf1 manifest carries no
    # sample_payload or reference yet (the next test shows what the smoke test says then).
    monkeypatch.setattr(smoke_test, "load_stage", _stage_with("inferentia", SAMPLE_MANIFEST, SAMPLE_ARCHIVE))
    cloudformation = _session().client("cloudformation")
    runtime = runtime_client(_session(), transport="boto3")  # Stubber stubs boto3's client
    body = _recorded("inferentia", "request").read_bytes()
    request = {"EndpointName": ENDPOINT, "ContentType": "application/json", "Accept": "application/json", "Body": body}
    with Stubber(cloudformation) as cfn_stub, Stubber(runtime) as runtime_stub:
        cfn_stub.add_response("describe_stacks", _stacks(), {"StackName": "RtbInference-dev"})
        runtime_stub.add_response("invoke_endpoint", {"Body": _body(answer.decode())}, request)
        if passes:
            assert smoke_test.run("dev", _Session(cloudformation), runtime).endswith(
                "(client side, inferentia profile)"
            )
        else:
            with pytest.raises(AssertionError, match=r"returned 0\.6723; the packaged model gives 0\.652265191078186"):
                smoke_test.run("dev", _Session(cloudformation), runtime)


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (
            "sample_payload",
            "model_artifacts/model.tar.gz's manifest has no sample_payload; the contract of issue 15 "
            "asks every manifest for one: rebuild the artifact",
        ),
        ("reference", "model_artifacts/model.tar.gz's manifest has no reference rows and predictions (one per row)"),
    ],
)
def test_a_manifest_without_its_sample_or_reference_fails_the_smoke_test_with_one_line(
    monkeypatch: pytest.MonkeyPatch, drop: str, message: str
) -> None:
    # No fallback to another manifest: a derived artifact's manifest carries its own sample and reference.
    manifest = {key: value for key, value in SAMPLE_MANIFEST.items() if key != drop}
    monkeypatch.setattr(smoke_test, "load_stage", _stage_with("gpu", manifest, SAMPLE_ARCHIVE))
    with pytest.raises(ValueError, match=re.escape(message)):
        smoke_test.run("dev", None, None, endpoint_name="never-called")


# --- models of other shapes than the sample's: built here, served by the fake endpoint in every format ---


@dataclass(frozen=True)
class Built:
    """A model trained here, its archive and manifest (as the contract of issue 15 describes them)."""

    archive: Path
    manifest: dict[str, Any]
    booster: Any
    rows: list[list[float]]


def _build(directory: Path, *, features: int, objective: str, num_class: int | None = None) -> Built:
    import numpy as np
    import xgboost as xgb

    from modelpack.archive import reproducible_tar_gz

    rng = np.random.default_rng(features)
    x = (rng.normal(size=(300, features)) * rng.choice([1e-3, 1.0, 370.0, 1e5], size=features)).astype(np.float32)
    if num_class is None:
        y = x[:, 0] / (1 + abs(x[:, 0]).max()) * 10 + rng.normal(size=300)
    else:
        y = (np.argsort(np.argsort(x[:, 0] + x[:, 1])) * num_class // 300).astype(np.float32)
    params = {"objective": objective, "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 7}
    if num_class is not None:
        params["num_class"] = num_class
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=8)
    # A few rows with numbers %g would round: sent exactly, they must score as here.
    rows = [[float(value) for value in row] for row in x[:5]] + [[369.9999, 1234567.0, 1e-7, -0.0] * (features // 4)]
    raw = booster.predict(xgb.DMatrix(np.array(rows, dtype=np.float32)))
    predictions = [float(p) for p in raw] if num_class is None else [[float(p) for p in row] for row in raw]
    data = bytes(booster.save_raw("json"))
    archive = directory / "model.tar.gz"
    archive.write_bytes(reproducible_tar_gz({"xgboost-model": data}))
    kind, columns = ("value", 1) if num_class is None else ("class_probabilities", num_class)
    manifest = {
        "artifact": "model.tar.gz",
        "content_type": "text/csv",
        "features": [f"feature_{i}" for i in range(features)],
        "model_file": "xgboost-model",
        "objective": objective,
        "output": {"kind": kind, "columns": columns},
        **({"num_class": num_class} if num_class is not None else {}),
        "sample_payload": ",".join(repr(value) for value in rows[-1]),
        "reference": {"rows": rows, "predictions": predictions},
        "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "xgboost_version": xgb.__version__,
    }
    (directory / "model-manifest.json").write_text(json.dumps(manifest))
    return Built(archive, manifest, booster, rows)


@pytest.fixture(scope="module")
def regression_12(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build(tmp_path_factory.mktemp("regression-12"), features=12, objective="reg:squarederror")


@pytest.fixture(scope="module")
def softprob_40(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build(tmp_path_factory.mktemp("softprob-40"), features=40, objective="multi:softprob", num_class=3)


def _booster_answers(built: Built) -> list[Prediction]:
    import numpy as np
    import xgboost as xgb

    raw = built.booster.predict(xgb.DMatrix(np.array(built.rows, dtype=np.float32)))
    return [float(p) for p in raw] if raw.ndim == 1 else [tuple(float(p) for p in row) for row in raw]


def _close(got: list[Prediction], want: list[Prediction]) -> bool:
    def values(p: Prediction) -> tuple[float, ...]:
        return (p,) if isinstance(p, float) else p

    return len(got) == len(want) and all(
        len(values(g)) == len(values(w)) and all(abs(a - b) <= 1e-6 for a, b in zip(values(g), values(w), strict=True))
        for g, w in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("name", ["regression_12", "softprob_40"])
@pytest.mark.parametrize("profile", PROFILES)
def test_a_model_of_another_shape_is_served_and_decoded_in_every_format(
    request: pytest.FixtureRequest, name: str, profile: str
) -> None:
    built: Built = request.getfixturevalue(name)
    model = packaged_model(built.archive)
    schema = ModelSchema.from_manifest(built.manifest)
    assert model.schema == schema
    with FakeEndpoint(workers=1, service_time=0.001, profile=profile, model=model) as server:
        answers = predict(_local_client(server.url), "ep", built.rows, schema, profile=profile)
    assert _close(answers, _booster_answers(built))
    assert server.stats.model_errors == 0


def test_the_fake_cpu_container_answers_class_probabilities_one_list_per_line(softprob_40: Built) -> None:
    body = score_csv(codec_for("cpu").encode(softprob_40.rows[:2]), packaged_model(softprob_40.archive))
    lines = body.decode().splitlines()
    assert len(lines) == 2
    assert all(re.fullmatch(r"\[[-0-9.e]+, [-0-9.e]+, [-0-9.e]+\]", line) for line in lines), lines


def test_the_stand_in_takes_any_manifests_shape(regression_12: Built, softprob_40: Built) -> None:
    for built in (regression_12, softprob_40):
        model = stand_in(built.manifest)
        for profile in PROFILES:
            with FakeEndpoint(workers=1, service_time=0.001, profile=profile, model=model) as server:
                answers = predict(_local_client(server.url), "ep", built.rows, model.schema, profile=profile)
            assert answers == _stand_in_answers(built.rows, model)


@pytest.mark.parametrize(("name", "profile"), [("regression_12", "cpu"), ("softprob_40", "gpu")])
def test_the_smoke_test_holds_another_models_endpoint_to_its_own_manifest(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, name: str, profile: str
) -> None:
    built: Built = request.getfixturevalue(name)
    monkeypatch.setattr(smoke_test, "load_stage", _stage_with(profile, built.manifest, str(built.archive)))
    with FakeEndpoint(workers=1, service_time=0.001, profile=profile, model=packaged_model(built.archive)) as server:
        result = smoke_test.run("dev", None, _local_client(server.url), endpoint_name="fake-endpoint")
    assert result.startswith("ok: fake-endpoint scored the sample row ")
    wrong = stand_in(built.manifest)  # the right shape, the wrong model
    with (
        FakeEndpoint(workers=1, service_time=0.001, profile=profile, model=wrong) as server,
        pytest.raises(AssertionError, match="; the packaged model gives "),
    ):
        smoke_test.run("dev", None, _local_client(server.url), endpoint_name="fake-endpoint")
