"""The kit's client and the post-deploy smoke test, against botocore's real service models (Stubber)."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from scripts import smoke_test
from scripts.rtb_client import (
    FEATURES,
    RequestError,
    decode_predictions,
    encode_rows,
    predict,
    runtime_client,
    stack_output,
)

SAMPLE = [2.0, 0.0, 0.0, 7.0, 3.0, 20.0, 2.0]
ENDPOINT = "RtbInference-dev-InferenceEndpointA45980A1-ABC123"


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


def test_smoke_test_exits_non_zero_with_one_line_on_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke_test.main(["--stage", "staging"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("smoke test failed: stage 'staging' has 1 invalid setting(s): - stage='staging'")
    assert error.count("\n") == 1
