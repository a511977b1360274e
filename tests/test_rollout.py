"""Deployment guardrails, the instance-type change made safe by design, and the shadow variant."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam

from stacks.rollout import GuardedRollout
from stacks.settings import RolloutSettings, rollout_steps
from stacks.stages import load_stage

from .conftest import ODD_THRESHOLDS, Synthesized


def _refs(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref and GetAtt)."""
    if isinstance(node, dict):
        if "Ref" in node and isinstance(node["Ref"], str):
            return {node["Ref"]}
        if "Fn::GetAtt" in node:
            return {node["Fn::GetAtt"][0]}
        return set().union(*(_refs(value) for value in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def _depends_on(stage: Synthesized, logical_id: str) -> set[str]:
    resource = stage.resources[logical_id]
    return _refs(resource.get("Properties", {})) | set(resource.get("DependsOn", []))


def _rollback_alarms(stage: Synthesized) -> dict[str, Any]:
    return {key: alarm for key, alarm in stage.of_type("AWS::CloudWatch::Alarm").items() if "Rollout" in key}


def _deployment_config(stage: Synthesized) -> dict[str, Any]:
    _, endpoint = stage.one("AWS::SageMaker::Endpoint")
    config: dict[str, Any] = endpoint["Properties"]["DeploymentConfig"]
    return config


def test_updates_roll_out_blue_green_with_a_canary_by_default(dev: Synthesized) -> None:
    policy = _deployment_config(dev)["BlueGreenUpdatePolicy"]
    assert policy == {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            "WaitIntervalInSeconds": 300,
        },
        "TerminationWaitInSeconds": 300,
        "MaximumExecutionTimeoutInSeconds": 3600,
    }


def test_linear_rollout_uses_the_configured_steps(dev_options: Synthesized) -> None:
    routing = _deployment_config(dev_options)["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20},
        "WaitIntervalInSeconds": 180,
    }


def _watched(properties: dict[str, Any]) -> dict[str, Any]:
    """What a rollback alarm watches, as one metric: a plain alarm's metric, or the percentile a guarded metric-math
    alarm (IF(samples >= N, value)) passes on, with its guard."""
    if "Metrics" not in properties:
        return {
            "name": properties["MetricName"],
            "namespace": properties["Namespace"],
            "dimensions": properties["Dimensions"],
            "stat": properties.get("ExtendedStatistic") or properties["Statistic"],
            "period": properties["Period"],
            "guard": None,
        }
    stats = {m["Id"]: m["MetricStat"] for m in properties["Metrics"] if "MetricStat" in m}
    (returned,) = [m for m in properties["Metrics"] if m.get("ReturnData", True)]
    (watched,) = [stat for key, stat in stats.items() if key != "samples"]
    return {
        "name": watched["Metric"]["MetricName"],
        "namespace": watched["Metric"]["Namespace"],
        "dimensions": watched["Metric"]["Dimensions"],
        "stat": watched["Stat"],
        "period": watched["Period"],
        "guard": (returned["Expression"], stats["samples"]["Stat"], stats["samples"]["Metric"] == watched["Metric"]),
    }


def test_rollback_alarms_are_the_new_fleets_5xx_rate_and_p99_model_latency(any_stage: Synthesized) -> None:
    settings = any_stage.settings
    config_id, _ = any_stage.one("AWS::SageMaker::EndpointConfig")
    alarms = _rollback_alarms(any_stage)
    by_metric = {_watched(alarm["Properties"])["name"]: alarm["Properties"] for alarm in alarms.values()}
    assert set(by_metric) == {"Invocation5XXErrors", "ModelLatency"}
    for properties in by_metric.values():
        watched = _watched(properties)
        assert watched["namespace"] == "AWS/SageMaker"
        assert watched["dimensions"] == [
            {"Name": "EndpointConfigName", "Value": {"Fn::GetAtt": [config_id, "EndpointConfigName"]}},
            {"Name": "EndpointName", "Value": settings.endpoint_name},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ]
        assert (watched["period"], properties["EvaluationPeriods"], properties["DatapointsToAlarm"]) == (60, 2, 2)
        assert properties["ComparisonOperator"] == "GreaterThanThreshold"
        assert properties["TreatMissingData"] == "notBreaching"
    latency, errors = _watched(by_metric["ModelLatency"]), _watched(by_metric["Invocation5XXErrors"])
    # The new fleet's p99, only in minutes in which it answered the 1,000 calls a p99 needs.
    assert (latency["stat"], latency["guard"]) == ("p99", ("IF(samples >= 1000, value)", "SampleCount", True))
    assert by_metric["ModelLatency"]["Threshold"] == settings.latency_slo_ms * 1000  # microseconds
    assert (errors["stat"], errors["guard"]) == ("Average", None)
    assert by_metric["Invocation5XXErrors"]["Threshold"] == settings.error_rate_alarm
    if not settings.serving.guardrails:  # Inf1: the alarms notify, SageMaker cannot roll back on them
        _, endpoint = any_stage.one("AWS::SageMaker::Endpoint")
        assert "DeploymentConfig" not in endpoint["Properties"]
        return
    rollback = _deployment_config(any_stage)["AutoRollbackConfiguration"]["Alarms"]
    assert sorted(alarm["AlarmName"]["Ref"] for alarm in rollback) == sorted(alarms)


def test_sagemaker_may_read_exactly_the_rollback_alarms(any_stage: Synthesized) -> None:
    alarms = set(_rollback_alarms(any_stage))
    (policy_id,) = [
        key
        for key, policy in any_stage.of_type("AWS::IAM::ManagedPolicy").items()
        if "ReadRollbackAlarms" in json.dumps(policy)
    ]
    policy = any_stage.resources[policy_id]["Properties"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "cloudwatch:DescribeAlarms"
    assert _refs(statement["Resource"]) - {"AWS::Partition", "AWS::Region", "AWS::AccountId"} == alarms
    role_id = any_stage.one("AWS::SageMaker::Model")[1]["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    assert policy["Roles"] == [{"Ref": role_id}]
    # The endpoint, which the rollout updates, waits for the permission; the model must not (a cycle).
    endpoint_id, _ = any_stage.one("AWS::SageMaker::Endpoint")
    assert policy_id in _depends_on(any_stage, endpoint_id)
    assert policy_id not in _depends_on(any_stage, any_stage.one("AWS::SageMaker::Model")[0])


def test_alarms_watch_the_new_config_before_the_endpoint_switches_to_it(dev: Synthesized) -> None:
    """CloudFormation updates the alarms (new EndpointConfigName) before the endpoint that names them."""
    config_id, _ = dev.one("AWS::SageMaker::EndpointConfig")
    endpoint_id, _ = dev.one("AWS::SageMaker::Endpoint")
    for alarm_id in _rollback_alarms(dev):
        assert config_id in _depends_on(dev, alarm_id)
        assert endpoint_id not in _depends_on(dev, alarm_id)
        assert alarm_id in _depends_on(dev, endpoint_id)


def _scalable_target(stage: Synthesized) -> tuple[str, dict[str, Any]]:
    return stage.one("AWS::ApplicationAutoScaling::ScalableTarget")


def test_a_new_instance_type_replaces_the_endpoint_and_its_scaling_in_a_safe_order(
    dev: Synthesized, dev_options: Synthesized
) -> None:
    """SageMaker fails an update that changes the instance type of an autoscaled variant. Here the
    endpoint's name follows its instance type, so CloudFormation never sends that update: it creates a
    new endpoint (EndpointName requires replacement), registers a new scalable target on it (ResourceId
    requires replacement and names the new endpoint), and deletes the old target before the old
    endpoint (the old target depends on it)."""
    before, after = dev, dev_options
    assert before.settings.instance_type != after.settings.instance_type
    endpoint_id, old = before.one("AWS::SageMaker::Endpoint")
    same_id, new = after.one("AWS::SageMaker::Endpoint")
    assert endpoint_id == same_id  # a stable logical id: a replacement, not a remove-and-add
    assert old["Properties"]["EndpointName"] != new["Properties"]["EndpointName"]
    assert _scalable_target(before)[0] == _scalable_target(after)[0]
    for stage in (before, after):
        target, properties = _scalable_target(stage)
        # The target's ResourceId reads the endpoint's name: a new name replaces the target, after
        # the new endpoint exists; on cleanup the old target goes before the old endpoint.
        assert properties["Properties"]["ResourceId"] == {
            "Fn::Join": ["", ["endpoint/", {"Fn::GetAtt": [endpoint_id, "EndpointName"]}, "/variant/AllTraffic"]]
        }
        for policy_id in stage.of_type("AWS::ApplicationAutoScaling::ScalingPolicy"):
            assert target in _depends_on(stage, policy_id)  # replaced with the target


def test_a_new_model_keeps_the_endpoint_so_the_guarded_rollout_runs(dev: Synthesized) -> None:
    """A model or container change is an UpdateEndpoint on the same variant, which Application Auto
    Scaling allows: the endpoint's name depends only on the stack and the instance type."""
    settings = dev.settings
    _, endpoint = dev.one("AWS::SageMaker::Endpoint")
    assert endpoint["Properties"]["EndpointName"] == settings.endpoint_name
    assert settings.artifact_file not in settings.endpoint_name
    assert settings.container_version not in settings.endpoint_name


def test_without_auto_rollback_there_are_no_rollback_alarms() -> None:
    stack = Stack(App(), "Probe")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    rollout_settings = RolloutSettings(auto_rollback=False, wait_interval_seconds=0)
    settings = dataclasses.replace(load_stage("dev"), rollout=rollout_settings)
    rollout = GuardedRollout(
        stack,
        "Rollout",
        endpoint_name="e",
        variant_name="AllTraffic",
        endpoint_config_name="c",
        settings=settings,
        execution_role=role,
    )
    assert rollout.alarms == [] and rollout.policy is None
    assert rollout.deployment_config().auto_rollback_configuration is None


@pytest.mark.parametrize(
    ("shifting", "percent", "steps"), [("CANARY", 10, 2), ("LINEAR", 10, 10), ("LINEAR", 30, 4), ("ALL_AT_ONCE", 1, 1)]
)
def test_rollout_steps_count_every_bake(shifting: str, percent: int, steps: int) -> None:
    assert rollout_steps(RolloutSettings(traffic_shifting=shifting, step_percent=percent)) == steps


def test_shadow_variant_gets_a_copy_of_the_configured_share(dev_options: Synthesized) -> None:
    _, config = dev_options.one("AWS::SageMaker::EndpointConfig")
    (production,) = config["Properties"]["ProductionVariants"]
    (shadow,) = config["Properties"]["ShadowProductionVariants"]
    assert production["InitialVariantWeight"] == 1
    assert shadow["VariantName"] == "Shadow"
    assert shadow["InitialVariantWeight"] == pytest.approx(0.2)  # 20% of requests copied
    assert shadow["InstanceType"] == dev_options.settings.instance_type
    assert shadow["InitialInstanceCount"] == 1
    models = dev_options.of_type("AWS::SageMaker::Model")
    assert len(models) == 2
    assert {production["ModelName"]["Fn::GetAtt"][0], shadow["ModelName"]["Fn::GetAtt"][0]} == set(models)
    # Only the production variant autoscales.
    _, target = _scalable_target(dev_options)
    assert "variant/AllTraffic" in json.dumps(target["Properties"]["ResourceId"])


def test_no_shadow_by_default(any_stage: Synthesized) -> None:
    _, config = any_stage.one("AWS::SageMaker::EndpointConfig")
    assert "ShadowProductionVariants" not in config["Properties"]
    assert len(any_stage.of_type("AWS::SageMaker::Model")) == 1


def test_rollback_thresholds_follow_the_settings_in_their_units(dev_odd_thresholds: Synthesized) -> None:
    """p99 ModelLatency is in microseconds: latency_slo_ms x 1000; the 5XX alarm averages a 0/1 metric, so its
    threshold is the share of failed invocations, as configured."""
    by_metric = {
        _watched(alarm["Properties"])["name"]: alarm["Properties"]
        for alarm in _rollback_alarms(dev_odd_thresholds).values()
    }
    latency, errors = by_metric["ModelLatency"], by_metric["Invocation5XXErrors"]
    assert (latency["ComparisonOperator"], _watched(latency)["stat"], latency["Threshold"]) == (
        "GreaterThanThreshold",
        "p99",
        ODD_THRESHOLDS["latency_slo_ms"] * 1000,
    )
    assert latency["Threshold"] == 12_500
    assert "above 12.5 ms" in latency["AlarmDescription"]
    assert (errors["ComparisonOperator"], errors["Statistic"], errors["Threshold"]) == (
        "GreaterThanThreshold",
        "Average",
        ODD_THRESHOLDS["error_rate_alarm"],
    )
    assert "more than 2.50% 5XX" in errors["AlarmDescription"]
