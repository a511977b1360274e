"""Every stage's SageMaker, Application Auto Scaling and CloudWatch resources, as the API requests CloudFormation
makes, are valid against botocore's service models (tests/api_shapes.py); planted bad values are caught."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from stacks.stages import STAGES

from .api_shapes import (
    CHECKED_TYPES,
    Finding,
    Report,
    UnsupportedPatternError,
    check_template,
    java_regex,
)
from .conftest import Synthesized

# Subprocesses, moto, checkov or the SageMaker SDK: make test runs it, make test-quick leaves it out.
pytestmark = pytest.mark.slow


def _check(stage: Synthesized, template: dict[str, Any] | None = None) -> Report:
    return check_template(stage.settings.stack_name, template or stage.template_json, stage.settings.region)


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_makes_requests_the_apis_accept(name: str, synth_stage: Callable[[str], Synthesized]) -> None:
    stage = synth_stage(name)
    report = _check(stage)
    assert [str(finding) for finding in report.findings] == []
    checked_types = {resource["Type"] for resource in stage.resources.values()} & CHECKED_TYPES
    assert checked_types == CHECKED_TYPES, "every checked resource type is in every stage"
    operations = {entry.split(" ")[1] for entry in report.checked}
    assert {"CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint"} <= operations
    assert {"RegisterScalableTarget", "PutScalingPolicy", "PutMetricAlarm"} <= operations


def test_the_options_template_makes_requests_the_apis_accept(dev_options: Synthesized) -> None:
    """Shadow variant, data capture and a linear rollout: the members the shipped stages leave out."""
    assert [str(finding) for finding in _check(dev_options).findings] == []


def test_scheduled_actions_are_checked_as_put_scheduled_action(synth_stage: Callable[[str], Synthesized]) -> None:
    scheduled = [name for name in STAGES if synth_stage(name).settings.autoscaling.scheduled]
    assert scheduled, "a stage with scheduled capacity exercises PutScheduledAction"
    for name in scheduled:
        stage = synth_stage(name)
        report = _check(stage)
        expected = len(stage.settings.autoscaling.scheduled)
        assert sum(entry.endswith(" PutScheduledAction") for entry in report.checked) == expected


def test_values_known_only_at_deploy_time_are_checked_as_named_placeholders(dev: Synthesized) -> None:
    report = _check(dev)
    assert any("ExecutionRoleArn: GetAtt InferenceExecutionRole" in note for note in report.placeholders)
    assert any("VpcConfig.Subnets[0]: Ref " in note for note in report.placeholders)
    assert any("EndpointConfigName: generated name of" in note for note in report.placeholders)
    for note in report.placeholders:
        assert any(word in note for word in ("Ref ", "GetAtt ", "generated name", "AWS::")), note


def test_find_in_map_checks_every_value_of_the_mapping(portable: Synthesized) -> None:
    template = copy.deepcopy(portable.template_json)
    (mapping,) = template["Mappings"].values()
    mapping["eu-west-1"]["Host"] = "141502667606.dkr.ecr.eu-west-1 .amazonaws.com"
    (finding,) = _check(portable, template).findings
    assert finding.path == "PrimaryContainer.Image"
    assert finding.value == "141502667606.dkr.ecr.eu-west-1 .amazonaws.com/sagemaker-xgboost:3.2-0"
    assert finding.rule.startswith("pattern: ContainerImage must match '[\\\\S]+'")


# ---------------------------------------------------------------------------------------------- planted values


def _resource(template: dict[str, Any], resource_type: str, contains: str = "") -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type and contains in logical_id
    ]
    return found[0]


def _planted(stage: Synthesized, resource_type: str, change: Callable[[dict[str, Any]], None]) -> list[Finding]:
    template = copy.deepcopy(stage.template_json)
    change(_resource(template, resource_type)["Properties"])
    return _check(stage, template).findings


def _one(findings: list[Finding], path: str) -> Finding:
    matching = [finding for finding in findings if finding.path == path]
    assert matching, f"no finding at {path}; findings: {[str(f) for f in findings]}"
    return matching[0]


def test_a_variant_name_with_a_space_fails_the_pattern(dev: Synthesized) -> None:
    def change(properties: dict[str, Any]) -> None:
        properties["ProductionVariants"][0]["VariantName"] = "All Traffic"

    finding = _one(_planted(dev, "AWS::SageMaker::EndpointConfig", change), "ProductionVariants[0].VariantName")
    assert finding.operation == "CreateEndpointConfig"
    assert finding.logical_id.startswith("InferenceEndpointConfig")
    assert finding.value == "All Traffic"
    assert finding.rule == "pattern: VariantName must match '[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}' (whole string)"
    assert str(finding) == (
        f"RtbInference-dev/{finding.logical_id} (AWS::SageMaker::EndpointConfig) CreateEndpointConfig: "
        "ProductionVariants[0].VariantName = 'All Traffic' violates "
        "pattern: VariantName must match '[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}' (whole string)"
    )


def test_a_negative_variant_weight_fails_the_minimum(dev: Synthesized) -> None:
    def change(properties: dict[str, Any]) -> None:
        properties["ProductionVariants"][0]["InitialVariantWeight"] = -1

    finding = _one(
        _planted(dev, "AWS::SageMaker::EndpointConfig", change), "ProductionVariants[0].InitialVariantWeight"
    )
    assert (finding.value, finding.rule) == (-1, "min: VariantWeight is at least 0")


def test_a_model_download_timeout_above_the_maximum_fails(dev: Synthesized) -> None:
    def change(properties: dict[str, Any]) -> None:
        properties["ProductionVariants"][0]["ModelDataDownloadTimeoutInSeconds"] = 3601

    findings = _planted(dev, "AWS::SageMaker::EndpointConfig", change)
    finding = _one(findings, "ProductionVariants[0].ModelDataDownloadTimeoutInSeconds")
    assert (finding.value, finding.rule) == (
        3601,
        "max: ProductionVariantModelDataDownloadTimeoutInSeconds is at most 3600",
    )


def test_an_unknown_deployment_config_field_is_named(dev: Synthesized) -> None:
    def change(properties: dict[str, Any]) -> None:
        properties["DeploymentConfig"]["RollbackOnFailure"] = True

    findings = _planted(dev, "AWS::SageMaker::Endpoint", change)
    assert {finding.operation for finding in findings} == {"CreateEndpoint", "UpdateEndpoint"}
    finding = _one(findings, "DeploymentConfig.RollbackOnFailure")
    assert finding.value is True
    assert finding.rule.startswith("members: DeploymentConfig has no member 'RollbackOnFailure' (members: ")


def _rolling_stage(synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    (name, *_) = [name for name in STAGES if synth_stage(name).settings.rollout.strategy == "rolling"]
    return synth_stage(name)


def test_a_rolling_stage_writes_a_rolling_update_policy_botocore_accepts(
    synth_stage: Callable[[str], Synthesized],
) -> None:
    """Every value of the RollingUpdatePolicy (batch and rollback batch as CapacitySize, the bake, the timeout) is
    checked against botocore's DeploymentConfig shape, in CreateEndpoint and UpdateEndpoint, for every shard."""
    stage = _rolling_stage(synth_stage)
    report = _check(stage)
    assert [str(finding) for finding in report.findings] == []
    updates = [entry for entry in report.checked if entry.endswith(" UpdateEndpoint")]
    assert len(updates) == stage.settings.shards
    for endpoint in stage.of_type("AWS::SageMaker::Endpoint").values():
        assert "RollingUpdatePolicy" in endpoint["Properties"]["DeploymentConfig"]


@pytest.mark.parametrize(
    ("member", "value", "rule"),
    [
        ("MaximumBatchSize", {"Type": "PERCENT", "Value": 20}, "enum: CapacitySizeType is one of INSTANCE_COUNT, "),
        ("RollbackMaximumBatchSize", {"Type": "CAPACITY_PERCENT", "Value": 0}, "min: CapacitySizeValue is at least 1"),
        ("WaitIntervalInSeconds", 3601, "max: WaitIntervalInSeconds is at most 3600"),
        ("MaximumExecutionTimeoutInSeconds", 599, "min: MaximumExecutionTimeoutInSeconds is at least 600"),
    ],
)
def test_a_rolling_policy_value_outside_botocores_shape_fails(
    member: str, value: Any, rule: str, synth_stage: Callable[[str], Synthesized]
) -> None:
    stage = _rolling_stage(synth_stage)

    def change(properties: dict[str, Any]) -> None:
        properties["DeploymentConfig"]["RollingUpdatePolicy"][member] = value

    findings = _planted(stage, "AWS::SageMaker::Endpoint", change)
    assert {finding.operation for finding in findings} == {"CreateEndpoint", "UpdateEndpoint"}
    assert all(finding.path.startswith(f"DeploymentConfig.RollingUpdatePolicy.{member}") for finding in findings)
    assert findings[0].rule.startswith(rule), findings[0].rule


def test_an_alarm_period_the_api_does_not_allow_fails(dev: Synthesized) -> None:
    template = copy.deepcopy(dev.template_json)
    _resource(template, "AWS::CloudWatch::Alarm", "RolloutNewFleetErrorRate")["Properties"]["Period"] = 45
    _resource(template, "AWS::CloudWatch::Alarm", "LatencySlo")["Properties"]["Metrics"][1]["MetricStat"]["Period"] = 90
    findings = _check(dev, template).findings
    rule = "documented rule: a period of 10, 20, 30 or a multiple of 60 seconds"
    assert (_one(findings, "Period").value, _one(findings, "Period").rule) == (45, rule)
    assert (
        _one(findings, "Metrics[1].MetricStat.Period").value,
        _one(findings, "Metrics[1].MetricStat.Period").rule,
    ) == (
        90,
        rule,
    )


def test_a_scheduled_action_name_with_a_slash_fails_the_pattern(synth_stage: Callable[[str], Synthesized]) -> None:
    stage = synth_stage("prod")

    def change(properties: dict[str, Any]) -> None:
        properties["ScheduledActions"][0]["ScheduledActionName"] = "Evening/Peak"

    finding = _one(
        _planted(stage, "AWS::ApplicationAutoScaling::ScalableTarget", change),
        "ScheduledActions[0].ScheduledActionName (as ScheduledActionName)",
    )
    assert finding.operation == "PutScheduledAction"
    assert finding.value == "Evening/Peak"
    assert finding.rule.startswith("pattern: ScheduledActionName must match '(?!((^[ ]+.*)|")


def test_a_scalable_dimension_outside_the_enum_fails_the_target_and_its_policy(dev: Synthesized) -> None:
    def change(properties: dict[str, Any]) -> None:
        properties["ScalableDimension"] = "sagemaker:variant:InstanceCount"

    findings = _planted(dev, "AWS::ApplicationAutoScaling::ScalableTarget", change)
    register = _one(findings, "ScalableDimension")
    assert register.operation == "RegisterScalableTarget"
    assert register.value == "sagemaker:variant:InstanceCount"
    assert register.rule.startswith("enum: ScalableDimension is one of ecs:service:DesiredCount, ")
    policy = [finding for finding in findings if finding.operation == "PutScalingPolicy"]
    assert [finding.path for finding in policy] == [
        f"ScalingTargetId -> {register.logical_id}.ScalableDimension (as ScalableDimension)"
    ]


def test_an_unknown_cloudformation_property_is_a_finding(dev: Synthesized) -> None:
    def change(properties: dict[str, Any]) -> None:
        properties["ModelNames"] = "typo"

    (finding,) = _planted(dev, "AWS::SageMaker::Model", change)
    assert (finding.path, finding.value, finding.operation) == ("Properties.ModelNames", "typo", "CreateModel")
    assert finding.rule == "mapping: not a CloudFormation property the mapping to CreateModel knows"


def test_an_intrinsic_the_checker_cannot_resolve_is_a_finding(dev: Synthesized) -> None:
    def change(properties: dict[str, Any]) -> None:
        properties["ExecutionRoleArn"] = {"Fn::ImportValue": "SharedRoleArn"}

    (finding,) = _planted(dev, "AWS::SageMaker::Model", change)
    assert (finding.path, finding.rule) == (
        "ExecutionRoleArn",
        "resolvability: the checker cannot resolve Fn::ImportValue",
    )


def test_a_missing_required_member_and_a_too_long_name_fail(dev: Synthesized) -> None:
    def change(properties: dict[str, Any]) -> None:
        del properties["EndpointConfigName"]
        properties["EndpointName"] = "e" * 64

    findings = _planted(dev, "AWS::SageMaker::Endpoint", change)
    assert _one(findings, "EndpointConfigName").rule == "required: EndpointConfigName"
    assert _one(findings, "EndpointName").rule == "max length: EndpointName has at most 63 characters (has 64)"


# ---------------------------------------------------------------------------------------------- Java regexes


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("\\p{Print}+", "RtbInference policy", True),
        ("\\p{Print}+", "caf\u00e9", False),  # Java's \p{Print} is printable ASCII
        ("([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)", "caf\u00e9 2", True),
        ("([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)", "a#b", False),
        ("[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF\\r\\n\\t]*", "endpoint/\U0001f600", True),
        ("[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF\\r\\n\\t]*", "a\u0001b", False),
        ("(?!\\s*$).+", "a\rb", False),  # Java's . excludes \r too
        ("arn:aws[a-z\\-]*:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+", "arn:aws:iam::12345678901\u0663:role/x", False),
        ("[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", "AllTraffic-", False),  # the whole string, not a prefix
    ],
)
def test_java_patterns_are_translated_not_loosened(pattern: str, value: str, matches: bool) -> None:
    assert (java_regex(pattern).fullmatch(value) is not None) is matches


@pytest.mark.parametrize("pattern", ["\\p{IsAlphabetic}+", "\\P{L}", "[a-z&&[^b]]", "\\Qa.b\\E"])
def test_java_constructs_without_a_translation_are_refused(pattern: str) -> None:
    with pytest.raises(UnsupportedPatternError):
        java_regex(pattern)
