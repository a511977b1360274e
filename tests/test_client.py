"""The kit's client and the post-deploy smoke test, against botocore's real service models (Stubber), the
recorded bodies of each serving profile (tests/fixtures/client) and local stand-ins for the containers."""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from scripts import smoke_test
from scripts.bench_client import Reply, answers_for, local_endpoint
from scripts.fake_endpoint import FakeEndpoint, packaged_model, score
from scripts.invoke import EndpointSession
from scripts.rtb_client import (
    FEATURES,
    PROFILES,
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

SAMPLE = [2.0, 0.0, 0.0, 7.0, 3.0, 20.0, 2.0]
ROWS = [SAMPLE, [1.0, 23.0, 10.0, 50.0, 35.0, 370.0, 7.0], [6.0, 15.0, 0.0, 18.0, 5.0, 171.0, 2.0]]
ENDPOINT = "RtbInference-dev-InferenceEndpointA45980A1-ABC123"
RECORDED = REPO_ROOT / "tests" / "fixtures" / "client"
# The packaged model's probability for SAMPLE (model_artifacts/model-manifest.json), as each recorded answer holds it.
SAMPLE_PROBABILITY = 0.652265191078186


@functools.cache  # one session: its clients share the loaded service models, which keeps the tests fast
def _session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def _body(text: str) -> StreamingBody:
    data = text.encode()
    return StreamingBody(io.BytesIO(data), len(data))


def test_runtime_client_pools_connections_with_tight_timeouts_and_bounded_retries() -> None:
    config = runtime_client(_session(), pool_size=32).meta.config
    assert config.max_pool_connections == 32
    assert (config.connect_timeout, config.read_timeout) == (0.5, 1.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert config.tcp_keepalive is True


def test_rows_become_headerless_csv_lines() -> None:
    assert encode_rows([SAMPLE, [1, 23, 10, 50, 35, 370, 7]]) == b"2,0,0,7,3,20,2\n1,23,10,50,35,370,7\n"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (SAMPLE[:6], "row 0 has 6 values; the model takes 7: " + ", ".join(FEATURES)),
        ([*SAMPLE, 1.0], "row 0 has 8 values; the model takes 7"),
        ([float("nan"), *SAMPLE[1:]], "row 0 has nan; allowed: finite numbers"),
        (["2", *SAMPLE[1:]], "row 0 has '2'; allowed: finite numbers"),
        ([True, *SAMPLE[1:]], "row 0 has True; allowed: finite numbers"),
    ],
)
def test_malformed_rows_are_refused_before_any_request(row: list[Any], message: str) -> None:
    with pytest.raises(RequestError, match=message.replace("(", r"\(")):
        encode_rows([row])


def test_predictions_are_read_whether_comma_or_newline_separated() -> None:
    assert decode_predictions(b"0.25,0.5\n", 2) == [0.25, 0.5]
    assert decode_predictions(b"0.25\n0.5\n", 2) == [0.25, 0.5]
    with pytest.raises(RequestError, match="expected 3 predictions, got 2"):
        decode_predictions(b"0.25,0.5", 3)


def test_predict_sends_a_valid_invoke_endpoint_request() -> None:
    client = runtime_client(_session())
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": _body("0.652265191078186\n"), "ContentType": "text/csv"},
            {"EndpointName": ENDPOINT, "ContentType": "text/csv", "Accept": "text/csv", "Body": b"2,0,0,7,3,20,2\n"},
        )
        assert predict(client, ENDPOINT, [SAMPLE]) == [0.652265191078186]
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
        ("1.5", "returned 1.5, not a probability"),
    ],
)
def test_smoke_test_passes_only_on_the_packaged_models_answer(answer: str, outcome: str) -> None:
    cloudformation = _session().client("cloudformation")
    runtime = runtime_client(_session())
    with Stubber(cloudformation) as cfn_stub, Stubber(runtime) as runtime_stub:
        cfn_stub.add_response("describe_stacks", _stacks(), {"StackName": "RtbInference-dev"})
        runtime_stub.add_response("invoke_endpoint", {"Body": _body(answer)})
        if outcome.startswith("ok"):
            assert smoke_test.run("dev", _Session(cloudformation), runtime).startswith(f"ok: {ENDPOINT} scored")
        else:
            with pytest.raises(AssertionError, match=outcome.replace("(", r"\(")):
                smoke_test.run("dev", _Session(cloudformation), runtime)


def test_the_smoke_test_of_a_local_endpoint_needs_no_aws_configuration(tmp_path: Path) -> None:
    # Its help's local example: the fake endpoint serving the packaged model, on a machine without AWS setup.
    assert "--stage dev --endpoint-url http://127.0.0.1:8080" in (smoke_test.__doc__ or "")
    assert "fake_endpoint --model model_artifacts/model.tar.gz" in (smoke_test.__doc__ or "")
    model = packaged_model(REPO_ROOT / "model_artifacts" / "model.tar.gz")
    with FakeEndpoint(workers=1, service_time=0.001, model=model, endpoint_name="fake-endpoint") as server:
        result = subprocess.run(
            [sys.executable, "scripts/smoke_test.py", "--stage", "dev", "--endpoint-url", server.url],
            cwd=REPO_ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: fake-endpoint scored the sample row 0.652265 in ")
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
    assert codec_for(profile).decode(_recorded(profile, "response").read_bytes(), 1) == [SAMPLE_PROBABILITY]


def test_gpu_takes_class_1_from_per_class_probabilities_given_flat_or_nested() -> None:
    def answer(data: list[Any]) -> bytes:
        output = {"name": "output__0", "datatype": "FP32", "shape": [3, 2], "data": data}
        return json.dumps({"model_name": "rtb-filter", "outputs": [{"name": "other"}, output]}).encode()

    decode = codec_for("gpu").decode
    assert decode(answer([0.9, 0.1, 0.8, 0.2, 0.25, 0.75]), 3) == [0.1, 0.2, 0.75]
    assert decode(answer([[0.9, 0.1], [0.8, 0.2], [0.25, 0.75]]), 3) == [0.1, 0.2, 0.75]


@pytest.mark.parametrize("body", [b"[0.25]", b"[[0.25]]"])
def test_inferentia_reads_the_probability_flat_or_nested(body: bytes) -> None:
    assert codec_for("inferentia").decode(body, 1) == [0.25]


def _triton(shape: Any, data: Any, name: str = "output__0") -> bytes:
    return json.dumps({"outputs": [{"name": name, "datatype": "FP32", "shape": shape, "data": data}]}).encode()


@pytest.mark.parametrize(
    ("profile", "body", "message"),
    [
        ("gpu", b'{"error": "batch-size must be <= 8"}', "Triton answered an error: batch-size must be <= 8"),
        ("gpu", _triton([1, 2], [0.5, 0.5], name="output__1"), r"no output output__0; outputs: \['output__1'\]"),
        ("gpu", _triton([1, 1], [0.5]), r"output__0 has shape \[1, 1\]; expected \[1, 2\]"),
        ("gpu", _triton([1, 2], [0.5]), r"output__0 of shape \[1, 2\] holds 1 values"),
        ("gpu", _triton([1, 2], [0.5, "x"]), "output__0 holds 'x', not a number"),
        ("gpu", b"[0.5, 0.5]", "expected a KServe v2 inference response object"),
        ("gpu", b"<html>Bad Gateway</html>", "the answer is not JSON"),
        ("inferentia", b"[0.25, 0.75]", "expected 1 predictions, got 2"),
        ("inferentia", b'{"error": "boom"}', "expected a JSON array of probabilities"),
        ("inferentia", b"[[null]]", "the answer holds None, not a number"),
        ("cpu", b"<html>", "expected 1 comma- or newline-separated predictions"),
    ],
)
def test_answers_that_do_not_fit_the_request_are_request_errors(profile: str, body: bytes, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        codec_for(profile).decode(body, 1)


def test_an_unknown_profile_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"profile='tpu' is invalid: allowed: one of \['cpu', 'gpu', 'inferentia'\]"):
        predict(None, ENDPOINT, [SAMPLE], profile="tpu")


def _local_client(url: str) -> Any:
    return runtime_client(EndpointSession(_session(), url))


def test_gpu_scores_many_rows_in_one_kserve_request_of_shape_rows_by_7() -> None:
    with local_endpoint(answers_for("gpu")) as endpoint:
        probabilities = predict(_local_client(endpoint.url), "ep", ROWS, profile="gpu")
    ((_, headers, body),) = endpoint.seen.requests
    assert (headers["Content-Type"], headers["Accept"]) == ("application/json", "application/json")
    (tensor,) = json.loads(body)["inputs"]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("input__0", "FP32", [3, 7])
    assert tensor["data"] == [value for row in ROWS for value in row]
    assert probabilities == pytest.approx([score(row) for row in ROWS], rel=1e-6)


def test_inferentia_sends_one_row_per_request_and_keeps_the_rows_order() -> None:
    # Each answer is the row's first value / 10, alternately flat and nested, so order and nesting both show.
    def by_first_value(body: bytes) -> Reply:
        ((first, *_),) = json.loads(body)
        answer = [first / 10] if first < 5 else [[first / 10]]
        return Reply(body=json.dumps(answer).encode(), content_type="application/json")

    with local_endpoint(by_first_value) as endpoint:
        assert predict(_local_client(endpoint.url), "ep", ROWS, profile="inferentia") == [0.2, 0.1, 0.6]
    assert [json.loads(body) for _, _, body in endpoint.seen.requests] == [[row] for row in ROWS]


@pytest.mark.parametrize("profile", ["gpu", "inferentia"])
def test_rows_are_checked_once_before_any_request_with_their_index(profile: str) -> None:
    with local_endpoint(answers_for(profile)) as endpoint, pytest.raises(RequestError, match="row 2 has 6 values"):
        predict(_local_client(endpoint.url), "ep", [*ROWS[:2], ROWS[2][:6]], profile=profile)
    assert endpoint.seen.requests == []


@pytest.mark.parametrize(("profile", "requests"), [("cpu", 1), ("gpu", 1), ("inferentia", 3)])
def test_predict_through_botocore_and_the_fake_endpoint_of_each_profile(profile: str, requests: int) -> None:
    with FakeEndpoint(workers=2, service_time=0.001, profile=profile) as server:
        probabilities = predict(_local_client(server.url), "ep", ROWS, profile=profile)
    assert probabilities == pytest.approx([score(row) for row in ROWS], abs=1e-6)
    assert (server.stats.served, server.stats.model_errors) == (requests, 0)


def _stage_with_profile(profile: str) -> Callable[[str], Any]:
    """load_stage for a stage whose settings name a serving profile (until StageSettings has the field)."""

    def load(stage: str) -> Any:
        settings = load_stage(stage)
        return SimpleNamespace(stack_name=settings.stack_name, artifact_path=settings.artifact_path, profile=profile)

    return load


@pytest.mark.parametrize(("answer", "passes"), [(b"[0.6551]", True), (b"[0.6723]", False)])
def test_the_smoke_test_speaks_the_stages_profile_and_allows_for_bf16_on_inferentia(
    monkeypatch: pytest.MonkeyPatch, answer: bytes, passes: bool
) -> None:
    monkeypatch.setattr(smoke_test, "load_stage", _stage_with_profile("inferentia"))
    cloudformation = _session().client("cloudformation")
    runtime = runtime_client(_session())
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


def test_a_derived_artifacts_manifest_without_a_sample_falls_back_to_the_source_models(tmp_path: Path) -> None:
    manifest = tmp_path / "model-manifest.json"
    manifest.write_text(json.dumps({"artifact": "model.tar.gz", "reference": {"rows": []}}))
    assert smoke_test.sample_and_expected(manifest) == (SAMPLE, SAMPLE_PROBABILITY)
