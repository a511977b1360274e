"""The private network: DNS, isolation, same-AZ subnets, the two VPC endpoints and flow logs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import REPO_ROOT, Synthesized


def _refs(values: list[Any]) -> list[str]:
    return [value["Ref"] if isinstance(value, dict) else value for value in values]


def _vpc_endpoint(stage: Synthesized, endpoint_type: str) -> dict[str, Any]:
    found = [
        resource["Properties"]
        for resource in stage.of_type("AWS::EC2::VPCEndpoint").values()
        if resource["Properties"].get("VpcEndpointType") == endpoint_type
    ]
    assert len(found) == 1, f"expected one {endpoint_type} endpoint, found {len(found)}"
    endpoint: dict[str, Any] = found[0]
    return endpoint


def _runtime_endpoint(stage: Synthesized) -> dict[str, Any]:
    return _vpc_endpoint(stage, "Interface")


def _s3_endpoint(stage: Synthesized) -> dict[str, Any]:
    return _vpc_endpoint(stage, "Gateway")


def test_vpc_has_dns_hostnames_and_support_for_private_dns(dev: Synthesized) -> None:
    dev.template.has_resource_properties(
        "AWS::EC2::VPC", {"EnableDnsHostnames": True, "EnableDnsSupport": True, "CidrBlock": "10.42.0.0/16"}
    )


def test_vpc_has_no_internet_gateway_nat_or_public_subnet(dev: Synthesized) -> None:
    for resource_type in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP"):
        dev.template.resource_count_is(resource_type, 0)
    for subnet in dev.of_type("AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    # The only routes are the implicit local one and the S3 gateway's prefix list: no 0.0.0.0/0.
    dev.template.resource_count_is("AWS::EC2::Route", 0)


def test_subnets_are_in_exactly_the_client_azs(dev: Synthesized) -> None:
    azs = sorted(subnet["Properties"]["AvailabilityZone"] for subnet in dev.of_type("AWS::EC2::Subnet").values())
    assert azs == sorted(dev.settings.client_azs) == ["us-east-1a", "us-east-1b"]


def test_runtime_endpoint_is_sagemaker_runtime_with_private_dns(dev: Synthesized) -> None:
    endpoint = _runtime_endpoint(dev)
    assert endpoint["ServiceName"] == "com.amazonaws.us-east-1.sagemaker.runtime"
    assert endpoint["PrivateDnsEnabled"] is True


def test_runtime_endpoint_sits_in_the_client_az_subnets(dev: Synthesized) -> None:
    assert sorted(_refs(_runtime_endpoint(dev)["SubnetIds"])) == sorted(dev.of_type("AWS::EC2::Subnet"))


def test_runtime_endpoint_subnets_equal_model_subnets(any_stage: Synthesized) -> None:
    """Same-AZ routing is the point of the design: the endpoint ENIs and the model share subnets. An existing
    endpoint keeps its owner's subnets: the stack creates none (make preflight checks it serves every client AZ)."""
    models = any_stage.of_type("AWS::SageMaker::Model").values()  # every shard's, in the same subnets
    if any_stage.settings.runtime_endpoint is not None:
        assert not any(
            endpoint["Properties"].get("VpcEndpointType") == "Interface"
            for endpoint in any_stage.of_type("AWS::EC2::VPCEndpoint").values()
        )
        return
    for model in models:
        assert _runtime_endpoint(any_stage)["SubnetIds"] == model["Properties"]["VpcConfig"]["Subnets"]


def test_runtime_endpoint_admits_https_only_from_the_client_group(dev: Synthesized) -> None:
    endpoint = _runtime_endpoint(dev)
    (group_ref,) = endpoint["SecurityGroupIds"]
    group_id = group_ref["Fn::GetAtt"][0]
    group = dev.resources[group_id]["Properties"]
    assert "SecurityGroupIngress" not in group  # rules on other groups are separate resources
    ingress = [
        rule["Properties"]
        for rule in dev.of_type("AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    client_group = _client_group_id(dev)
    assert ingress == [
        {
            "Description": "HTTPS from the client group",
            "FromPort": 443,
            "ToPort": 443,
            "IpProtocol": "tcp",
            "GroupId": {"Fn::GetAtt": [group_id, "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [client_group, "GroupId"]},
        }
    ]
    # No egress from the endpoint's group: CDK's placeholder rule matches no traffic.
    (egress,) = group["SecurityGroupEgress"]
    assert egress["CidrIp"] == "255.255.255.255/32"


def _client_group_id(stage: Synthesized) -> str:
    output = stage.template_json["Outputs"]["ClientSecurityGroupId"]["Value"]
    return str(output["Fn::GetAtt"][0])


def test_configured_client_networks_get_https_ingress(shared_vpc_own_endpoint: Synthesized) -> None:
    shared_vpc_own_endpoint.template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "SageMaker Runtime interface endpoint: HTTPS from clients only",
            "SecurityGroupIngress": [
                {
                    "CidrIp": "10.100.0.0/16",
                    "Description": "HTTPS from client network 10.100.0.0/16",
                    "FromPort": 443,
                    "IpProtocol": "tcp",
                    "ToPort": 443,
                }
            ],
        },
    )


def test_client_group_may_reach_only_the_endpoint_on_https(dev: Synthesized) -> None:
    client = _client_group_id(dev)
    egress = [
        rule["Properties"]
        for rule in dev.of_type("AWS::EC2::SecurityGroupEgress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [client, "GroupId"]}
    ]
    assert len(egress) == 1
    assert (egress[0]["FromPort"], egress[0]["ToPort"], egress[0]["IpProtocol"]) == (443, 443, "tcp")


def test_no_security_group_admits_the_internet(any_stage: Synthesized) -> None:
    ingress = [
        *(
            group["Properties"].get("SecurityGroupIngress", [])
            for group in any_stage.of_type("AWS::EC2::SecurityGroup").values()
        ),
        *(rule["Properties"] for rule in any_stage.of_type("AWS::EC2::SecurityGroupIngress").values()),
    ]
    assert ingress  # the runtime endpoint's rules exist
    assert "0.0.0.0/0" not in json.dumps(ingress)
    assert "::/0" not in json.dumps(ingress)


def test_runtime_endpoint_policy_only_invokes_this_accounts_endpoints(dev: Synthesized) -> None:
    (statement,) = _runtime_endpoint(dev)["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    assert statement["Resource"] == {
        "Fn::Join": ["", ["arn:aws:sagemaker:us-east-1:", {"Ref": "AWS::AccountId"}, ":endpoint/*"]]
    }


@pytest.mark.parametrize("stage_name", ["dev", "portable"])
def test_s3_gateway_policy_admits_only_reads_of_the_model_artifact(stage_name: str, synth_stage: Any) -> None:
    any_stage = synth_stage(stage_name)
    (statement,) = _s3_endpoint(any_stage)["PolicyDocument"]["Statement"]
    assert statement["Action"] == "s3:GetObject"
    resource = json.dumps(statement["Resource"])
    assert f"/{any_stage.model_asset_hash}.gz" in resource
    assert "*" not in resource


def test_s3_gateway_serves_the_model_subnets_route_tables(dev: Synthesized) -> None:
    route_tables = sorted(_refs(_s3_endpoint(dev)["RouteTableIds"]))
    associated = sorted(
        assoc["Properties"]["RouteTableId"]["Ref"]
        for assoc in dev.of_type("AWS::EC2::SubnetRouteTableAssociation").values()
    )
    assert route_tables == associated and len(route_tables) == 2


def test_flow_logs_go_to_an_encrypted_log_group_with_retention(dev: Synthesized) -> None:
    log_group_id, log_group = _flow_log_group(dev)
    assert log_group["Properties"]["RetentionInDays"] == dev.settings.log_retention_days == 365
    key_id, _ = dev.one("AWS::KMS::Key")
    assert log_group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert log_group["DeletionPolicy"] == "Retain"
    _, flow_log = dev.one("AWS::EC2::FlowLog")
    vpc_id, _ = dev.one("AWS::EC2::VPC")
    assert flow_log["Properties"]["ResourceId"] == {"Ref": vpc_id}
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    assert flow_log["Properties"]["LogGroupName"] == {"Ref": log_group_id}


def test_flow_log_role_can_write_only_to_its_log_group(dev: Synthesized) -> None:
    log_group_id, _ = _flow_log_group(dev)
    policies = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in dev.of_type("AWS::IAM::ManagedPolicy").values()
        if "logs:PutLogEvents" in json.dumps(policy) and "FlowLog" in json.dumps(policy)
    ]
    assert policies == [
        [
            {
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [log_group_id, "Arn"]},
            }
        ]
    ]


def test_default_security_group_is_stripped_of_rules(dev: Synthesized) -> None:
    vpc_id, _ = dev.one("AWS::EC2::VPC")
    dev.template.has_resource_properties(
        "Custom::VpcRestrictDefaultSG", {"DefaultSecurityGroupId": {"Fn::GetAtt": [vpc_id, "DefaultSecurityGroup"]}}
    )


def test_existing_vpc_creates_no_vpc_and_uses_its_private_subnets_in_client_azs(
    shared_vpc_own_endpoint: Synthesized,
) -> None:
    shared_vpc = shared_vpc_own_endpoint
    for resource_type in ("AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::FlowLog"):
        shared_vpc.template.resource_count_is(resource_type, 0)
    lookup = next(iter(json.loads((REPO_ROOT / "cdk.context.json").read_text()).values()))
    private = {
        subnet["availabilityZone"]: subnet
        for group in lookup["subnetGroups"]
        if group["type"] == "Private"
        for subnet in group["subnets"]
    }
    expected = [private[az]["subnetId"] for az in shared_vpc.settings.client_azs]
    assert _runtime_endpoint(shared_vpc)["SubnetIds"] == expected
    assert _runtime_endpoint(shared_vpc)["VpcId"] == lookup["vpcId"]


def test_existing_vpc_route_tables_are_left_alone(shared_vpc: Synthesized) -> None:
    """An artifact-only S3 gateway on shared route tables would cut off other workloads' S3 access."""
    gateways = [
        endpoint
        for endpoint in shared_vpc.of_type("AWS::EC2::VPCEndpoint").values()
        if endpoint["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    assert gateways == []
    for resource_type in ("AWS::EC2::Route", "AWS::EC2::RouteTable", "AWS::EC2::SubnetRouteTableAssociation"):
        shared_vpc.template.resource_count_is(resource_type, 0)


def test_environment_agnostic_stage_uses_two_azs_of_the_deploy_region(portable: Synthesized) -> None:
    azs = [subnet["Properties"]["AvailabilityZone"] for subnet in portable.of_type("AWS::EC2::Subnet").values()]
    assert azs == [{"Fn::Select": [0, {"Fn::GetAZs": ""}]}, {"Fn::Select": [1, {"Fn::GetAZs": ""}]}]


def _flow_log_group(stage: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = [(key, group) for key, group in stage.of_type("AWS::Logs::LogGroup").items() if "FlowLog" in key]
    return found


# --- an existing runtime endpoint (a VPC holds one with private DNS per service) ---------------------------


def test_an_existing_runtime_endpoint_is_used_not_created(shared_vpc: Synthesized) -> None:
    existing = shared_vpc.settings.runtime_endpoint
    assert existing is not None, "the shipped shared-vpc stage shows an existing runtime endpoint"
    assert [
        endpoint
        for endpoint in shared_vpc.of_type("AWS::EC2::VPCEndpoint").values()
        if endpoint["Properties"].get("VpcEndpointType") == "Interface"
    ] == []
    outputs = shared_vpc.template_json["Outputs"]
    assert outputs["RuntimeVpcEndpointId"]["Value"] == existing.vpc_endpoint_id
    _, names = shared_vpc.one("Custom::RuntimeZonalDnsNames")
    assert names["Properties"]["VpcEndpointId"] == existing.vpc_endpoint_id


def test_the_existing_endpoints_group_admits_the_stages_clients_on_https_only(shared_vpc: Synthesized) -> None:
    """Rules of this stack on the owner's group: from the client group and each client network, HTTPS only;
    and the client group's only egress is HTTPS to that group."""
    existing = shared_vpc.settings.runtime_endpoint
    assert existing is not None
    client_group = _client_group_id(shared_vpc)
    ingress = sorted(
        (rule["Properties"] for rule in shared_vpc.of_type("AWS::EC2::SecurityGroupIngress").values()),
        key=lambda rule: rule["Description"],
    )
    assert ingress == sorted(
        [
            {
                "Description": "HTTPS from the client group",
                "FromPort": 443,
                "ToPort": 443,
                "IpProtocol": "tcp",
                "GroupId": existing.security_group_id,
                "SourceSecurityGroupId": {"Fn::GetAtt": [client_group, "GroupId"]},
            },
            *(
                {
                    "CidrIp": cidr,
                    "Description": f"HTTPS from client network {cidr}",
                    "FromPort": 443,
                    "ToPort": 443,
                    "IpProtocol": "tcp",
                    "GroupId": existing.security_group_id,
                }
                for cidr in shared_vpc.settings.client_cidrs
            ),
        ],
        key=lambda rule: str(rule["Description"]),
    )
    egress = [
        rule["Properties"]
        for rule in shared_vpc.of_type("AWS::EC2::SecurityGroupEgress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [client_group, "GroupId"]}
    ]
    assert egress == [
        {
            "Description": "HTTPS to SageMaker Runtime",
            "DestinationSecurityGroupId": existing.security_group_id,
            "FromPort": 443,
            "ToPort": 443,
            "IpProtocol": "tcp",
            "GroupId": {"Fn::GetAtt": [client_group, "GroupId"]},
        }
    ]


def test_callers_may_invoke_only_through_the_existing_endpoint(shared_vpc: Synthesized) -> None:
    existing = shared_vpc.settings.runtime_endpoint
    assert existing is not None
    (caller,) = [
        resource["Properties"]
        for key, resource in shared_vpc.of_type("AWS::IAM::ManagedPolicy").items()
        if key.startswith("CallerPolicy")
    ]
    (statement,) = caller["PolicyDocument"]["Statement"]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceVpce": existing.vpc_endpoint_id}}
