"""The GitHub OIDC roles: who may assume them (trust conditions) and what they may do."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stacks.github_ci_settings import GitHubCiSettings
from stacks.settings import SettingsError

from .conftest import REPO_ROOT, SynthesizedCi, synthesize_ci

REPO = "example-org/sagemaker-rtb-inference-kit"
AUD = {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}


def _role(ci: SynthesizedCi, name: str) -> dict[str, Any]:
    output = ci.template_json["Outputs"][f"{name}Arn"]["Value"]["Fn::GetAtt"][0]
    role: dict[str, Any] = ci.template_json["Resources"][output]
    return role


def _policy_of(ci: SynthesizedCi, role_name: str) -> list[dict[str, Any]]:
    role_id = ci.template_json["Outputs"][f"{role_name}Arn"]["Value"]["Fn::GetAtt"][0]
    (policy,) = [
        resource
        for resource in ci.template_json["Resources"].values()
        if resource["Type"] == "AWS::IAM::ManagedPolicy" and resource["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _trust(ci: SynthesizedCi, name: str) -> dict[str, Any]:
    (statement,) = _role(ci, name)["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    provider_id = next(
        key for key, value in ci.template_json["Resources"].items() if value["Type"] == "AWS::IAM::OIDCProvider"
    )
    assert statement["Principal"] == {"Federated": {"Ref": provider_id}}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition: dict[str, Any] = statement["Condition"]
    return condition


def test_github_oidc_provider_is_created_for_sts(github_ci: SynthesizedCi) -> None:
    github_ci.template.has_resource_properties(
        "AWS::IAM::OIDCProvider",
        {"Url": "https://token.actions.githubusercontent.com", "ClientIdList": ["sts.amazonaws.com"]},
    )


def test_deploy_role_trusts_only_protected_environments_on_the_deploy_branch(github_ci: SynthesizedCi) -> None:
    assert _trust(github_ci, "DeployRole") == {
        "StringEquals": AUD
        | {
            "token.actions.githubusercontent.com:sub": [
                f"repo:{REPO}:environment:dev:ref:refs/heads/main",
                f"repo:{REPO}:environment:prod:ref:refs/heads/main",
            ]
        }
    }


def test_read_only_role_trusts_only_this_repositorys_pull_requests(github_ci: SynthesizedCi) -> None:
    assert _trust(github_ci, "ReadOnlyRole") == {
        "StringEquals": AUD,
        "StringLike": {"token.actions.githubusercontent.com:sub": f"repo:{REPO}:pull_request:ref:refs/pull/*"},
    }


def _role_arns(statement: dict[str, Any]) -> list[str]:
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return ["".join(part if isinstance(part, str) else "<token>" for part in r["Fn::Join"][1]) for r in resources]


def test_read_only_role_may_only_assume_the_cdk_lookup_role(github_ci: SynthesizedCi) -> None:
    (statement,) = _policy_of(github_ci, "ReadOnlyRole")
    assert statement["Action"] == "sts:AssumeRole"
    assert _role_arns(statement) == ["arn:aws:iam::<token>:role/cdk-hnb659fds-lookup-role-<token>-us-east-1"]


PREFLIGHT = {"PreflightReadsAccountLimits", "PreflightCountsEndpointInstances", "PreflightReadsBootstrapVersion"}


def test_deploy_role_may_only_assume_the_cdk_deploy_roles_and_run_the_smoke_test(github_ci: SynthesizedCi) -> None:
    statements = {statement["Sid"]: statement for statement in _policy_of(github_ci, "DeployRole")}
    assert set(statements) == {
        "AssumeCdkDeployRoles",
        "SmokeTestReadsStackOutputs",
        "SmokeTestInvokesKitEndpoints",
        *PREFLIGHT,
    }
    assert statements["AssumeCdkDeployRoles"]["Action"] == "sts:AssumeRole"
    assert _role_arns(statements["AssumeCdkDeployRoles"]) == [
        f"arn:aws:iam::<token>:role/cdk-hnb659fds-{kind}-role-<token>-us-east-1"
        for kind in ("deploy", "file-publishing", "image-publishing")
    ]
    assert statements["SmokeTestReadsStackOutputs"]["Action"] == "cloudformation:DescribeStacks"
    assert _role_arns(statements["SmokeTestReadsStackOutputs"]) == [
        "arn:aws:cloudformation:us-east-1:<token>:stack/RtbInference-*/*"
    ]
    assert statements["SmokeTestInvokesKitEndpoints"]["Action"] == "sagemaker:InvokeEndpoint"
    assert _role_arns(statements["SmokeTestInvokesKitEndpoints"]) == [
        "arn:aws:sagemaker:us-east-1:<token>:endpoint/rtbinference-*"
    ]


def test_deploy_role_may_read_exactly_what_the_preflight_reads(github_ci: SynthesizedCi) -> None:
    statements = {s["Sid"]: s for s in _policy_of(github_ci, "DeployRole") if s["Sid"] in PREFLIGHT}
    limits = statements["PreflightReadsAccountLimits"]
    assert sorted(limits["Action"]) == [
        "ec2:DescribeVpcEndpoints",
        "lambda:GetAccountSettings",
        "sagemaker:ListEndpoints",
        "servicequotas:ListAWSDefaultServiceQuotas",
        "servicequotas:ListServiceQuotas",
    ]
    # These actions have no resource types: "*" only, kept to the kit's regions.
    assert limits["Resource"] == "*"
    assert limits["Condition"] == {"StringEquals": {"aws:RequestedRegion": ["us-east-1"]}}
    counts = statements["PreflightCountsEndpointInstances"]
    assert counts["Action"] == ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"]
    assert sorted(_role_arns(counts)) == [
        "arn:aws:sagemaker:us-east-1:<token>:endpoint-config/*",
        "arn:aws:sagemaker:us-east-1:<token>:endpoint/*",
    ]
    bootstrap = statements["PreflightReadsBootstrapVersion"]
    assert bootstrap["Action"] == "ssm:GetParameter"
    assert _role_arns(bootstrap) == ["arn:aws:ssm:us-east-1:<token>:parameter/cdk-bootstrap/hnb659fds/version"]


def test_the_preflight_reads_only_what_the_deploy_role_may_read() -> None:
    """Every IAM action the preflight names (in its calls and WARN lines) is granted to the deploy role."""
    source = (REPO_ROOT / "operations" / "preflight.py").read_text()
    named = set(re.findall(r"\b(servicequotas|sagemaker|lambda|ec2|ssm):([A-Z]\w+)", source))
    assert {f"{service}:{action}" for service, action in named} == {
        "servicequotas:ListServiceQuotas",
        "servicequotas:ListAWSDefaultServiceQuotas",
        "sagemaker:ListEndpoints",
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "lambda:GetAccountSettings",
        "ec2:DescribeVpcEndpoints",
        "ssm:GetParameter",
    }


def test_no_role_has_wildcard_actions_or_managed_aws_policies(github_ci: SynthesizedCi) -> None:
    text = json.dumps(github_ci.template_json)
    assert "arn:aws:iam::aws:policy" not in text
    for resource in github_ci.template_json["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            assert "ManagedPolicyArns" not in resource["Properties"]
            assert "Policies" not in resource["Properties"]
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not any("*" in action for action in actions)


def test_existing_provider_is_reused_not_created(tmp_path: Path) -> None:
    arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    ci = synthesize_ci(GitHubCiSettings(repository=REPO, existing_provider_arn=arn), tmp_path)
    ci.template.resource_count_is("AWS::IAM::OIDCProvider", 0)
    (statement,) = _role(ci, "DeployRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Federated": arn}


def test_every_region_gets_its_bootstrap_roles(tmp_path: Path) -> None:
    ci = synthesize_ci(GitHubCiSettings(repository=REPO, regions=("us-east-1", "eu-west-1")), tmp_path)
    (statement,) = _policy_of(ci, "ReadOnlyRole")
    assert sorted(arn.split("lookup-role-<token>-")[1] for arn in _role_arns(statement)) == ["eu-west-1", "us-east-1"]


def test_nag_packs_pass_with_only_the_reviewed_acknowledgments(github_ci: SynthesizedCi) -> None:
    for plugin in github_ci.report["pluginReports"]:
        assert plugin["violations"] == [], plugin["pluginName"]
    acknowledged = {
        violation["ruleName"]
        for plugin in github_ci.report["pluginReports"]
        for violation in plugin.get("suppressedViolations", [])
    }
    assert acknowledged == {
        "AwsSolutions-IAM5[Resource::arn:aws:cloudformation:us-east-1:<AWS::AccountId>:stack/RtbInference-*/*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:us-east-1:<AWS::AccountId>:endpoint/rtbinference-*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:us-east-1:<AWS::AccountId>:endpoint/*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:us-east-1:<AWS::AccountId>:endpoint-config/*]",
        "AwsSolutions-IAM5[Resource::*]",
    }


@pytest.mark.slow
def test_ci_roles_template_is_cfn_lint_clean(github_ci: SynthesizedCi) -> None:
    from cfnlint.api import lint  # here, not at the top: the quick loop need not import cfn-lint to collect

    findings = [str(match) for match in lint(github_ci.path.read_text(), regions=["us-east-1"])]
    assert findings == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"repository": "just-a-name"},
            "repository='just-a-name' is invalid: allowed: 'owner/name' of a GitHub repository",
        ),
        (
            {"deploy_environments": ()},
            "deploy_environments=() is invalid: allowed: one or more GitHub environment names",
        ),
        (
            {"regions": ("US East",)},
            "regions=('US East',) is invalid: allowed: one or more region names such as 'us-east-1'",
        ),
        (
            {"existing_provider_arn": "arn:aws:iam::123456789012:oidc-provider/example.com"},
            "existing_provider_arn='arn:aws:iam::123456789012:oidc-provider/example.com' is invalid: allowed: "
            "arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com, or None",
        ),
    ],
)
def test_bad_ci_settings_fail_with_the_setting_the_value_and_what_is_allowed(
    changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        GitHubCiSettings(**({"repository": REPO} | changes))
    assert caught.value.problems == [problem]
