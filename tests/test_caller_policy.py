"""The callers' policy: InvokeEndpoint on the stage's endpoint, only through the runtime interface endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from stacks.stages import STAGES

from .conftest import Synthesized, SynthesizedCi
from .iam_check import ACCOUNT, REGION, Resolver

SID = "InvokeThisStagesEndpointThroughPrivateLink"


@pytest.fixture(params=sorted(STAGES))
def stage(request: pytest.FixtureRequest, synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage(str(request.param))


def _caller_policy(stage: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, policy)
        for logical_id, policy in stage.of_type("AWS::IAM::ManagedPolicy").items()
        if any(s.get("Sid") == SID for s in policy["Properties"]["PolicyDocument"]["Statement"])
    ]
    return found


def _runtime_endpoint_id(stage: Synthesized) -> str:
    (found,) = [
        logical_id
        for logical_id, endpoint in stage.of_type("AWS::EC2::VPCEndpoint").items()
        if "sagemaker.runtime" in json.dumps(endpoint["Properties"]["ServiceName"])
    ]
    return found


def test_callers_may_invoke_only_this_stages_endpoint_and_only_through_privatelink(stage: Synthesized) -> None:
    _, policy = _caller_policy(stage)
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    existing = stage.settings.runtime_endpoint
    through = {"Ref": _runtime_endpoint_id(stage)} if existing is None else existing.vpc_endpoint_id
    assert statement["Condition"] == {"StringEquals": {"aws:SourceVpce": through}}
    # The ARN with the template's placeholders filled as tests/iam_check.py does (the shared-vpc stage's
    # example account is the checker's placeholder account too).
    region, account = stage.settings.region or REGION, stage.settings.account or ACCOUNT
    # Every shard's endpoint (shard 0's alone in a one-endpoint stage, as a single ARN), and nothing else.
    expected = [
        f"arn:aws:sagemaker:{region}:{account}:endpoint/{name.lower()}" for name in stage.settings.endpoint_names
    ]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert [Resolver(stage.template_json)(resource) for resource in resources] == expected


def test_caller_policy_is_for_the_callers_role_not_any_role_of_the_stack(stage: Synthesized) -> None:
    _, policy = _caller_policy(stage)
    assert not {"Roles", "Users", "Groups"} & set(policy["Properties"])


def test_caller_policy_arn_is_an_exported_output(stage: Synthesized) -> None:
    logical_id, _ = _caller_policy(stage)
    output = stage.template_json["Outputs"]["CallerPolicyArn"]
    assert output["Value"] == {"Ref": logical_id}
    assert output["Export"] == {"Name": f"{stage.settings.stack_name}-CallerPolicyArn"}


def test_runtime_endpoint_policy_still_admits_only_this_accounts_principals(dev: Synthesized) -> None:
    endpoint = dev.resources[_runtime_endpoint_id(dev)]["Properties"]
    (statement,) = endpoint["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}


def test_ci_smoke_test_invokes_with_the_deploy_roles_own_grant(github_ci: SynthesizedCi) -> None:
    """The runner calls from outside the VPC: its grant has no PrivateLink condition, and the callers'
    policy (which would deny it that way) is not the CI's."""
    policies = [r for r in github_ci.template_json["Resources"].values() if r["Type"] == "AWS::IAM::ManagedPolicy"]
    statements = {s["Sid"]: s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]}
    invoke = statements["SmokeTestInvokesKitEndpoints"]
    assert invoke["Action"] == "sagemaker:InvokeEndpoint"
    assert "Condition" not in invoke
    assert "aws:SourceVpce" not in json.dumps(github_ci.template_json)
    assert SID not in statements
