"""The SageMaker Model, EndpointConfig, Endpoint and the execution role's least privilege."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .conftest import Synthesized


def _execution_statements(stage: Synthesized) -> dict[str, dict[str, Any]]:
    policies = [
        policy
        for policy in stage.of_type("AWS::IAM::ManagedPolicy").values()
        if {"Ref": _execution_role_id(stage)} in policy["Properties"].get("Roles", [])
        and ("sagemaker" in json.dumps(policy) or "ReadModelArtifact" in json.dumps(policy))
    ]
    assert len(policies) == 1
    return {statement["Sid"]: statement for statement in policies[0]["Properties"]["PolicyDocument"]["Statement"]}


def _execution_role_id(stage: Synthesized) -> str:
    (role_id,) = {
        model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
        for model in stage.of_type("AWS::SageMaker::Model").values()
    }  # every shard's model runs with the one execution role
    return str(role_id)


def test_model_uses_the_pinned_regional_xgboost_image(dev: Synthesized) -> None:
    _, model = dev.one("AWS::SageMaker::Model")
    image = model["Properties"]["PrimaryContainer"]["Image"]
    assert image == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"
    assert "latest" not in image


def test_model_data_is_the_committed_artifact_asset(dev: Synthesized) -> None:
    _, model = dev.one("AWS::SageMaker::Model")
    url = model["Properties"]["PrimaryContainer"]["ModelDataUrl"]
    assert url == {"Fn::Sub": f"s3://cdk-hnb659fds-assets-${{AWS::AccountId}}-us-east-1/{dev.model_asset_hash}.gz"}
    staged = dev.outdir / f"asset.{dev.model_asset_hash}.tar.gz"
    assert staged.read_bytes() == dev.settings.artifact_path.read_bytes()


def test_model_runs_network_isolated_in_the_vpc(any_stage: Synthesized) -> None:
    models = list(any_stage.of_type("AWS::SageMaker::Model").values())
    assert len(models) == any_stage.settings.shards  # one per shard; each the same
    assert all(model["Properties"] == models[0]["Properties"] for model in models)
    properties = models[0]["Properties"]
    assert properties["EnableNetworkIsolation"] is True
    assert len(properties["VpcConfig"]["Subnets"]) == max(2, len(any_stage.settings.client_azs))
    (group,) = properties["VpcConfig"]["SecurityGroupIds"]
    group_props = any_stage.resources[group["Fn::GetAtt"][0]]["Properties"]
    assert "SecurityGroupIngress" not in group_props
    assert group_props["SecurityGroupEgress"] == [
        {"CidrIp": "0.0.0.0/0", "Description": "Model artifact download from S3", "FromPort": 443,
         "IpProtocol": "tcp", "ToPort": 443}
    ]  # fmt: skip


def test_endpoint_config_serves_on_c5_with_least_outstanding_requests(dev: Synthesized) -> None:
    _, config = dev.one("AWS::SageMaker::EndpointConfig")
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["InstanceType"] == "ml.c5.xlarge"
    assert variant["InitialInstanceCount"] == 2
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 300
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 300
    assert "VolumeSizeInGB" not in variant


def test_endpoint_config_is_encrypted_with_the_rotating_customer_key(any_stage: Synthesized) -> None:
    key_id, key = any_stage.one("AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    for config in any_stage.of_type("AWS::SageMaker::EndpointConfig").values():
        if any_stage.settings.kms_encryption:
            assert config["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        else:  # local NVMe storage (gpu stage): see the next test
            assert "KmsKeyId" not in config["Properties"]


def test_endpoint_config_has_no_kms_key_on_local_nvme_instances(synth_stage: Any) -> None:
    """The gpu stage's ml.g4dn keeps the model on NVMe storage the instance encrypts; SageMaker rejects a key."""
    stage = synth_stage("gpu")
    assert stage.settings.kms_encryption is False
    _, config = stage.one("AWS::SageMaker::EndpointConfig")
    assert "KmsKeyId" not in config["Properties"]
    assert config["Properties"]["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.xlarge"


def test_endpoint_retains_variant_properties_on_update(any_stage: Synthesized) -> None:
    configs = any_stage.of_type("AWS::SageMaker::EndpointConfig")
    endpoints = any_stage.of_type("AWS::SageMaker::Endpoint")
    assert len(configs) == len(endpoints) == any_stage.settings.shards
    # Each shard's endpoint its own config (shard k's ids carry "Shard<k>").
    named = {endpoint["Properties"]["EndpointConfigName"]["Fn::GetAtt"][0] for endpoint in endpoints.values()}
    assert named == set(configs)
    for endpoint in endpoints.values():
        assert endpoint["Properties"]["RetainAllVariantProperties"] is True


def test_endpoint_is_named_after_the_stack_and_its_instance_type(any_stage: Synthesized) -> None:
    """The one physical name: the rollback alarms name the endpoint before it exists, and a new instance
    type must replace the endpoint (tests/test_rollout.py)."""
    names = [
        endpoint["Properties"]["EndpointName"] for endpoint in any_stage.of_type("AWS::SageMaker::Endpoint").values()
    ]
    first = f"{any_stage.settings.stack_name}-{any_stage.settings.instance_type[3:].replace('.', '-')}"
    # Shard 0 keeps the one-endpoint name; shard k adds "-shard<k>".
    assert names == [first, *(f"{first}-shard{index}" for index in range(1, any_stage.settings.shards))]
    for name in names:
        assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)  # SageMaker's EndpointName pattern


@pytest.mark.parametrize(
    ("resource_type", "name_property"),
    [
        ("AWS::SageMaker::Model", "ModelName"),
        ("AWS::SageMaker::EndpointConfig", "EndpointConfigName"),
        ("AWS::IAM::Role", "RoleName"),
        ("AWS::IAM::ManagedPolicy", "ManagedPolicyName"),
        ("AWS::KMS::Key", "KeyId"),
        ("AWS::Logs::LogGroup", "LogGroupName"),
        ("AWS::EC2::SecurityGroup", "GroupName"),
    ],
)
def test_no_physical_names_so_replacements_work(any_stage: Synthesized, resource_type: str, name_property: str) -> None:
    for logical_id, resource in any_stage.of_type(resource_type).items():
        assert name_property not in resource.get("Properties", {}), logical_id


def test_model_waits_for_its_execution_policy(any_stage: Synthesized) -> None:
    policy_id = next(
        key
        for key, policy in any_stage.of_type("AWS::IAM::ManagedPolicy").items()
        if "ReadModelArtifact" in json.dumps(policy)
    )
    for model in any_stage.of_type("AWS::SageMaker::Model").values():
        assert policy_id in model["DependsOn"]


def test_execution_role_is_assumable_by_sagemaker_only(dev: Synthesized) -> None:
    role = dev.resources[_execution_role_id(dev)]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            # SageMaker's documented confused-deputy guard for inference: this account and region.
            "Condition": {
                "ArnLike": {
                    "aws:SourceArn": {
                        "Fn::Join": ["", ["arn:aws:sagemaker:us-east-1:", {"Ref": "AWS::AccountId"}, ":*"]]
                    }
                }
            },
        }
    ]
    assert "ManagedPolicyArns" not in role  # no AWS managed (FullAccess) policies
    assert "Policies" not in role  # no inline policies


def test_only_cdks_handler_role_has_an_aws_managed_policy(any_stage: Synthesized) -> None:
    """The kit's roles use customer-managed policies only. CDK's default-security-group handler (a
    raw CfnResource that cdk-nag does not inspect) attaches AWSLambdaBasicExecutionRole: logs only."""
    assert "FullAccess" not in json.dumps(any_stage.template_json)
    managed = {
        logical_id: json.dumps(role["Properties"].get("ManagedPolicyArns", []))
        for logical_id, role in any_stage.of_type("AWS::IAM::Role").items()
        if ":iam::aws:policy/" in json.dumps(role["Properties"])
    }
    expected = (
        {} if any_stage.settings.vpc_id is not None else {
            "CustomVpcRestrictDefaultSGCustomResourceProviderRole26592FE0":
            '[{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}]'
        }
    )  # fmt: skip
    assert managed == expected


def test_execution_role_reads_exactly_the_model_artifact(dev: Synthesized) -> None:
    statement = _execution_statements(dev)["ReadModelArtifact"]
    assert statement["Action"] == "s3:GetObject"
    assert statement["Resource"] == {
        "Fn::Join": [
            "",
            [
                "arn:aws:s3:::",
                {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-us-east-1"},
                f"/{dev.model_asset_hash}.gz",
            ],
        ]
    }


def test_execution_role_pulls_only_the_xgboost_repository(dev: Synthesized) -> None:
    statement = _execution_statements(dev)["PullContainerImage"]
    assert statement["Resource"] == "arn:aws:ecr:us-east-1:683313688378:repository/sagemaker-xgboost"
    assert sorted(statement["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]


def test_execution_role_wildcards_are_only_where_iam_has_no_resource_scope(dev: Synthesized) -> None:
    statements = _execution_statements(dev)
    star = {sid: statement for sid, statement in statements.items() if statement["Resource"] == "*"}
    assert set(star) == {"UnscopableReadsAndToken", "PublishEndpointMetrics"}
    assert all(action.startswith("ec2:Describe") or action == "ecr:GetAuthorizationToken"
               for action in star["UnscopableReadsAndToken"]["Action"])  # fmt: skip
    assert star["PublishEndpointMetrics"]["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}
    for statement in statements.values():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any("*" in action for action in actions), statement["Sid"]


def test_execution_role_has_the_vpc_permissions_sagemaker_documents_for_hosting(dev: Synthesized) -> None:
    """SageMaker's "Give SageMaker hosted endpoints access to resources in your Amazon VPC" page."""
    statements = _execution_statements(dev).values()
    granted = {action for statement in statements for action in _actions(statement) if action.startswith("ec2:")}
    assert granted == {
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:CreateNetworkInterface",
    }


def _ec2_arn(resource: str, name: dict[str, Any] | str) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:aws:ec2:us-east-1:", {"Ref": "AWS::AccountId"}, f":{resource}/", name]]}


def test_execution_role_creates_interfaces_only_in_the_model_subnets_and_group(dev: Synthesized) -> None:
    """EC2 authorizes the new interface, the subnet and the group each on its own: the subnets and the
    group are named, the new interface (no VPC key in its context) by this account's pattern."""
    statement = _execution_statements(dev)["CreateNetworkInterfacesInTheModelSubnets"]
    _, model = dev.one("AWS::SageMaker::Model")
    config = model["Properties"]["VpcConfig"]
    (group,) = config["SecurityGroupIds"]
    assert statement["Action"] == "ec2:CreateNetworkInterface"
    assert "Condition" not in statement
    assert sorted(map(json.dumps, statement["Resource"])) == sorted(
        map(
            json.dumps,
            [
                {"Fn::Join": ["", ["arn:aws:ec2:us-east-1:", {"Ref": "AWS::AccountId"}, ":network-interface/*"]]},
                _ec2_arn("security-group", group),
                *(_ec2_arn("subnet", subnet) for subnet in config["Subnets"]),
            ],
        )
    )


def test_execution_role_manages_existing_interfaces_only_in_this_vpc(dev: Synthesized) -> None:
    statement = _execution_statements(dev)["ManageNetworkInterfacesInThisVpc"]
    vpc_id, _ = dev.one("AWS::EC2::VPC")
    assert sorted(statement["Action"]) == [
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission",
    ]
    assert statement["Resource"] == {
        "Fn::Join": ["", ["arn:aws:ec2:us-east-1:", {"Ref": "AWS::AccountId"}, ":network-interface/*"]]
    }
    assert statement["Condition"] == {"ArnEquals": {"ec2:Vpc": _ec2_arn("vpc", {"Ref": vpc_id})}}


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_execution_role_may_use_the_stack_key_for_storage(dev: Synthesized) -> None:
    key_id, _ = dev.one("AWS::KMS::Key")
    statement = _execution_statements(dev)["EncryptStorageVolume"]
    assert statement["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert sorted(statement["Action"]) == ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]


def test_execution_role_logs_only_to_sagemaker_endpoint_log_groups(dev: Synthesized) -> None:
    statement = _execution_statements(dev)["WriteEndpointLogs"]
    assert statement["Resource"] == {
        "Fn::Join": [
            "",
            ["arn:aws:logs:us-east-1:", {"Ref": "AWS::AccountId"}, ":log-group:/aws/sagemaker/Endpoints/*"],
        ]
    }


def test_log_service_may_use_the_key_only_for_this_accounts_log_groups(dev: Synthesized) -> None:
    _, key = dev.one("AWS::KMS::Key")
    statements = {s.get("Sid"): s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    logs = statements["CloudWatchLogsOfThisAccount"]
    # Calls that carry an encryption context only; kms:DescribeKey carries none and is not listed.
    assert sorted(logs["Action"]) == [
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
    ]
    assert logs["Principal"] == {"Service": {"Fn::Join": ["", ["logs.us-east-1.", {"Ref": "AWS::URLSuffix"}]]}}
    assert logs["Condition"] == {
        "ArnLike": {
            "kms:EncryptionContext:aws:logs:arn": {
                "Fn::Join": ["", ["arn:aws:logs:us-east-1:", {"Ref": "AWS::AccountId"}, ":log-group:*"]]
            }
        }
    }
