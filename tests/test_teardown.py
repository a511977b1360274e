"""Clean teardown: the ENI-cleanup custom resource runs after the models go and before their network goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import REPO_ROOT, Synthesized

RESOURCE_TYPE = "Custom::SageMakerEniCleanup"
HANDLER = "handlers.eni_cleanup.handler"


def _cleanup(stage: Synthesized) -> tuple[str, dict[str, Any]]:
    return stage.one(RESOURCE_TYPE)


def _function(stage: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (key, function)
        for key, function in stage.of_type("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == HANDLER
    ]
    return found


def _policies_of(stage: Synthesized, role_id: str) -> dict[str, dict[str, Any]]:
    return {
        key: policy
        for key, policy in stage.of_type("AWS::IAM::ManagedPolicy").items()
        if {"Ref": role_id} in policy["Properties"].get("Roles", [])
    }


def _execution_ids(stage: Synthesized) -> tuple[str, str]:
    """(execution role, execution policy) of the model (every shard's: one role)."""
    (role_id,) = {
        m["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0] for m in stage.of_type("AWS::SageMaker::Model").values()
    }
    (policy_id,) = [
        key for key, policy in _policies_of(stage, role_id).items() if "ReadModelArtifact" in json.dumps(policy)
    ]
    return role_id, policy_id


def _refs(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref and GetAtt), pseudo parameters excluded."""
    if isinstance(node, dict):
        if isinstance(node.get("Ref"), str):
            return set() if node["Ref"].startswith("AWS::") else {node["Ref"]}
        if "Fn::GetAtt" in node:
            return {node["Fn::GetAtt"][0]}
        return set().union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def _direct(stage: Synthesized, logical_id: str) -> set[str]:
    resource = stage.resources[logical_id]
    return (_refs(resource.get("Properties", {})) | set(resource.get("DependsOn", []))) & set(stage.resources)


def _created_before(stage: Synthesized, logical_id: str) -> set[str]:
    """Every resource CloudFormation creates before ``logical_id`` (and deletes after it)."""
    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        for found in _direct(stage, todo.pop()) - seen:
            seen.add(found)
            todo.append(found)
    return seen


def _arn(value: Any) -> str:
    """An ARN as text, with ${Name} for each Ref: literal where the stage knows account and region."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"${{{value['Ref']}}}"
    separator, parts = value["Fn::Join"]
    return str(separator).join(_arn(part) for part in parts)


def _ec2_arn(stage: Synthesized, resource: str) -> str:
    """An EC2 ARN of this stack's account and region, as _arn renders it."""
    settings = stage.settings
    partition = "aws" if settings.region else "${AWS::Partition}"
    region = settings.region or "${AWS::Region}"
    account = settings.account or "${AWS::AccountId}"
    return f"arn:{partition}:ec2:{region}:{account}:{resource}"


def _this_vpc(stage: Synthesized) -> str:
    return stage.settings.vpc_id or f"${{{stage.one('AWS::EC2::VPC')[0]}}}"


def test_cleanup_targets_the_models_security_group_in_this_vpc(any_stage: Synthesized) -> None:
    _, cleanup = _cleanup(any_stage)
    properties = cleanup["Properties"]
    for model in any_stage.of_type("AWS::SageMaker::Model").values():  # every shard's model, in one group
        assert properties["SecurityGroupIds"] == model["Properties"]["VpcConfig"]["SecurityGroupIds"]
    (group,) = properties["SecurityGroupIds"]
    assert any_stage.resources[group["Fn::GetAtt"][0]]["Type"] == "AWS::EC2::SecurityGroup"
    if any_stage.settings.vpc_id is None:
        assert properties["VpcId"] == {"Ref": any_stage.one("AWS::EC2::VPC")[0]}
    else:
        assert properties["VpcId"] == any_stage.settings.vpc_id


def test_cleanup_is_served_by_its_function_with_a_20_minute_limit(any_stage: Synthesized) -> None:
    _, cleanup = _cleanup(any_stage)
    function_id, _ = _function(any_stage)
    assert cleanup["Properties"]["ServiceToken"] == {"Fn::GetAtt": [function_id, "Arn"]}
    # A function that dies without answering holds the stack 20 minutes, not CloudFormation's hour.
    assert cleanup["Properties"]["ServiceTimeout"] == "1200"


def test_cleanup_waits_for_role_policies_and_the_model_subnets(any_stage: Synthesized) -> None:
    """Created after, so deleted before: the role SageMaker releases ENIs with, and the subnets they sit in."""
    _, cleanup = _cleanup(any_stage)
    role_id, execution_policy_id = _execution_ids(any_stage)
    _, function = _function(any_stage)
    (function_policy_id,) = _policies_of(any_stage, function["Properties"]["Role"]["Fn::GetAtt"][0])
    depends_on = set(cleanup["DependsOn"])
    assert {role_id, execution_policy_id, function_policy_id} <= depends_on
    subnets = set(any_stage.of_type("AWS::EC2::Subnet"))
    (model_subnets,) = {
        json.dumps(model["Properties"]["VpcConfig"]["Subnets"])
        for model in any_stage.of_type("AWS::SageMaker::Model").values()
    }  # every shard's model in the same subnets
    model_subnets = json.loads(model_subnets)
    if any_stage.settings.vpc_id is None:
        assert sorted(subnet["Ref"] for subnet in model_subnets) == sorted(subnets)
        assert subnets <= depends_on
        azs = [any_stage.resources[key]["Properties"]["AvailabilityZone"] for key in subnets]
        if any_stage.settings.client_azs:
            assert sorted(azs) == sorted(any_stage.settings.client_azs)
        else:  # environment-agnostic: the first two AZs of the deploy region, resolved at deploy time
            assert sorted(json.dumps(az) for az in azs) == [
                json.dumps({"Fn::Select": [index, {"Fn::GetAZs": ""}]}) for index in (0, 1)
            ]
    else:  # looked-up subnets are not the stack's to order
        assert subnets == set()
        assert all(isinstance(subnet, str) and subnet.startswith("subnet-") for subnet in model_subnets)
    # The rest are the subnets' own route tables and associations.
    rest = depends_on - {role_id, execution_policy_id, function_policy_id} - subnets
    assert {any_stage.resources[key]["Type"] for key in rest} <= {
        "AWS::EC2::RouteTable",
        "AWS::EC2::SubnetRouteTableAssociation",
    }
    assert len(rest) == 2 * len(subnets)


def test_every_model_waits_for_the_cleanup(any_stage: Synthesized) -> None:
    cleanup_id, _ = _cleanup(any_stage)
    models = any_stage.of_type("AWS::SageMaker::Model").values()
    assert len(models) == any_stage.settings.shards
    for model in models:
        assert cleanup_id in model["DependsOn"]


def test_the_shadow_model_waits_for_the_cleanup_too(dev_options: Synthesized) -> None:
    cleanup_id, _ = _cleanup(dev_options)
    models = dev_options.of_type("AWS::SageMaker::Model")
    assert len(models) == 2  # production and shadow
    for model in models.values():
        assert cleanup_id in model["DependsOn"]


def test_teardown_order_is_endpoint_models_cleanup_then_network_and_role(any_stage: Synthesized) -> None:
    """CloudFormation deletes in reverse creation order: endpoint and models first, then the cleanup, then
    the security group, subnets, VPC and role the interfaces need until they are gone."""
    cleanup_id, _ = _cleanup(any_stage)
    shards = {
        key
        for kind in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Model")
        for key in any_stage.of_type(kind)
    }  # every shard's
    for later in shards:
        assert cleanup_id in _created_before(any_stage, later), later
    before = _created_before(any_stage, cleanup_id)
    assert not before & shards
    role_id, policy_id = _execution_ids(any_stage)
    network = set(any_stage.of_type("AWS::EC2::Subnet")) | set(any_stage.of_type("AWS::EC2::VPC"))
    group = any_stage.resources[cleanup_id]["Properties"]["SecurityGroupIds"][0]["Fn::GetAtt"][0]
    assert {role_id, policy_id, group} | network <= before


def test_cleanup_function_runs_outside_the_vpc_without_reserved_concurrency(any_stage: Synthesized) -> None:
    _, function = _function(any_stage)
    properties = function["Properties"]
    assert properties["Runtime"] == "python3.14"
    assert properties["Timeout"] == 900  # Lambda's maximum: it waits for SageMaker to release interfaces
    assert "VpcConfig" not in properties  # in the isolated subnets it could not reach the EC2 API
    # A reservation can fail the deploy on a small account; CloudFormation sends one request at a time anyway.
    assert "ReservedConcurrentExecutions" not in properties


def test_cleanup_function_logs_to_its_own_retained_encrypted_log_group(any_stage: Synthesized) -> None:
    _, function = _function(any_stage)
    key_id, _ = any_stage.one("AWS::KMS::Key")
    logging = function["Properties"]["LoggingConfig"]
    log_group_id = logging["LogGroup"]["Ref"]
    log_group = any_stage.resources[log_group_id]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert log_group["Properties"]["RetentionInDays"] == any_stage.settings.log_retention_days
    assert log_group["DeletionPolicy"] == "Retain"
    assert "LogGroupName" not in log_group["Properties"]
    # Its own: no other function logs there.
    users = [
        key
        for key, other in any_stage.of_type("AWS::Lambda::Function").items()
        if other["Properties"].get("LoggingConfig", {}).get("LogGroup") == {"Ref": log_group_id}
    ]
    assert len(users) == 1


def test_cleanup_role_is_assumable_by_lambda_only(any_stage: Synthesized) -> None:
    _, function = _function(any_stage)
    role = any_stage.resources[function["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]
    assert "ManagedPolicyArns" not in role
    assert "Policies" not in role


def test_cleanup_policy_deletes_interfaces_only_in_this_vpc_during_this_stacks_deletion(
    any_stage: Synthesized,
) -> None:
    _, function = _function(any_stage)
    (policy,) = _policies_of(any_stage, function["Properties"]["Role"]["Fn::GetAtt"][0]).values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {"FindInterfaces", "DeleteInterfacesInThisVpc", "ReadThisStacksStatus", "WriteItsLogs"}
    assert all(statement["Effect"] == "Allow" for statement in statements.values())

    find = statements["FindInterfaces"]
    assert (find["Action"], find["Resource"]) == ("ec2:DescribeNetworkInterfaces", "*")  # no resource-level scope

    delete = statements["DeleteInterfacesInThisVpc"]
    assert delete["Action"] == "ec2:DeleteNetworkInterface"
    assert _arn(delete["Resource"]) == _ec2_arn(any_stage, "network-interface/*")
    condition = {
        operator: {key: _arn(value) for key, value in keys.items()} for operator, keys in delete["Condition"].items()
    }
    assert condition == {"ArnEquals": {"ec2:Vpc": _ec2_arn(any_stage, f"vpc/{_this_vpc(any_stage)}")}}

    stack = statements["ReadThisStacksStatus"]
    assert (stack["Action"], stack["Resource"]) == ("cloudformation:DescribeStacks", {"Ref": "AWS::StackId"})

    logs = statements["WriteItsLogs"]
    assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert logs["Resource"] == {"Fn::GetAtt": [function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]}


def _asset_folder(stage: Synthesized, function: dict[str, Any]) -> Path:
    """The staged folder of a function's code asset (cdk-assets zips it on publishing)."""
    object_key = function["Properties"]["Code"]["S3Key"]
    manifest = json.loads((stage.outdir / f"{stage.settings.stack_name}.assets.json").read_text())
    (asset,) = [
        asset
        for asset in manifest["files"].values()
        if any(destination["objectKey"] == object_key for destination in asset["destinations"].values())
    ]
    assert asset["source"]["packaging"] == "zip"
    return stage.outdir / str(asset["source"]["path"])


def test_cleanup_code_is_its_handler_and_the_shared_module_only(dev: Synthesized) -> None:
    """No other handler (neo_compile), no tests, no caches: exactly what the function runs, byte for byte."""
    _, function = _function(dev)
    folder = _asset_folder(dev, function)
    files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    assert files == ["handlers/__init__.py", "handlers/custom_resource.py", "handlers/eni_cleanup.py"]
    for name in files:
        assert (folder / name).read_bytes() == (REPO_ROOT / "stacks" / name).read_bytes(), name
