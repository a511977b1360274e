"""stacks/handlers/neo_compile.py: the Neo compilation custom resource, against botocore's SageMaker model.

Every SageMaker call goes through a real boto3 client with botocore's Stubber, so each request is checked
against the service model; time is a fake clock, so nothing sleeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from stacks.handlers import neo_compile
from stacks.handlers.custom_resource import run

from .cfn_fakes import FakeOpener

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/RtbInference-dev/0b1c2d3e"
URL = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?X-Amz-Signature=abc"
ROLE = "arn:aws:iam::123456789012:role/RtbInference-dev-NeoCompileRole"
INPUT = "s3://cdk-hnb659fds-assets-123456789012-us-east-1/0123abcd.tar.gz"
OUTPUT = "s3://rtb-artifacts-123456789012/neo"
PROPERTIES: dict[str, Any] = {
    "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:NeoCompile",
    "RoleArn": ROLE,
    "InputS3Uri": INPUT,
    "OutputS3Uri": OUTPUT,
    "Framework": "PYTORCH",
    "FrameworkVersion": "1.9",
    "DataInputConfig": '{"input0": [1, 7]}',
    "TargetDevice": "ml_inf1",
    "JobNamePrefix": "rtb-bid-filter",
    # CloudFormation hands numbers to the function as strings.
    "MaxRuntimeInSeconds": "900",
    "CompilerOptions": '"--fast-math none"',
}
# [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}, from the CompilationJobName shape of the SageMaker API.
JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
NOW = datetime(2026, 11, 21, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def event(request_type: str = "Create", properties: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": URL,
        "StackId": STACK_ID,
        "RequestId": "6f1e2d3c-0000-4000-8000-000000000001",
        "LogicalResourceId": "NeoCompilation",
        "ResourceType": "Custom::NeoCompilation",
        "ResourceProperties": dict(PROPERTIES if properties is None else properties),
        **extra,
    }


def context(remaining_seconds: float = 900.0) -> SimpleNamespace:
    return SimpleNamespace(
        get_remaining_time_in_millis=lambda: int(remaining_seconds * 1000), log_stream_name="2026/11/21/[$LATEST]abc"
    )


def described(name: str, status: str, *, reason: str = "", artifact: str = "") -> dict[str, Any]:
    """A DescribeCompilationJob response (every member the service model requires)."""
    return {
        "CompilationJobName": name,
        "CompilationJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:compilation-job/{name}",
        "CompilationJobStatus": status,
        "StoppingCondition": {"MaxRuntimeInSeconds": 900},
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
        "FailureReason": reason,
        "ModelArtifacts": {"S3ModelArtifacts": artifact},
        "RoleArn": ROLE,
        "InputConfig": {"S3Uri": INPUT, "Framework": "PYTORCH"},
        "OutputConfig": {"S3OutputLocation": f"{OUTPUT}/{name}/", "TargetDevice": "ml_inf1"},
        "InferenceImage": "785573368785.dkr.ecr.us-east-1.amazonaws.com/sagemaker-neo-pytorch:1.9-inf-py3",
    }


@pytest.fixture
def sagemaker() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def properties() -> neo_compile.NeoProperties:
    return neo_compile.parse_properties(PROPERTIES)


@pytest.fixture
def name(properties: neo_compile.NeoProperties) -> str:
    return neo_compile.job_name(properties, event()["RequestId"])


def expect_create(stubber: Stubber, request: dict[str, Any]) -> None:
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:compilation-job/{request['CompilationJobName']}"
    stubber.add_response("create_compilation_job", {"CompilationJobArn": arn}, request)


def expect_describe(stubber: Stubber, name: str, status: str, **kwargs: str) -> None:
    stubber.add_response("describe_compilation_job", described(name, status, **kwargs), {"CompilationJobName": name})


# --- the request ---------------------------------------------------------------------------------------


def test_request_compiles_the_traced_archive_for_inferentia(properties: neo_compile.NeoProperties, name: str) -> None:
    request = neo_compile.compilation_request(properties, name)
    assert request["CompilationJobName"] == name
    assert request["RoleArn"] == ROLE
    assert request["InputConfig"] == {
        "S3Uri": INPUT,
        "DataInputConfig": '{"input0": [1, 7]}',
        "Framework": "PYTORCH",
        "FrameworkVersion": "1.9",
    }
    assert json.loads(request["InputConfig"]["DataInputConfig"]) == {"input0": [1, 7]}
    assert request["OutputConfig"] == {
        "S3OutputLocation": f"{OUTPUT}/{name}/",
        "TargetDevice": "ml_inf1",
        "CompilerOptions": '"--fast-math none"',
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 900}


def test_optional_properties_have_defaults() -> None:
    minimal = {key: value for key, value in PROPERTIES.items() if key in neo_compile.REQUIRED}
    parsed = neo_compile.parse_properties(minimal)
    request = neo_compile.compilation_request(parsed, neo_compile.job_name(parsed, "r"))
    assert request["CompilationJobName"].startswith("neo-")
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": neo_compile.DEFAULT_MAX_RUNTIME_SECONDS}
    assert "CompilerOptions" not in request["OutputConfig"]


def test_job_name_is_valid_deterministic_and_new_per_request(properties: neo_compile.NeoProperties) -> None:
    first = neo_compile.job_name(properties, "request-1")
    assert JOB_NAME.fullmatch(first) and len(first) <= 63
    assert first == neo_compile.job_name(neo_compile.parse_properties(PROPERTIES), "request-1")
    retry = neo_compile.job_name(properties, "request-2")
    assert retry != first
    assert retry.startswith(neo_compile.job_name_stem(properties))
    changed = neo_compile.parse_properties({**PROPERTIES, "FrameworkVersion": "1.8"})
    assert not neo_compile.job_name(changed, "request-1").startswith(neo_compile.job_name_stem(properties))


def test_longest_prefix_still_makes_a_valid_name() -> None:
    longest = "p" * neo_compile.MAX_PREFIX
    name = neo_compile.job_name(neo_compile.parse_properties({**PROPERTIES, "JobNamePrefix": longest}), "r")
    assert len(name) == 63
    assert JOB_NAME.fullmatch(name)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("RoleArn", None, "RoleArn is required"),
        ("RoleArn", "RtbInference-dev-NeoCompileRole", "RoleArn 'RtbInference-dev-NeoCompileRole' is not valid"),
        ("InputS3Uri", "s3://bucket-only", "InputS3Uri 's3://bucket-only' is not valid"),
        ("OutputS3Uri", "https://example.com/out", "OutputS3Uri 'https://example.com/out' is not valid"),
        ("Framework", "pytorch", "Framework 'pytorch' is not valid: expected one of"),
        ("FrameworkVersion", "2.13", "FrameworkVersion '2.13' is not one Neo compiles PyTorch with for ml_inf1"),
        ("FrameworkVersion", "latest", "FrameworkVersion 'latest' is not valid"),
        ("DataInputConfig", "{input0: [1, 7]}", "DataInputConfig '{input0: [1, 7]}' is not JSON"),
        ("DataInputConfig", '{"input0": [1, 0]}', "DataInputConfig has a shape [1, 0]"),
        ("DataInputConfig", "[]", "DataInputConfig '[]' must be a JSON object"),
        ("TargetDevice", "ml.inf1.xlarge", "TargetDevice 'ml.inf1.xlarge' is not valid"),
        ("JobNamePrefix", "rtb_bid", "JobNamePrefix 'rtb_bid' is not valid"),
        ("JobNamePrefix", "p" * 42, "JobNamePrefix 'ppp"),
        ("MaxRuntimeInSeconds", "15m", "MaxRuntimeInSeconds '15m' is not valid"),
        ("MaxRuntimeInSeconds", "0", "MaxRuntimeInSeconds '0' is not valid"),
        ("CompilerOptions", "", "CompilerOptions '' is not valid"),
        ("FrameworkVerison", "1.9", "unknown properties ['FrameworkVerison']"),
    ],
)
def test_bad_properties_are_rejected_naming_the_property(key: str, value: Any, message: str) -> None:
    properties = {**PROPERTIES, key: value} if value is not None else {k: v for k, v in PROPERTIES.items() if k != key}
    with pytest.raises(neo_compile.PropertyError, match=re.escape(message)):
        neo_compile.parse_properties(properties)


def test_pytorch_list_form_of_data_input_config_is_accepted() -> None:
    parsed = neo_compile.parse_properties({**PROPERTIES, "DataInputConfig": "[[1, 7]]"})
    assert parsed.data_input_config == "[[1, 7]]"


# --- compile_and_wait ----------------------------------------------------------------------------------


def test_success_polls_until_completed_without_sleeping(
    sagemaker: tuple[Any, Stubber], properties: neo_compile.NeoProperties, name: str
) -> None:
    client, stubber = sagemaker
    request = neo_compile.compilation_request(properties, name)
    expect_create(stubber, request)
    expect_describe(stubber, name, "STARTING")
    expect_describe(stubber, name, "INPROGRESS")
    expect_describe(stubber, name, "COMPLETED", artifact=f"{OUTPUT}/{name}/0123abcd-ml_inf1.tar.gz")
    clock = FakeClock()
    job = neo_compile.compile_and_wait(client, request, deadline=840.0, sleep=clock.sleep, clock=clock)
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == f"{OUTPUT}/{name}/0123abcd-ml_inf1.tar.gz"
    assert clock.sleeps == [neo_compile.POLL_SECONDS, neo_compile.POLL_SECONDS]


@pytest.mark.parametrize("status", ["FAILED", "STOPPED"])
def test_failed_or_stopped_job_raises_its_failure_reason(
    sagemaker: tuple[Any, Stubber], properties: neo_compile.NeoProperties, name: str, status: str
) -> None:
    client, stubber = sagemaker
    request = neo_compile.compilation_request(properties, name)
    expect_create(stubber, request)
    expect_describe(stubber, name, "INPROGRESS")
    expect_describe(stubber, name, status, reason="ClientError: InputConfiguration: Unable to load model.pth")
    clock = FakeClock()
    with pytest.raises(neo_compile.CompilationFailedError, match=f"{status}: ClientError: InputConfiguration"):
        neo_compile.compile_and_wait(client, request, deadline=840.0, sleep=clock.sleep, clock=clock)


def test_job_still_running_at_the_deadline_is_stopped(
    sagemaker: tuple[Any, Stubber], properties: neo_compile.NeoProperties, name: str
) -> None:
    client, stubber = sagemaker
    request = neo_compile.compilation_request(properties, name)
    expect_create(stubber, request)
    for _ in range(3):  # at t = 0, 15 and 30
        expect_describe(stubber, name, "INPROGRESS")
    stubber.add_response("stop_compilation_job", {}, {"CompilationJobName": name})
    clock = FakeClock()
    with pytest.raises(neo_compile.CompilationTimeoutError, match=f"{name} was still INPROGRESS"):
        neo_compile.compile_and_wait(client, request, deadline=30.0, sleep=clock.sleep, clock=clock)
    assert clock.now == 30.0


def test_no_job_is_started_without_time_to_wait_for_it(
    sagemaker: tuple[Any, Stubber], properties: neo_compile.NeoProperties, name: str
) -> None:
    client, _ = sagemaker  # no stubbed response: any call would fail the test
    clock = FakeClock()
    with pytest.raises(neo_compile.CompilationTimeoutError, match="it was not started"):
        neo_compile.compile_and_wait(
            client, neo_compile.compilation_request(properties, name), deadline=0.0, sleep=clock.sleep, clock=clock
        )


def test_redelivered_request_waits_for_the_job_it_already_started(
    sagemaker: tuple[Any, Stubber], properties: neo_compile.NeoProperties, name: str
) -> None:
    client, stubber = sagemaker
    request = neo_compile.compilation_request(properties, name)
    stubber.add_client_error("create_compilation_job", "ResourceInUse", "Job already exists", expected_params=request)
    expect_describe(stubber, name, "COMPLETED", artifact=f"{OUTPUT}/{name}/a.tar.gz")
    clock = FakeClock()
    job = neo_compile.compile_and_wait(client, request, deadline=840.0, sleep=clock.sleep, clock=clock)
    assert job["CompilationJobStatus"] == "COMPLETED"


def test_other_create_errors_propagate(
    sagemaker: tuple[Any, Stubber], properties: neo_compile.NeoProperties, name: str
) -> None:
    client, stubber = sagemaker
    request = neo_compile.compilation_request(properties, name)
    stubber.add_client_error("create_compilation_job", "ResourceLimitExceeded", "too many", expected_params=request)
    clock = FakeClock()
    with pytest.raises(ClientError, match="ResourceLimitExceeded"):
        neo_compile.compile_and_wait(client, request, deadline=840.0, sleep=clock.sleep, clock=clock)


# --- end to end through the custom-resource protocol ---------------------------------------------------


def respond(client: Any, request: dict[str, Any], remaining_seconds: float = 900.0) -> dict[str, Any]:
    """Run the handler's action for ``request`` and return the body PUT to CloudFormation."""
    clock = FakeClock()
    opener = FakeOpener()
    action = neo_compile.make_action(lambda: client, sleep=clock.sleep, clock=clock)
    returned = run(request, context(remaining_seconds), action, opener=opener)
    body = opener.body(URL)
    assert body == returned
    return body


def test_create_answers_success_with_the_compiled_artifact(sagemaker: tuple[Any, Stubber], name: str) -> None:
    client, stubber = sagemaker
    artifact = f"{OUTPUT}/{name}/0123abcd-ml_inf1.tar.gz"
    expect_create(stubber, neo_compile.compilation_request(neo_compile.parse_properties(PROPERTIES), name))
    expect_describe(stubber, name, "INPROGRESS")
    expect_describe(stubber, name, "COMPLETED", artifact=artifact)
    body = respond(client, event())
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == name
    assert body["Data"] == {
        "ModelArtifact": artifact,
        "JobName": name,
        "InferenceImage": "785573368785.dkr.ecr.us-east-1.amazonaws.com/sagemaker-neo-pytorch:1.9-inf-py3",
    }


def test_create_answers_failed_with_the_failure_reason(sagemaker: tuple[Any, Stubber], name: str) -> None:
    client, stubber = sagemaker
    expect_create(stubber, neo_compile.compilation_request(neo_compile.parse_properties(PROPERTIES), name))
    expect_describe(stubber, name, "FAILED", reason="Compilation error: unsupported operator")
    body = respond(client, event())
    assert body["Status"] == "FAILED"
    assert "CompilationFailedError" in body["Reason"]
    assert "Compilation error: unsupported operator" in body["Reason"]
    assert body["Data"] == {}


def test_create_that_runs_out_of_time_stops_the_job_and_answers_failed(
    sagemaker: tuple[Any, Stubber], name: str
) -> None:
    client, stubber = sagemaker
    expect_create(stubber, neo_compile.compilation_request(neo_compile.parse_properties(PROPERTIES), name))
    for _ in range(3):  # 90 s left less the 60 s margin: polls at t = 0, 15 and 30
        expect_describe(stubber, name, "INPROGRESS")
    stubber.add_response("stop_compilation_job", {}, {"CompilationJobName": name})
    body = respond(client, event(), remaining_seconds=90.0)
    assert body["Status"] == "FAILED"
    assert "CompilationTimeoutError" in body["Reason"]
    assert "asked to stop" in body["Reason"]


def test_bad_properties_answer_failed_before_any_call(sagemaker: tuple[Any, Stubber]) -> None:
    client, _ = sagemaker
    body = respond(client, event(properties={**PROPERTIES, "FrameworkVersion": "2.13"}))
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith("PropertyError: FrameworkVersion '2.13'")


def test_update_compiles_a_new_job_when_the_properties_change(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    changed = {**PROPERTIES, "CompilerOptions": '"--fast-math all"'}
    parsed = neo_compile.parse_properties(changed)
    previous = neo_compile.job_name(neo_compile.parse_properties(PROPERTIES), "the-create-request")
    request = event("Update", changed, PhysicalResourceId=previous, OldResourceProperties=PROPERTIES)
    new_name = neo_compile.job_name(parsed, request["RequestId"])
    expect_create(stubber, neo_compile.compilation_request(parsed, new_name))
    expect_describe(stubber, new_name, "COMPLETED", artifact=f"{OUTPUT}/{new_name}/a.tar.gz")
    body = respond(client, request)
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == new_name != previous


def test_update_back_to_properties_the_current_job_compiled_keeps_it(sagemaker: tuple[Any, Stubber]) -> None:
    # The rollback after a failed compile: CloudFormation sends the old properties with the old job's id.
    client, stubber = sagemaker
    current = neo_compile.job_name(neo_compile.parse_properties(PROPERTIES), "the-create-request")
    expect_describe(stubber, current, "COMPLETED", artifact=f"{OUTPUT}/{current}/a.tar.gz")
    failed = {**PROPERTIES, "FrameworkVersion": "1.8"}
    body = respond(client, event("Update", PROPERTIES, PhysicalResourceId=current, OldResourceProperties=failed))
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == current
    assert body["Data"]["ModelArtifact"] == f"{OUTPUT}/{current}/a.tar.gz"


def test_delete_succeeds_without_calling_sagemaker(sagemaker: tuple[Any, Stubber], name: str) -> None:
    client, _ = sagemaker  # no stubbed response: any call would fail the test
    body = respond(client, event("Delete", PhysicalResourceId=name))
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == name
    assert body["Data"] == {}


def test_delete_after_a_failed_create_succeeds(sagemaker: tuple[Any, Stubber]) -> None:
    client, _ = sagemaker
    body = respond(client, event("Delete", PhysicalResourceId="2026/11/21/[$LATEST]abc"))
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "2026/11/21/[$LATEST]abc"


def test_lambda_entry_point_answers_a_delete() -> None:
    opener = FakeOpener()
    returned = neo_compile.handler(event("Delete", PhysicalResourceId="neo-job"), context(), opener=opener)
    assert opener.body(URL) == returned
    assert returned["Status"] == "SUCCESS"


# --- the compile is the first thing an inferentia deploy proves -------------------------------------------

# What takes minutes or is billed by the hour (and functions in the VPC, which place network interfaces there):
# none of it may be created before Neo has compiled the model.
SLOW_OR_BILLED = (
    "AWS::EC2::VPC",
    "AWS::EC2::VPCEndpoint",
    "AWS::SageMaker::Model",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Endpoint",
)


def _names(node: Any) -> set[str]:
    """Logical ids a template node names (Ref, Fn::GetAtt, Fn::Sub's ${...})."""
    if isinstance(node, list):
        return {name for item in node for name in _names(item)}
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
        elif key == "Fn::Sub":
            text = value if isinstance(value, str) else value[0]
            found |= {name.split(".")[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text)}
            found |= _names(value if isinstance(value, str) else value[1])
        else:
            found |= _names(value)
    return found


def _waits_for(resources: dict[str, Any]) -> dict[str, set[str]]:
    """Each resource's transitive prerequisites: what it names and what it DependsOn."""
    direct = {}
    for key, resource in resources.items():
        depends = resource.get("DependsOn", [])
        direct[key] = (_names(resource) | set([depends] if isinstance(depends, str) else depends)) & set(resources)
    closure: dict[str, set[str]] = {}

    def visit(key: str) -> set[str]:
        if key not in closure:
            closure[key] = set()
            closure[key] = set(direct[key]).union(*(visit(name) for name in direct[key]))
        return closure[key]

    for key in resources:
        visit(key)
    return closure


def test_nothing_slow_or_billed_is_created_before_neo_has_compiled_the_model(inferentia: Any) -> None:
    """Neo documents Inferentia models exported by PyTorch 1.9 or earlier and the kit's is traced by a newer torch
    (docs/profiles.md): the compile is the first step of the deploy, so a refusal fails it in minutes."""
    resources = inferentia.resources
    compile_id, _ = inferentia.one("Custom::NeoCompilation")
    waits = _waits_for(resources)
    before_compile = waits[compile_id]
    slow = {
        key
        for key, resource in resources.items()
        if resource["Type"] in SLOW_OR_BILLED
        or (resource["Type"] == "AWS::Lambda::Function" and "VpcConfig" in resource["Properties"])
    }
    assert {"AWS::EC2::VPC", "AWS::SageMaker::Endpoint"} <= {resources[key]["Type"] for key in slow}
    assert slow & before_compile == set()
    assert sorted(key for key in slow if compile_id not in waits[key]) == []
