"""Deployment guardrails, the instance-type change made safe by design, and the shadow variant."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam

from stacks.rollout import GuardedRollout
from stacks.settings import ROLLBACK_BATCH_PERCENT, ROLLING_BATCH_PERCENT, RolloutSettings, rollout_steps
from stacks.stages import STAGES, load_stage

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
    """Every shard's rollback alarms."""
    return {key: alarm for key, alarm in stage.of_type("AWS::CloudWatch::Alarm").items() if "Rollout" in key}


def _shard_resources(stage: Synthesized) -> list[tuple[str, str, dict[str, Any]]]:
    """(endpoint id, endpoint config id, rollback alarms) per shard, shard 0 first, found through the template's
    references: an endpoint names its config, and a rollback alarm watches one config's new fleet."""
    endpoints = stage.of_type("AWS::SageMaker::Endpoint")
    by_name = {endpoint["Properties"]["EndpointName"]: key for key, endpoint in endpoints.items()}
    assert sorted(by_name) == sorted(stage.settings.endpoint_names)
    found = []
    for name in stage.settings.endpoint_names:
        endpoint_id = by_name[name]
        config_id = endpoints[endpoint_id]["Properties"]["EndpointConfigName"]["Fn::GetAtt"][0]
        alarms = {key: alarm for key, alarm in _rollback_alarms(stage).items() if config_id in _refs(alarm)}
        found.append((endpoint_id, config_id, alarms))
    return found


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
    shards = _shard_resources(any_stage)
    assert sum(len(alarms) for _, _, alarms in shards) == len(_rollback_alarms(any_stage)) == 2 * len(shards)
    for name, (endpoint_id, config_id, alarms) in zip(any_stage.settings.endpoint_names, shards, strict=True):
        _check_rollback_alarms(any_stage, name, endpoint_id, config_id, alarms)


def _check_rollback_alarms(
    stage: Synthesized, endpoint_name: str, endpoint_id: str, config_id: str, alarms: dict[str, Any]
) -> None:
    """One shard's two alarms on its new fleet, and its endpoint rolling back on exactly them."""
    settings = stage.settings
    by_metric = {_watched(alarm["Properties"])["name"]: alarm["Properties"] for alarm in alarms.values()}
    assert set(by_metric) == {"Invocation5XXErrors", "ModelLatency"}
    for properties in by_metric.values():
        watched = _watched(properties)
        assert watched["namespace"] == "AWS/SageMaker"
        assert watched["dimensions"] == [
            {"Name": "EndpointConfigName", "Value": {"Fn::GetAtt": [config_id, "EndpointConfigName"]}},
            {"Name": "EndpointName", "Value": endpoint_name},
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
    endpoint = stage.resources[endpoint_id]
    if not settings.serving.guardrails:  # Inf1: the alarms notify, SageMaker cannot roll back on them
        assert "DeploymentConfig" not in endpoint["Properties"]
        return
    rollback = endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
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
    # One policy for every shard's alarms (a role holds only so many managed policies), on the execution role.
    models = any_stage.of_type("AWS::SageMaker::Model")
    (role_id,) = {model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0] for model in models.values()}
    assert policy["Roles"] == [{"Ref": role_id}]
    # Each endpoint, which the rollout updates, waits for the permission; no model may (a cycle).
    for endpoint_id in any_stage.of_type("AWS::SageMaker::Endpoint"):
        assert policy_id in _depends_on(any_stage, endpoint_id)
    for model_id in models:
        assert policy_id not in _depends_on(any_stage, model_id)


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


# --- rolling updates ------------------------------------------------------------------------------------------

ROLLING = [name for name in STAGES if load_stage(name).rollout.strategy == "rolling"]


def test_a_rolling_stage_is_shipped() -> None:
    assert ROLLING, "a stage updated in rolling batches (stacks/stages.py: scale) is synthesized and checked"


@pytest.mark.parametrize("name", ROLLING)
def test_rolling_stages_update_in_batches_with_the_same_rollback_alarms(
    name: str, synth_stage: Callable[[str], Synthesized]
) -> None:
    stage = synth_stage(name)
    rollout = stage.settings.rollout
    for endpoint_name, (endpoint_id, config_id, alarms) in zip(
        stage.settings.endpoint_names, _shard_resources(stage), strict=True
    ):
        config = stage.resources[endpoint_id]["Properties"]["DeploymentConfig"]
        assert "BlueGreenUpdatePolicy" not in config
        assert config["RollingUpdatePolicy"] == {
            "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": rollout.rolling_batch_percent},
            "WaitIntervalInSeconds": rollout.wait_interval_seconds,
            "MaximumExecutionTimeoutInSeconds": rollout.max_execution_timeout_seconds,
            # Left out, SageMaker would roll back 100% at once: the whole old fleet beside the new one.
            "RollbackMaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": rollout.rolling_batch_percent},
        }
        _check_rollback_alarms(stage, endpoint_name, endpoint_id, config_id, alarms)


@pytest.mark.parametrize("name", ROLLING)
def test_rolling_stages_keep_the_guardrails_rules(name: str, synth_stage: Callable[[str], Synthesized]) -> None:
    """What SageMaker's guardrails ask of a rolling deployment (Exclusions page; RollingUpdatePolicy): a batch of 5 to
    50% of the variant, one production variant and no shadow (multi-variant endpoints are excluded), an instance type
    with guardrails (not Inf1), a baking period long enough for the alarms' two datapoints, and a timeout over the
    bakes. botocore's shapes are checked for every stage in tests/test_api_shapes.py."""
    stage = synth_stage(name)
    low, high = ROLLING_BATCH_PERCENT
    for endpoint_id, config_id, _ in _shard_resources(stage):
        policy = stage.resources[endpoint_id]["Properties"]["DeploymentConfig"]["RollingUpdatePolicy"]
        assert policy["MaximumBatchSize"]["Type"] == "CAPACITY_PERCENT"
        assert low <= policy["MaximumBatchSize"]["Value"] <= high
        assert ROLLBACK_BATCH_PERCENT[0] <= policy["RollbackMaximumBatchSize"]["Value"] <= ROLLBACK_BATCH_PERCENT[1]
        assert policy["WaitIntervalInSeconds"] >= 120
        batches = -(-100 // policy["MaximumBatchSize"]["Value"])
        assert policy["MaximumExecutionTimeoutInSeconds"] > batches * policy["WaitIntervalInSeconds"]
        config = stage.resources[config_id]["Properties"]
        (variant,) = config["ProductionVariants"]
        assert "ShadowProductionVariants" not in config
        assert not variant["InstanceType"].startswith("ml.inf1.")


def test_a_blue_green_stage_has_no_rolling_policy(dev: Synthesized) -> None:
    assert set(_deployment_config(dev)) == {"AutoRollbackConfiguration", "BlueGreenUpdatePolicy"}


@pytest.mark.parametrize(
    ("shifting", "percent", "steps"), [("CANARY", 10, 2), ("LINEAR", 10, 10), ("LINEAR", 30, 4), ("ALL_AT_ONCE", 1, 1)]
)
def test_rollout_steps_count_every_bake(shifting: str, percent: int, steps: int) -> None:
    assert rollout_steps(RolloutSettings(traffic_shifting=shifting, step_percent=percent)) == steps


@pytest.mark.parametrize(("percent", "batches"), [(5, 20), (10, 10), (20, 5), (30, 4), (50, 2)])
def test_rolling_steps_are_the_batches(percent: int, batches: int) -> None:
    assert rollout_steps(RolloutSettings(strategy="rolling", rolling_batch_percent=percent)) == batches


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
    for config in any_stage.of_type("AWS::SageMaker::EndpointConfig").values():
        assert "ShadowProductionVariants" not in config["Properties"]
    assert len(any_stage.of_type("AWS::SageMaker::Model")) == any_stage.settings.shards  # one model per shard


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
