"""Each client AZ's zonal DNS name of the runtime endpoint (stacks/zonal_dns.py, stacks/handlers/zonal_dns.py):
picked by the AZ each name carries, whatever order DescribeVpcEndpoints lists them in, and answered to
CloudFormation exactly once."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from stacks.handlers import zonal_dns
from stacks.zonal_dns import RESOURCE_TYPE

from .conftest import Synthesized

ENDPOINT = "vpce-0fe5b17a0707d6abc"
DOMAIN = "runtime.sagemaker.us-east-1.vpce.amazonaws.com"
AZS = ["us-east-1a", "us-east-1b", "us-east-1c"]


def entries(azs: list[str] = AZS, endpoint: str = ENDPOINT) -> list[str]:
    """DnsEntries' names as AWS lists them: the endpoint-specific regional name, one zonal name per AZ, and
    the private DNS name (PrivateLink guide, "DNS hostnames")."""
    return [
        f"{endpoint}-29p5708s.{DOMAIN}",
        *(f"{endpoint}-29p5708s-{az}.{DOMAIN}" for az in azs),
        "runtime.sagemaker.us-east-1.amazonaws.com",
    ]


@pytest.mark.parametrize("seed", range(20))
def test_each_az_gets_its_own_name_from_a_shuffled_list(seed: int) -> None:
    names = entries()
    random.Random(seed).shuffle(names)
    wanted = random.Random(seed).sample(AZS, k=2)
    found = zonal_dns.zonal_names(names, ENDPOINT, wanted)
    assert found == {az: f"{ENDPOINT}-29p5708s-{az}.{DOMAIN}" for az in wanted}
    assert zonal_dns.regional_name(names, ENDPOINT, found) == f"{ENDPOINT}-29p5708s.{DOMAIN}"


def test_an_az_without_an_interface_fails_in_one_line_naming_the_azs_it_has() -> None:
    with pytest.raises(ValueError) as raised:
        zonal_dns.zonal_names(entries(["us-east-1a", "us-east-1b"]), ENDPOINT, ["us-east-1a", "us-east-1c"])
    message = str(raised.value)
    assert message.startswith(f"{ENDPOINT} has no zonal DNS name for us-east-1c (it has interfaces in us-east-1a, ")
    assert "\n" not in message


def test_names_of_another_endpoint_or_the_private_dns_name_are_never_picked() -> None:
    other = "vpce-0aaaaaaaaaaaaaaaa"
    names = [*entries(["us-east-1b"], endpoint=other), f"{ENDPOINT}-x1y2z3w4.{DOMAIN}"]
    with pytest.raises(ValueError):
        zonal_dns.zonal_names(names, ENDPOINT, ["us-east-1b"])


def test_an_az_name_that_is_a_suffix_of_another_is_not_confused() -> None:
    # "-us-east-1a" must not match a name ending in "-xus-east-1a"; the hyphen anchors the whole AZ name.
    names = [f"{ENDPOINT}-29p5708s.{DOMAIN}", f"{ENDPOINT}-29p5708s-xus-east-1a.{DOMAIN}"]
    with pytest.raises(ValueError):
        zonal_dns.zonal_names(names, ENDPOINT, ["us-east-1a"])


def test_china_regions_names_are_read_too() -> None:
    domain = "runtime.sagemaker.cn-north-1.vpce.amazonaws.com.cn"
    names = [f"{ENDPOINT}-abc.{domain}", f"{ENDPOINT}-abc-cn-north-1a.{domain}"]
    assert zonal_dns.zonal_names(names, ENDPOINT, ["cn-north-1a"]) == {"cn-north-1a": names[1]}


class Ec2:
    """describe_vpc_endpoints of one endpoint, its DnsEntries shuffled, as the EC2 API answers."""

    def __init__(self, names: list[str]) -> None:
        self.names, self.calls = names, []  # type: ignore[var-annotated]

    def describe_vpc_endpoints(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        shuffled = list(self.names)
        random.Random(7).shuffle(shuffled)
        dns_entries = [{"DnsName": name, "HostedZoneId": "Z7HUB22UULQXV"} for name in shuffled]
        return {"VpcEndpoints": [{"VpcEndpointId": ENDPOINT, "DnsEntries": dns_entries}]}


class Opener:
    """Records what the handler PUTs to the ResponseURL."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: Any, timeout: float) -> Any:
        self.bodies.append(json.loads(request.data))
        return self

    def __enter__(self) -> Any:
        return type("Reply", (), {"status": 200})()

    def __exit__(self, *_: object) -> None:
        return None


def event(request_type: str, **properties: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://example.invalid/response",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
        "RequestId": "r-1",
        "LogicalResourceId": "ZonalDnsNames",
        "ResourceType": RESOURCE_TYPE,
        "ResourceProperties": {"VpcEndpointId": ENDPOINT, "AvailabilityZones": AZS[:2], **properties},
    }


def test_create_answers_the_json_the_regional_name_and_one_attribute_per_az() -> None:
    ec2, opener = Ec2(entries()), Opener()
    body = zonal_dns.handler(event("Create"), None, ec2=lambda: ec2, opener=opener)
    assert opener.bodies == [body]
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", ENDPOINT)
    expected = {az: f"{ENDPOINT}-29p5708s-{az}.{DOMAIN}" for az in AZS[:2]}
    assert json.loads(body["Data"]["Json"]) == expected
    assert body["Data"]["UsEast1a"] == expected["us-east-1a"]
    assert body["Data"]["UsEast1b"] == expected["us-east-1b"]
    assert body["Data"]["Regional"] == f"{ENDPOINT}-29p5708s.{DOMAIN}"
    assert ec2.calls == [{"VpcEndpointIds": [ENDPOINT]}]


def test_a_missing_az_fails_the_resource_with_the_reason() -> None:
    body = zonal_dns.handler(
        event("Create", AvailabilityZones=["us-east-1d"]), None, ec2=lambda: Ec2(entries()), opener=Opener()
    )
    assert body["Status"] == "FAILED"
    assert "has no zonal DNS name for us-east-1d" in body["Reason"]


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"VpcEndpointId": "sg-1"}, "VpcEndpointId='sg-1' is invalid"),
        ({"AvailabilityZones": []}, "AvailabilityZones=[] is invalid"),
    ],
)
def test_bad_properties_fail_in_one_line(properties: dict[str, Any], reason: str) -> None:
    body = zonal_dns.handler(event("Update", **properties), None, ec2=lambda: Ec2(entries()), opener=Opener())
    assert body["Status"] == "FAILED"
    assert reason in body["Reason"]


def test_delete_changes_nothing_and_calls_nothing() -> None:
    ec2 = Ec2(entries())
    body = zonal_dns.handler(
        {**event("Delete"), "PhysicalResourceId": ENDPOINT}, None, ec2=lambda: ec2, opener=Opener()
    )
    assert (body["Status"], body["PhysicalResourceId"], ec2.calls) == ("SUCCESS", ENDPOINT, [])


def test_the_function_may_describe_endpoints_and_write_its_logs_only(
    synth_stage: Callable[[str], Synthesized],
) -> None:
    dev = synth_stage("dev")
    resource_id, resource = dev.one(RESOURCE_TYPE)
    function_id = resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    function = dev.resources[function_id]["Properties"]
    assert function["Handler"] == "handlers.zonal_dns.handler"
    (policy,) = [
        p["Properties"]
        for p in dev.of_type("AWS::IAM::ManagedPolicy").values()
        if p["Properties"].get("Roles") == [{"Ref": function["Role"]["Fn::GetAtt"][0]}]
    ]
    actions = sorted(
        action
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    )
    assert actions == ["ec2:DescribeVpcEndpoints", "logs:CreateLogStream", "logs:PutLogEvents"]
    # Its permission is in place before CloudFormation calls it.
    assert any(dependency.startswith("ZonalDnsNamesHandlerPolicy") for dependency in resource["DependsOn"])
    assert resource_id.startswith("ZonalDnsNames")
