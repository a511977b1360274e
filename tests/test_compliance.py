"""cdk-nag (AwsSolutions, NIST 800-53 R5, HIPAA Security) on every synth: zero unacknowledged findings,
and every acknowledgment reviewed here, on a specific resource, with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker

from stacks.compliance import add_compliance_checks

from .conftest import Synthesized

LOGS_ARN = "arn:aws:logs:us-east-1:{account}:log-group:/aws/sagemaker/Endpoints/*"
POLICY = "{stack}/Inference/ExecutionPolicy/Resource"

# (rule, construct path) of every acknowledged finding, per stage. A new acknowledgment fails this
# test until it is reviewed and added here.
EXPECTED_ACKNOWLEDGMENTS = {
    "dev": {
        ("AwsSolutions-IAM5[Resource::*]", POLICY),
        (f"AwsSolutions-IAM5[Resource::{LOGS_ARN.format(account='<AWS::AccountId>')}]", POLICY),
    },
    "prod": {
        ("AwsSolutions-IAM5[Resource::*]", POLICY),
        (f"AwsSolutions-IAM5[Resource::{LOGS_ARN.format(account='<AWS::AccountId>')}]", POLICY),
    },
    "shared-vpc": {
        ("AwsSolutions-IAM5[Resource::*]", POLICY),
        (f"AwsSolutions-IAM5[Resource::{LOGS_ARN.format(account='123456789012')}]", POLICY),
    },
    "portable": {
        ("AwsSolutions-IAM5[Resource::*]", POLICY),
        (
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
            "/aws/sagemaker/Endpoints/*]",
            POLICY,
        ),
    },
}


def test_no_unacknowledged_findings(any_stage: Synthesized) -> None:
    for plugin in any_stage.report["pluginReports"]:
        assert plugin["conclusion"] == "success", plugin["pluginName"]
        assert plugin["violations"] == [], plugin["pluginName"]


def test_acknowledgments_are_exactly_the_reviewed_ones(any_stage: Synthesized) -> None:
    found = {
        (violation["ruleName"], construct["constructPath"])
        for plugin in any_stage.report["pluginReports"]
        for violation in plugin.get("suppressedViolations", [])
        for construct in violation["violatingConstructs"]
    }
    stack = any_stage.settings.stack_name
    expected = {(rule, path.format(stack=stack)) for rule, path in EXPECTED_ACKNOWLEDGMENTS[any_stage.settings.name]}
    assert found == expected


def test_every_acknowledgment_gives_a_specific_reason(any_stage: Synthesized) -> None:
    for plugin in any_stage.report["pluginReports"]:
        for violation in plugin.get("suppressedViolations", []):
            assert len(violation["reason"]) > 60, violation["ruleName"]


def _insecure_app(outdir: Path) -> App:
    """A stack with known findings: an unencrypted endpoint config and a role with an inline wildcard."""
    app = App(outdir=str(outdir))
    stack = Stack(app, "Canary")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    sagemaker.CfnEndpointConfig(
        stack,
        "Config",
        production_variants=[
            sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name="AllTraffic", model_name="m", initial_instance_count=1, instance_type="ml.c5.xlarge"
            )
        ],
    )
    add_compliance_checks(app)
    return app


def test_all_three_rule_packs_run_on_synth(tmp_path: Path) -> None:
    """The report lists only packs with findings, so prove each pack is live on a known-bad stack."""
    with pytest.raises(RuntimeError) as caught:
        _insecure_app(tmp_path).synth()
    message = str(caught.value)
    assert "AwsSolutions::AwsSolutions-IAM5[Resource::*]" in message
    assert "NIST.800.53.R5::NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured" in message
    assert "HIPAA.Security::HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured" in message
