"""cdk-nag (AwsSolutions, NIST 800-53 R5, HIPAA Security) on every synth: zero unacknowledged findings,
and every acknowledgment reviewed here, on a specific resource, with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker

from stacks.client_probe import az_id
from stacks.compliance import add_compliance_checks
from stacks.settings import StageSettings

from .conftest import Synthesized

POLICY = "{stack}/Inference/ExecutionPolicy/Resource"
CLEANUP = "{stack}/Inference/NetworkInterfaceCleanup/Handler"
COMPILE = "{stack}/Inference/Compilation"
CAPTURE = "{stack}/Inference/DataCapture"
ZONAL = "{stack}/ZonalDnsNames/Handler"


def _every_stage(arn_prefix: str) -> set[tuple[str, str]]:
    """What each stage acknowledges: unscopable actions and names generated outside the stack (IAM5), and the
    teardown and zonal-names functions, outside the VPC, whose failures reach CloudFormation, not a dead-letter
    queue, and which reserve no concurrency (Lambda rules)."""
    function = f"{CLEANUP}/Function/Resource"
    return {
        ("AwsSolutions-IAM5[Resource::*]", f"{ZONAL}/Policy/Resource"),
        *_lambda_rules(f"{ZONAL}/Function/Resource"),
        ("AwsSolutions-IAM5[Resource::*]", POLICY),
        (
            f"AwsSolutions-IAM5[Resource::{arn_prefix.format(service='logs')}:log-group:/aws/sagemaker/Endpoints/*]",
            POLICY,
        ),
        (f"AwsSolutions-IAM5[Resource::{arn_prefix.format(service='ec2')}:network-interface/*]", POLICY),
        ("AwsSolutions-IAM5[Resource::*]", f"{CLEANUP}/Policy/Resource"),
        (
            f"AwsSolutions-IAM5[Resource::{arn_prefix.format(service='ec2')}:network-interface/*]",
            f"{CLEANUP}/Policy/Resource",
        ),
        *_lambda_rules(function),
    }


def _data_capture() -> set[tuple[str, str]]:
    """No replication of captured production data; SSE-S3 where S3 access logs require it."""
    return {
        ("AwsSolutions-IAM5[Resource::<InferenceDataCaptureBucket08E0486D.Arn>/datacapture/*]", POLICY),
        *(
            (f"{pack}-S3BucketReplicationEnabled", f"{CAPTURE}/{bucket}/Resource")
            for pack in ("NIST.800.53.R5", "HIPAA.Security")
            for bucket in ("Bucket", "AccessLogs")
        ),
        *(
            (f"{pack}-S3DefaultEncryptionKMS", f"{CAPTURE}/AccessLogs/Resource")
            for pack in ("NIST.800.53.R5", "HIPAA.Security")
        ),
    }


def _lambda_rules(function: str) -> set[tuple[str, str]]:
    return {
        (f"{pack}-{rule}", function)
        for pack in ("NIST.800.53.R5", "HIPAA.Security")
        for rule in ("LambdaDLQ", "LambdaInsideVPC", "LambdaConcurrency")
    }


def _no_kms_key_on_nvme() -> set[tuple[str, str]]:
    """ml.g4dn keeps the model on hardware-encrypted NVMe storage; SageMaker rejects KmsKeyId there."""
    return {
        (f"{pack}-SageMakerEndpointConfigurationKMSKeyConfigured", "{stack}/Inference/EndpointConfig")
        for pack in ("NIST.800.53.R5", "HIPAA.Security")
    }


def _client_probes(arn_prefix: str, azs: tuple[str, ...]) -> set[tuple[str, str]]:
    """Per client AZ: Describe calls, Lambda's own interface and Lambda's documented all-resources form for
    DeleteNetworkInterface (IAM5), no dead-letter queue for a scheduled measurement (a missed run is the
    missing-data alarm's signal), and no reserved concurrency."""
    interfaces = f"{arn_prefix.format(service='ec2')}:network-interface/*"
    everything = f"{arn_prefix.format(service='ec2')}:*/*"
    found = set()
    for az in azs:
        suffix = az_id(az)
        policy = f"{{stack}}/ClientProbes/Policy{suffix}/Resource"
        found |= {
            ("AwsSolutions-IAM5[Resource::*]", policy),
            (f"AwsSolutions-IAM5[Resource::{interfaces}]", policy),
            (f"AwsSolutions-IAM5[Resource::{everything}]", policy),
            *(
                (f"{pack}-{rule}", f"{{stack}}/ClientProbes/Function{suffix}/Resource")
                for pack in ("NIST.800.53.R5", "HIPAA.Security")
                for rule in ("LambdaDLQ", "LambdaConcurrency")
            ),
        }
    return found


def _neo_compilation(arn_prefix: str) -> set[tuple[str, str]]:
    """Job-named compile output and job logs (IAM5); a bucket of derived build output, not logged or replicated."""
    compiled = "AwsSolutions-IAM5[Resource::<InferenceCompilationOutputA18BD4FB.Arn>/compiled/*]"
    logs = f"{arn_prefix.format(service='logs')}:log-group:/aws/sagemaker/CompilationJobs:*"
    jobs = f"{arn_prefix.format(service='sagemaker')}:compilation-job/rtb-inf1-*"
    return {
        (compiled, POLICY),
        (compiled, f"{COMPILE}/JobPolicy/Resource"),
        (f"AwsSolutions-IAM5[Resource::{logs}]", f"{COMPILE}/JobPolicy/Resource"),
        (f"AwsSolutions-IAM5[Resource::{jobs}]", f"{COMPILE}/Handler/Policy/Resource"),
        ("AwsSolutions-S1", f"{COMPILE}/Output/Resource"),
        *(
            (f"{pack}-{rule}", f"{COMPILE}/Output/Resource")
            for pack in ("NIST.800.53.R5", "HIPAA.Security")
            for rule in ("S3BucketLoggingEnabled", "S3BucketReplicationEnabled")
        ),
        *_lambda_rules(f"{COMPILE}/Handler/Function/Resource"),
    }


def expected_acknowledgments(settings: StageSettings) -> set[tuple[str, str]]:
    """(rule, construct path) of every finding a stage with these settings acknowledges: derived from the
    settings that add acknowledged resources, so a new stage is checked like the shipped ones, and a new
    acknowledgment in the code fails this test until it is reviewed and added above."""
    if settings.region is None:
        prefix = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>"
    else:
        partition = "aws-cn" if settings.region.startswith("cn-") else "aws"
        prefix = f"arn:{partition}:{{service}}:{settings.region}:{settings.account or '<AWS::AccountId>'}"
    expected = _every_stage(prefix)
    if settings.data_capture.enabled:
        expected |= _data_capture()
    if not settings.kms_encryption:
        expected |= _no_kms_key_on_nvme()
    if settings.profile == "inferentia":
        expected |= _neo_compilation(prefix)
    if settings.client_probe.enabled:
        expected |= _client_probes(prefix, settings.client_azs)
    return expected


NO_GUARDRAILS_WARNING = "Annotation::rtb:NoDeploymentGuardrails"


def test_no_unacknowledged_findings(any_stage: Synthesized) -> None:
    for plugin in any_stage.report["pluginReports"]:
        assert plugin["conclusion"] == "success", plugin["pluginName"]
        findings = [violation for violation in plugin["violations"] if violation["ruleName"] != NO_GUARDRAILS_WARNING]
        assert findings == [], plugin["pluginName"]


def test_only_a_profile_without_guardrails_warns_at_synth(any_stage: Synthesized) -> None:
    """Inf1 has no SageMaker deployment guardrails: a warning, not an error, and only there."""
    warnings = [
        violation
        for plugin in any_stage.report["pluginReports"]
        for violation in plugin["violations"]
        if violation["ruleName"] == NO_GUARDRAILS_WARNING
    ]
    if any_stage.settings.serving.guardrails:
        assert warnings == []
    else:
        (warning,) = warnings
        assert warning["severity"] == "warning"
        assert "shift all traffic at once" in warning["description"]


def test_acknowledgments_are_exactly_the_reviewed_ones(any_stage: Synthesized) -> None:
    found = {
        (violation["ruleName"], construct["constructPath"])
        for plugin in any_stage.report["pluginReports"]
        for violation in plugin.get("suppressedViolations", [])
        for construct in violation["violatingConstructs"]
    }
    stack = any_stage.settings.stack_name
    expected = {(rule, path.format(stack=stack)) for rule, path in expected_acknowledgments(any_stage.settings)}
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


@pytest.mark.slow
def test_all_three_rule_packs_run_on_synth(tmp_path: Path) -> None:
    """The report lists only packs with findings, so prove each pack is live on a known-bad stack."""
    with pytest.raises(RuntimeError) as caught:
        _insecure_app(tmp_path).synth()
    message = str(caught.value)
    assert "AwsSolutions::AwsSolutions-IAM5[Resource::*]" in message
    assert "NIST.800.53.R5::NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured" in message
    assert "HIPAA.Security::HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured" in message
