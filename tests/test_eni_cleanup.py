"""stacks/handlers/eni_cleanup.py: SageMaker's leftover interfaces are waited for and deleted, nothing else.

Requests are checked against the EC2 and CloudFormation service models by botocore's Stubber on real clients;
one end-to-end run uses moto. Nothing sleeps: the clock and sleep are injected.
"""

from __future__ import annotations

import datetime
import gc
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from stacks.handlers import eni_cleanup
from stacks.handlers.custom_resource import MAX_REASON
from stacks.handlers.eni_cleanup import Cleanup, Clients, Target, failure_reason, handler, is_sagemakers

from .cfn_fakes import FakeReply
from .conftest import REPO_ROOT, offline_env

REGION = "us-east-1"
ACCOUNT = "123456789012"
GROUP = "sg-0a1b2c3d4e5f60718"
OTHER_GROUP = "sg-0f0e0d0c0b0a09080"
VPC = "vpc-0123456789abcdef0"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/RtbInference-dev/0b1c2d3e"
# SageMaker acts as the model's execution role, in a session it names "SageMaker".
SAGEMAKER = "AROAEXAMPLEROLEID0001:SageMaker"
FILTERS = [{"Name": "group-id", "Values": [GROUP]}, {"Name": "vpc-id", "Values": [VPC]}]
PROPERTIES = {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:EniCleanup", "SecurityGroupIds": [GROUP]}
PROPERTIES_IN_VPC = {**PROPERTIES, "VpcId": VPC}
PHYSICAL_ID = Target.from_properties(PROPERTIES_IN_VPC).physical_id


def event(request_type: str, properties: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",
        "StackId": STACK_ID,
        "RequestId": "req-1",
        "LogicalResourceId": "ModelEniCleanup",
        "ResourceType": "Custom::SageMakerEniCleanup",
        "ResourceProperties": PROPERTIES_IN_VPC if properties is None else properties,
        **extra,
    }


def delete_event(properties: dict[str, Any] | None = None) -> dict[str, Any]:
    return event("Delete", properties, PhysicalResourceId=PHYSICAL_ID)


def interface(
    interface_id: str,
    status: str = "available",
    *,
    requester: str = SAGEMAKER,
    description: str = "",
    interface_type: str = "interface",
    attachment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "NetworkInterfaceId": interface_id,
        "Status": status,
        "InterfaceType": interface_type,
        "RequesterId": requester,
        "RequesterManaged": False,
        "Description": description,
        "OwnerId": ACCOUNT,
        "VpcId": VPC,
        "SubnetId": "subnet-0123456789abcdef0",
        "Groups": [{"GroupId": GROUP, "GroupName": "ModelSecurityGroup"}],
    }
    if attachment is not None:
        found["Attachment"] = attachment
    return found


@dataclass
class FakeTime:
    """A clock that only moves when the code under test sleeps; ``on_sleep`` lets a test act between sweeps."""

    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[int], None] | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


def lambda_context(seconds_left: float = 900.0) -> Any:
    return SimpleNamespace(
        log_stream_name="2026/11/21/[$LATEST]abc", get_remaining_time_in_millis=lambda: int(seconds_left * 1000)
    )


@pytest.fixture(scope="module")
def real_clients() -> Clients:
    """Real clients (their service models validate every stubbed request); never reach the network."""
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
    return Clients(ec2=boto3.client("ec2", **credentials), cloudformation=boto3.client("cloudformation", **credentials))


class Aws:
    """The stubbed EC2 and CloudFormation of one test."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.ec2 = Stubber(clients.ec2)
        self.cloudformation = Stubber(clients.cloudformation)

    def stack(self, status: str) -> None:
        stack: dict[str, Any] = {"StackName": "RtbInference-dev", "StackId": STACK_ID, "StackStatus": status}
        stack["CreationTime"] = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
        self.cloudformation.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK_ID})

    def interfaces(self, *found: dict[str, Any], filters: list[dict[str, Any]] | None = None, **page: str) -> None:
        expected: dict[str, Any] = {"Filters": FILTERS if filters is None else filters}
        response: dict[str, Any] = {"NetworkInterfaces": list(found)}
        if "token" in page:
            expected["NextToken"] = page["token"]
        if "next_token" in page:
            response["NextToken"] = page["next_token"]
        self.ec2.add_response("describe_network_interfaces", response, expected)

    def deletes(self, interface_id: str) -> None:
        self.ec2.add_response("delete_network_interface", {}, {"NetworkInterfaceId": interface_id})

    def delete_fails(self, interface_id: str, code: str, message: str) -> None:
        self.ec2.add_client_error(
            "delete_network_interface",
            service_error_code=code,
            service_message=message,
            http_status_code=400,
            expected_params={"NetworkInterfaceId": interface_id},
        )


@pytest.fixture
def aws(real_clients: Clients) -> Iterator[Aws]:
    stubs = Aws(real_clients)
    with stubs.ec2, stubs.cloudformation:
        yield stubs
        # Every stubbed call was made, in order; an unexpected one already failed the test.
        stubs.ec2.assert_no_pending_responses()
        stubs.cloudformation.assert_no_pending_responses()


def answer(aws: Aws | None, ev: dict[str, Any], time: FakeTime | None = None, seconds_left: float = 900.0) -> Any:
    """Run the Lambda handler on one request and return the body it sent to CloudFormation."""
    time = time or FakeTime()

    def clients() -> Clients:
        assert aws is not None, "this request must not call AWS"
        return aws.clients

    opener_calls: list[Any] = []

    def opener(request: Any, timeout: float) -> FakeReply:
        opener_calls.append(request)
        return FakeReply()

    body = handler(ev, lambda_context(seconds_left), clients=clients, sleep=time.sleep, clock=time.clock, opener=opener)
    assert len(opener_calls) == 1
    return body


# --- Create and Update: no AWS call, a physical id derived from the properties -------------------------------


def test_create_calls_nothing_and_names_the_resource_after_its_groups() -> None:
    body = answer(None, event("Create"))
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == f"sagemaker-eni-cleanup:{GROUP}@{VPC}"


def test_the_physical_id_is_stable_for_the_same_groups_in_any_order() -> None:
    one = Target.from_properties({"SecurityGroupIds": [GROUP, OTHER_GROUP]})
    other = Target.from_properties({"SecurityGroupIds": [OTHER_GROUP, GROUP, GROUP]})
    assert one.physical_id == other.physical_id
    many = Target.from_properties({"SecurityGroupIds": [f"sg-{index:017x}" for index in range(40)]})
    assert len(many.physical_id) <= eni_cleanup.MAX_PHYSICAL_ID


def test_update_keeps_the_id_for_the_same_groups_and_changes_it_for_new_ones() -> None:
    same = answer(None, event("Update", PhysicalResourceId=PHYSICAL_ID, OldResourceProperties=PROPERTIES_IN_VPC))
    assert same["PhysicalResourceId"] == PHYSICAL_ID
    moved = event("Update", {**PROPERTIES_IN_VPC, "SecurityGroupIds": [OTHER_GROUP]}, PhysicalResourceId=PHYSICAL_ID)
    # A new id: CloudFormation later sends a Delete for the old one, which must not wait (see below).
    assert answer(None, moved)["PhysicalResourceId"] == f"sagemaker-eni-cleanup:{OTHER_GROUP}@{VPC}"


@pytest.mark.parametrize(
    "properties",
    [{}, {"SecurityGroupIds": []}, {"SecurityGroupIds": "sg-0a1b2c3d4e5f60718"}, {"SecurityGroupIds": ["default"]}],
)
def test_create_with_unusable_properties_fails_and_names_the_setting(properties: dict[str, Any]) -> None:
    body = answer(None, event("Create", properties))
    assert body["Status"] == "FAILED"
    assert "SecurityGroupIds" in body["Reason"]


def test_a_bad_vpc_id_fails_the_create() -> None:
    body = answer(None, event("Create", {**PROPERTIES, "VpcId": "subnet-1"}))
    assert body["Status"] == "FAILED"
    assert "VpcId" in body["Reason"]


def test_the_rollback_delete_of_a_create_that_failed_on_its_properties_succeeds_without_calls() -> None:
    body = answer(None, event("Delete", {"SecurityGroupIds": []}, PhysicalResourceId="stream"))
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "stream"


# --- Delete while the stack is torn down ---------------------------------------------------------------------


def test_released_interfaces_are_deleted_with_exactly_these_filters(aws: Aws) -> None:
    aws.stack("DELETE_IN_PROGRESS")
    aws.interfaces(interface("eni-0000000000000000a"), interface("eni-0000000000000000b"))
    aws.deletes("eni-0000000000000000a")
    aws.deletes("eni-0000000000000000b")
    time = FakeTime()
    body = answer(aws, delete_event(), time)
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == PHYSICAL_ID
    assert time.sleeps == []


def test_without_a_vpc_id_only_the_group_filter_is_used(aws: Aws) -> None:
    aws.stack("DELETE_IN_PROGRESS")
    aws.interfaces(filters=[{"Name": "group-id", "Values": [GROUP]}])
    assert answer(aws, delete_event(PROPERTIES))["Status"] == "SUCCESS"


def test_interfaces_in_use_are_waited_for_with_backoff_then_deleted(aws: Aws) -> None:
    aws.stack("DELETE_IN_PROGRESS")
    aws.interfaces(interface("eni-0000000000000000a", "in-use"), interface("eni-0000000000000000b"))
    aws.deletes("eni-0000000000000000b")
    aws.interfaces(interface("eni-0000000000000000a", "in-use"))
    aws.interfaces(interface("eni-0000000000000000a", "detaching"))
    aws.interfaces(interface("eni-0000000000000000a"))
    aws.deletes("eni-0000000000000000a")
    time = FakeTime()
    assert answer(aws, delete_event(), time)["Status"] == "SUCCESS"
    assert time.sleeps == [5.0, 10.0, 20.0]


def test_an_interface_that_vanishes_meanwhile_is_fine(aws: Aws) -> None:
    aws.stack("DELETE_IN_PROGRESS")
    aws.interfaces(interface("eni-0000000000000000a"), interface("eni-0000000000000000b", "in-use"))
    aws.delete_fails("eni-0000000000000000a", "InvalidNetworkInterfaceID.NotFound", "does not exist")
    aws.interfaces()  # SageMaker deleted eni-...b itself while we waited
    time = FakeTime()
    assert answer(aws, delete_event(), time)["Status"] == "SUCCESS"
    assert time.sleeps == [5.0]


def test_an_interface_attached_again_before_the_delete_is_waited_for(aws: Aws) -> None:
    aws.stack("ROLLBACK_IN_PROGRESS")
    aws.interfaces(interface("eni-0000000000000000a"))
    aws.delete_fails("eni-0000000000000000a", "InvalidParameterValue", "Network interface is currently in use.")
    aws.interfaces(interface("eni-0000000000000000a"))
    aws.deletes("eni-0000000000000000a")
    assert answer(aws, delete_event())["Status"] == "SUCCESS"


def test_results_are_read_page_by_page(aws: Aws) -> None:
    aws.stack("DELETE_IN_PROGRESS")
    aws.interfaces(interface("eni-0000000000000000a"), next_token="page-2")
    aws.interfaces(interface("eni-0000000000000000b"), token="page-2")
    aws.deletes("eni-0000000000000000a")
    aws.deletes("eni-0000000000000000b")
    assert answer(aws, delete_event())["Status"] == "SUCCESS"


def test_interfaces_that_are_not_sagemakers_are_left_alone_and_reported(aws: Aws) -> None:
    mine = interface("eni-0000000000000000a")
    debug_box = interface(
        "eni-0000000000000000c",
        "in-use",
        requester="AIDAEXAMPLEUSER000001",
        description="SageMaker debugging box",
        attachment={"InstanceId": "i-0123456789abcdef0", "InstanceOwnerId": ACCOUNT, "Status": "attached"},
    )
    endpoint = interface(
        "eni-0000000000000000d", "in-use", requester="amazon-vpce", interface_type="vpc_endpoint", description=""
    )
    hand_made = interface("eni-0000000000000000e", requester="AIDAEXAMPLEUSER000001", description="spare")
    aws.stack("DELETE_IN_PROGRESS")
    aws.interfaces(mine, debug_box, endpoint, hand_made)
    aws.deletes("eni-0000000000000000a")  # the only delete: the Stubber rejects any other call
    time = FakeTime()
    body = answer(aws, delete_event(), time)
    assert body["Status"] == "FAILED"
    for foreign in ("eni-0000000000000000c", "eni-0000000000000000d", "eni-0000000000000000e"):
        assert foreign in body["Reason"]
    assert "not SageMaker's" in body["Reason"]
    assert time.sleeps == []  # nothing to wait for: foreign interfaces are never released by SageMaker


def test_interfaces_still_in_use_when_time_is_up_fail_with_their_ids_and_what_to_do(aws: Aws) -> None:
    stuck = [interface("eni-0000000000000000a", "in-use"), interface("eni-0000000000000000b", "in-use")]
    aws.stack("DELETE_IN_PROGRESS")
    for _ in range(5):
        aws.interfaces(*stuck)
    time = FakeTime()
    # 120 s left in Lambda, 60 s kept for the answer: 60 s of waiting, the last sweep at the deadline.
    body = answer(aws, delete_event(), time, seconds_left=120)
    assert time.sleeps == [5.0, 10.0, 20.0, 25.0]
    assert body["Status"] == "FAILED"
    assert body["PhysicalResourceId"] == PHYSICAL_ID
    reason = body["Reason"]
    assert reason.startswith("InterfacesRemainError: SageMaker has not released 2 network interface(s)")
    assert "eni-0000000000000000a, eni-0000000000000000b" in reason
    assert "after 60 s" in reason
    assert "Retry the stack deletion" in reason
    assert f"`.venv/bin/python -m stacks.handlers.eni_cleanup --security-group-id {GROUP} --region {REGION}`" in reason


def test_with_no_time_left_to_wait_one_sweep_is_made(aws: Aws) -> None:
    aws.stack("DELETE_IN_PROGRESS")
    aws.interfaces(interface("eni-0000000000000000a", "in-use"))
    time = FakeTime()
    body = answer(aws, delete_event(), time, seconds_left=30)
    assert body["Status"] == "FAILED"
    assert time.sleeps == []


def test_the_failure_reason_fits_with_hundreds_of_interfaces() -> None:
    target = Target.from_properties(PROPERTIES_IN_VPC)
    remaining = tuple(f"eni-{index:017x}" for index in range(300))
    foreign = tuple(eni_cleanup.summary(interface(f"eni-f{index:016x}", description="x" * 40)) for index in range(50))
    for result in (
        Cleanup((), (), remaining, (), 840.0),
        Cleanup((), (), (), foreign, 0.0),
        Cleanup((), (), remaining, foreign, 840.0),
    ):
        reason = f"{eni_cleanup.InterfacesRemainError.__name__}: {failure_reason(target, result, REGION)}"
        assert len(reason) <= MAX_REASON
        assert reason.endswith("and then retry.") or reason.endswith("whoever owns them.")
        assert "more" in reason
    assert "eni-00000000000000000" in failure_reason(target, Cleanup((), (), remaining, (), 1.0), REGION)


def test_an_unexpected_ec2_error_fails_the_delete_with_its_message(aws: Aws) -> None:
    aws.stack("DELETE_IN_PROGRESS")
    aws.interfaces(interface("eni-0000000000000000a"))
    aws.delete_fails("eni-0000000000000000a", "UnauthorizedOperation", "You are not authorized")
    body = answer(aws, delete_event())
    assert body["Status"] == "FAILED"
    assert "UnauthorizedOperation" in body["Reason"]


def test_an_unreadable_stack_status_is_taken_as_a_teardown(aws: Aws) -> None:
    aws.cloudformation.add_client_error(
        "describe_stacks",
        service_error_code="AccessDenied",
        http_status_code=403,
        expected_params={"StackName": STACK_ID},
    )
    aws.interfaces(interface("eni-0000000000000000a"))
    aws.deletes("eni-0000000000000000a")
    assert answer(aws, delete_event())["Status"] == "SUCCESS"


# --- Delete at any other time (a replaced physical id, a removed resource, an update rollback) ----------------


@pytest.mark.parametrize(
    "status", ["UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"]
)
def test_a_delete_outside_a_teardown_deletes_nothing_and_does_not_wait(aws: Aws, status: str) -> None:
    aws.stack(status)
    # The endpoint may still be serving from these: they are only listed.
    aws.interfaces(interface("eni-0000000000000000a", "in-use"), interface("eni-0000000000000000b"))
    time = FakeTime()
    body = answer(aws, delete_event(), time)
    assert body["Status"] == "SUCCESS"
    assert time.sleeps == []


# --- which interfaces count as SageMaker's --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "sagemakers"),
    [
        (interface("eni-1"), True),
        (interface("eni-1", requester="AROAEXAMPLEROLEID0001:sagemaker"), True),
        (interface("eni-1", requester="123456789012", description="SageMaker Endpoint Management"), True),
        (interface("eni-1", requester="AIDAEXAMPLEUSER000001", description=""), False),
        (interface("eni-1", requester="AROAEXAMPLEROLEID0001:SageMakerTest"), False),
        (interface("eni-1", requester="amazon-elb", description="ELB app/x/y"), False),
        (interface("eni-1", interface_type="vpc_endpoint"), False),
        (interface("eni-1", interface_type="lambda", description="AWS Lambda VPC ENI-f"), False),
        (
            interface("eni-1", "in-use", attachment={"InstanceId": "i-1", "InstanceOwnerId": ACCOUNT}),
            False,
        ),
        (interface("eni-1", "in-use", attachment={"InstanceOwnerId": "763104351884", "Status": "attached"}), True),
    ],
)
def test_only_plausibly_sagemaker_interfaces_are_touched(found: dict[str, Any], sagemakers: bool) -> None:
    assert is_sagemakers(found) is sagemakers


# --- end to end against moto ----------------------------------------------------------------------------------


@dataclass
class MotoVpc:
    ec2: Any
    vpc: str
    subnet: str
    model_group: str
    other_group: str

    def interface(self, group: str, description: str = "SageMaker endpoint interface") -> str:
        created = self.ec2.create_network_interface(SubnetId=self.subnet, Groups=[group], Description=description)
        return str(created["NetworkInterface"]["NetworkInterfaceId"])

    def existing(self) -> set[str]:
        found = self.ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [self.vpc]}])
        return {item["NetworkInterfaceId"] for item in found["NetworkInterfaces"]}


@pytest.fixture(scope="module")
def moto_ec2() -> Iterator[Any]:
    """One in-process moto account for the module: its EC2 backend takes a second to start."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",  # not needed here, and loading them costs half a second
        }.items():
            env.setenv(name, value)
        with mock_aws():
            ec2 = boto3.client("ec2", region_name=REGION)
            # Starting the backend builds a great many objects, none of them garbage: collector passes over
            # them (and over the CDK's, imported by conftest) cost about a quarter of its CPU time.
            gc.disable()
            try:
                ec2.describe_vpcs()
            finally:
                gc.enable()
            yield ec2


@pytest.fixture
def moto_vpc(moto_ec2: Any) -> MotoVpc:
    """A fresh VPC, subnet, model group and other group per test."""
    vpc = moto_ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = moto_ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    model = moto_ec2.create_security_group(GroupName="model", Description="model", VpcId=vpc)["GroupId"]
    other = moto_ec2.create_security_group(GroupName="other", Description="other", VpcId=vpc)["GroupId"]
    return MotoVpc(moto_ec2, vpc, subnet, model, other)


class TearingDown:
    """A CloudFormation client whose stack is being deleted (moto has no stack for this StackId)."""

    def describe_stacks(self, **kwargs: Any) -> Any:
        return {"Stacks": [{"StackName": "RtbInference-dev", "StackStatus": "DELETE_IN_PROGRESS"}]}


def test_against_moto_sagemakers_interfaces_go_and_other_groups_stay(moto_vpc: MotoVpc) -> None:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    released = moto_vpc.interface(moto_vpc.model_group)
    held = moto_vpc.interface(moto_vpc.model_group)
    elsewhere = moto_vpc.interface(moto_vpc.other_group)
    # moto can only attach to an instance of this account (not SageMaker's, so left alone by design):
    # mark the interface in use the way SageMaker's hidden attachment shows, and release it on the first sleep.
    backend_interface = ec2_backends[DEFAULT_ACCOUNT_ID][REGION].enis[held]
    backend_interface.status = "in-use"

    def release(sleeps: int) -> None:
        backend_interface.status = "available"

    time = FakeTime(on_sleep=release)
    properties = {"SecurityGroupIds": [moto_vpc.model_group], "VpcId": moto_vpc.vpc}
    ev = event("Delete", properties, PhysicalResourceId="pid")
    clients = Clients(ec2=moto_vpc.ec2, cloudformation=TearingDown())

    def reply(request: Any, timeout: float) -> FakeReply:
        return FakeReply()

    body = handler(ev, lambda_context(), clients=lambda: clients, sleep=time.sleep, clock=time.clock, opener=reply)
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert time.sleeps == [5.0]
    remaining = moto_vpc.existing()
    assert released not in remaining
    assert held not in remaining
    assert elsewhere in remaining


def test_against_moto_an_interface_on_an_instance_of_this_account_survives(moto_vpc: MotoVpc) -> None:
    on_instance = moto_vpc.interface(moto_vpc.model_group)
    instance = moto_vpc.ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        SubnetId=moto_vpc.subnet,
        SecurityGroupIds=[moto_vpc.other_group],
    )["Instances"][0]["InstanceId"]
    moto_vpc.ec2.attach_network_interface(NetworkInterfaceId=on_instance, InstanceId=instance, DeviceIndex=1)
    loose = moto_vpc.interface(moto_vpc.model_group)
    target = Target.from_properties({"SecurityGroupIds": [moto_vpc.model_group], "VpcId": moto_vpc.vpc})
    result = eni_cleanup.clean_up(moto_vpc.ec2, target, budget_seconds=0)
    assert result.deleted == (loose,)
    assert not result.remaining
    assert [line.split()[0] for line in result.foreign] == [on_instance]
    assert on_instance in moto_vpc.existing()


def test_the_command_line_cleans_up_and_reports(moto_vpc: MotoVpc, capsys: pytest.CaptureFixture[str]) -> None:
    loose = moto_vpc.interface(moto_vpc.model_group)

    def clients(region: str | None) -> Clients:
        assert region == REGION
        return Clients(ec2=moto_vpc.ec2, cloudformation=TearingDown())

    group = ["--security-group-id", moto_vpc.model_group, "--region", REGION]
    assert eni_cleanup.main([*group, "--dry-run"], clients=clients) == 0
    assert f"SageMaker's: {loose}" in capsys.readouterr().out
    assert loose in moto_vpc.existing()
    assert eni_cleanup.main([*group, "--wait-seconds", "0"], clients=clients) == 0
    assert loose not in moto_vpc.existing()


@pytest.mark.parametrize(
    ("region", "missing"),
    [
        ([], "no AWS region and no AWS credentials found: give --region REGION"),
        (["--region", REGION], "no AWS credentials found: sign in"),
    ],
)
def test_the_command_line_without_aws_configuration_says_what_is_missing_in_one_line(
    tmp_path: Path, region: list[str], missing: str
) -> None:
    """A newcomer's first run, on a machine without AWS configuration: one line, not a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "stacks.handlers.eni_cleanup", "--security-group-id", GROUP, *region, "--dry-run"],
        cwd=REPO_ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"python -m stacks.handlers.eni_cleanup: {missing}")
    assert result.stderr.count("\n") == 1
    assert "AWS_PROFILE" in result.stderr
