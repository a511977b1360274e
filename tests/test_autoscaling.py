"""Autoscaling: a scalable target on the variant and target tracking from the AWS formula."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks import stages
from stacks.settings import AutoscalingSettings, ScheduledCapacity

from .conftest import Synthesized, synthesize


def test_scalable_target_covers_the_variant_instance_count(dev: Synthesized) -> None:
    endpoint_id, _ = dev.one("AWS::SageMaker::Endpoint")
    _, target = dev.one("AWS::ApplicationAutoScaling::ScalableTarget")
    properties = target["Properties"]
    assert properties["ServiceNamespace"] == "sagemaker"
    assert properties["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert properties["ResourceId"] == {
        "Fn::Join": ["", ["endpoint/", {"Fn::GetAtt": [endpoint_id, "EndpointName"]}, "/variant/AllTraffic"]]
    }
    assert (properties["MinCapacity"], properties["MaxCapacity"]) == (2, 4)


def test_scalable_target_uses_the_sagemaker_service_linked_role(dev: Synthesized) -> None:
    _, target = dev.one("AWS::ApplicationAutoScaling::ScalableTarget")
    role = target["Properties"]["RoleARN"]["Fn::Join"][1]
    assert role[-1].endswith(
        ":role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    # No extra role minted for scaling: the only roles are the execution, flow-log, ENI-cleanup, zonal-names
    # and CDK handler roles.
    assert len(dev.of_type("AWS::IAM::Role")) == 5


@pytest.mark.parametrize(("max_rps", "safety"), [(1000.0, 0.5), (2400.0, 0.25), (350.0, 1.0)])
def test_invocations_target_equals_max_rps_times_safety_times_60(max_rps: float, safety: float) -> None:
    scaling = AutoscalingSettings(max_rps_per_instance=max_rps, safety_factor=safety)
    assert scaling.invocations_per_instance_target == pytest.approx(max_rps * safety * 60)


def test_target_tracking_policy_uses_the_formula_and_cooldowns(dev: Synthesized) -> None:
    target_id, _ = dev.one("AWS::ApplicationAutoScaling::ScalableTarget")
    _, policy = dev.one("AWS::ApplicationAutoScaling::ScalingPolicy")
    scaling = dev.settings.autoscaling
    assert scaling.max_rps_per_instance is not None, "load_stage resolves the stage's own MAX_RPS"
    assert policy["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    assert policy["Properties"]["TargetTrackingScalingPolicyConfiguration"] == {
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "TargetValue": scaling.max_rps_per_instance * scaling.safety_factor * 60,
        "ScaleInCooldown": scaling.scale_in_cooldown_seconds,
        "ScaleOutCooldown": scaling.scale_out_cooldown_seconds,
    }
    assert scaling.invocations_per_instance_target == scaling.max_rps_per_instance * scaling.safety_factor * 60


def test_high_resolution_concurrency_policy_is_added_when_configured(tmp_path: Path) -> None:
    base = stages.dev()
    settings = dataclasses.replace(
        base, autoscaling=dataclasses.replace(base.autoscaling, concurrency_target_per_instance=8.0)
    )
    stage = synthesize(settings, tmp_path)
    configs = {
        policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]: policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for policy in stage.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    }
    assert set(configs) == {
        "SageMakerVariantInvocationsPerInstance",
        "SageMakerVariantConcurrentRequestsPerModelHighResolution",
    }
    assert configs["SageMakerVariantConcurrentRequestsPerModelHighResolution"]["TargetValue"] == 8.0


def test_no_high_resolution_policy_by_default(dev: Synthesized) -> None:
    dev.template.resource_count_is("AWS::ApplicationAutoScaling::ScalingPolicy", 1)


def test_autoscaling_can_be_turned_off(tmp_path: Path) -> None:
    base = stages.dev()
    settings = dataclasses.replace(base, autoscaling=dataclasses.replace(base.autoscaling, enabled=False))
    stage = synthesize(settings, tmp_path)
    stage.template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    stage.template.resource_count_is("AWS::ApplicationAutoScaling::ScalingPolicy", 0)


# --- scaling over the day --------------------------------------------------------------------------


def _with_scaling(tmp_path: Path, name: str = "dev", slo_ms: float | None = None, **changes: Any) -> Synthesized:
    base = stages.load_stage(name)
    stage = dataclasses.replace(base, autoscaling=dataclasses.replace(base.autoscaling, **changes))
    if slo_ms is not None:
        stage = dataclasses.replace(stage, latency_slo_ms=slo_ms)
    return synthesize(stage, tmp_path)


def test_prod_schedules_the_evening_floor_in_new_york_time(synth_stage: Callable[[str], Synthesized]) -> None:
    _, target = synth_stage("prod").one("AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["ScheduledActions"] == [
        {
            "ScheduledActionName": "EveningPeak",
            "Schedule": "cron(0 17 * * ? *)",
            "Timezone": "America/New_York",
            "ScalableTargetAction": {"MinCapacity": 6},
        },
        {
            "ScheduledActionName": "Night",
            "Schedule": "cron(0 23 * * ? *)",
            "Timezone": "America/New_York",
            "ScalableTargetAction": {"MinCapacity": 3},
        },
    ]


def test_scheduled_actions_carry_the_configured_cron_zone_and_capacities(tmp_path: Path) -> None:
    stage = _with_scaling(
        tmp_path,
        time_zone="Europe/Berlin",
        scheduled=(
            ScheduledCapacity(name="Weekdays", cron="cron(30 7 ? * MON-FRI *)", min_capacity=3, max_capacity=4),
            ScheduledCapacity(name="Weekend", cron="cron(0 0 ? * SAT *)", max_capacity=2),
        ),
    )
    _, target = stage.one("AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["ScheduledActions"] == [
        {
            "ScheduledActionName": "Weekdays",
            "Schedule": "cron(30 7 ? * MON-FRI *)",
            "Timezone": "Europe/Berlin",
            "ScalableTargetAction": {"MinCapacity": 3, "MaxCapacity": 4},
        },
        {
            "ScheduledActionName": "Weekend",
            "Schedule": "cron(0 0 ? * SAT *)",
            "Timezone": "Europe/Berlin",
            "ScalableTargetAction": {"MaxCapacity": 2},
        },
    ]


def test_no_scheduled_actions_by_default(dev: Synthesized) -> None:
    _, target = dev.one("AWS::ApplicationAutoScaling::ScalableTarget")
    assert "ScheduledActions" not in target["Properties"]


def test_latency_step_policy_scales_out_on_p99_model_latency_above_the_slo(tmp_path: Path) -> None:
    stage = _with_scaling(tmp_path, latency_step_scaling=True, slo_ms=25.0)
    endpoint_id, _ = stage.one("AWS::SageMaker::Endpoint")
    target_id, _ = stage.one("AWS::ApplicationAutoScaling::ScalableTarget")
    (policy_id, policy), *others = [
        (key, value)
        for key, value in stage.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").items()
        if value["Properties"]["PolicyType"] == "StepScaling"
    ]
    assert not others  # one scale-out policy: scale-in stays with target tracking
    assert policy["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    # Step bounds are relative to the alarm threshold: [25 ms, 37.5 ms) adds 1, from 37.5 ms adds 2.
    assert policy["Properties"]["StepScalingPolicyConfiguration"] == {
        "AdjustmentType": "ChangeInCapacity",
        "Cooldown": 300,
        "MetricAggregationType": "Average",
        "StepAdjustments": [
            {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 12500, "ScalingAdjustment": 1},
            {"MetricIntervalLowerBound": 12500, "ScalingAdjustment": 2},
        ],
    }
    (alarm,) = [
        alarm
        for alarm in stage.of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("AlarmActions") == [{"Ref": policy_id}]
    ]
    dimensions = [
        {"Name": "EndpointName", "Value": {"Fn::GetAtt": [endpoint_id, "EndpointName"]}},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]

    def model_latency(key: str, stat: str) -> dict[str, Any]:
        metric = {"Dimensions": dimensions, "MetricName": "ModelLatency", "Namespace": "AWS/SageMaker"}
        return {"Id": key, "MetricStat": {"Metric": metric, "Period": 60, "Stat": stat}, "ReturnData": False}

    assert alarm["Properties"] == {
        "AlarmActions": [{"Ref": policy_id}],
        "AlarmDescription": "Upper threshold scaling alarm",
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "EvaluationPeriods": 2,
        # The p99 only in minutes with the 1,000 calls CloudWatch's rule asks of it: a quiet minute gives no
        # datapoint (and no datapoints leave the alarm INSUFFICIENT_DATA, which scales nothing).
        "Metrics": [
            {
                "Expression": "IF(samples >= 1000, value)",
                "Id": "expr_1",
                "Label": "p99 ModelLatency (us), minutes with 1000+ calls",
                "ReturnData": True,
            },
            model_latency("samples", "SampleCount"),
            {"Expression": "latency", "Id": "value", "ReturnData": False},
            model_latency("latency", "p99"),
        ],
        "Threshold": 25000,  # microseconds, as SageMaker reports ModelLatency
    }


def test_no_latency_step_policy_by_default(dev: Synthesized) -> None:
    policies = dev.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    assert [policy["Properties"]["PolicyType"] for policy in policies] == ["TargetTrackingScaling"]
    assert not [
        alarm
        for alarm in dev.of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("AlarmDescription") == "Upper threshold scaling alarm"
    ]
