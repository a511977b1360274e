"""Observability: the alarm topic, the SLO alarms and the dashboard (issue 4, first part)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from stacks.stages import STAGES

from .conftest import ODD_THRESHOLDS, Synthesized
from .test_settings import problems_of

VARIANT_DIMENSIONS = [
    {"Name": "EndpointName", "Value": "RtbInference-dev-c5-xlarge"},  # the endpoint's name, known at synth
    {"Name": "VariantName", "Value": "AllTraffic"},
]


def _alarm(stage: Synthesized, name: str, shard: int = 0) -> dict[str, Any]:
    """Alarm ``name`` of shard ``shard`` (shard 0's sit in Monitoring, shard k's in Monitoring/Shard<k>)."""
    prefix = f"Monitoring{name}" if shard == 0 else f"MonitoringShard{shard}{name}"
    found: dict[str, Any]
    (found,) = [
        alarm["Properties"]
        for logical_id, alarm in stage.of_type("AWS::CloudWatch::Alarm").items()
        if logical_id.startswith(prefix)
    ]
    return found


def _metric_stats(alarm: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        metric["Id"]: (metric["MetricStat"]["Metric"]["MetricName"], metric["MetricStat"]["Stat"])
        for metric in alarm["Metrics"]
        if "MetricStat" in metric
    }


def _topic_id(stage: Synthesized) -> str:
    topic_id, _ = stage.one("AWS::SNS::Topic")
    return topic_id


def test_alarm_topic_is_encrypted_with_the_stack_key_and_tls_only(dev: Synthesized) -> None:
    topic_id, topic = dev.one("AWS::SNS::Topic")
    key_id, key = dev.one("AWS::KMS::Key")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    _, policy = dev.one("AWS::SNS::TopicPolicy")
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    statements = {s.get("Sid"): s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    cloudwatch = statements["CloudWatchAlarmsPublishToTheEncryptedTopic"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_latency_alarm_fires_on_p99_model_plus_overhead_above_the_slo_in_minutes_with_enough_calls(
    dev: Synthesized,
) -> None:
    alarm = _alarm(dev, "LatencySloAlarm")
    assert alarm["Threshold"] == dev.settings.latency_slo_ms * 1000 == 20_000  # microseconds
    assert _metric_stats(alarm) == {
        "samples": ("ModelLatency", "SampleCount"),
        "model": ("ModelLatency", "p99"),
        "overhead": ("OverheadLatency", "p99"),
    }
    # A minute with fewer than 1,000 invocations gives no datapoint (CloudWatch's low-sample rule for a p99).
    assert [m["Expression"] for m in alarm["Metrics"] if "Expression" in m] == [
        "IF(samples >= 1000, value)",
        "model + overhead",
    ]
    for metric in alarm["Metrics"]:
        if "MetricStat" in metric:
            assert metric["MetricStat"]["Metric"]["Dimensions"] == VARIANT_DIMENSIONS
            assert metric["MetricStat"]["Metric"]["Namespace"] == "AWS/SageMaker"
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (5, 3)


def test_error_rate_alarm_compares_5xx_to_invocations(dev: Synthesized) -> None:
    alarm = _alarm(dev, "ErrorRateAlarm")
    assert alarm["Threshold"] == 0.01
    assert _metric_stats(alarm) == {"errors": ("Invocation5XXErrors", "Sum"), "calls": ("Invocations", "Sum")}


def test_capacity_alarm_fires_when_pinned_at_max_for_the_configured_minutes(any_stage: Synthesized) -> None:
    alarm = _alarm(any_stage, "AtMaxCapacityAlarm")
    assert alarm["Threshold"] == any_stage.settings.autoscaling.max_capacity
    assert alarm["EvaluationPeriods"] == any_stage.settings.max_capacity_alarm_minutes == 30
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert _metric_stats(alarm) == {"calls": ("Invocations", "Sum"), "per": ("InvocationsPerInstance", "Sum")}


def test_every_alarm_notifies_the_topic_on_alarm_and_recovery(any_stage: Synthesized) -> None:
    alarms = any_stage.of_type("AWS::CloudWatch::Alarm")
    # Three here and two rollback alarms (tests/test_rollout.py) per shard, four per client AZ with the probe
    # (tests/test_client_probe.py).
    probed = len(any_stage.settings.client_azs) if any_stage.settings.client_probe.enabled else 0
    assert len(alarms) == 5 * any_stage.settings.shards + 4 * probed
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": _topic_id(any_stage)}]
        assert alarm["Properties"]["OKActions"] == [{"Ref": _topic_id(any_stage)}]


def _dashboard_body(stage: Synthesized) -> str:
    _, dashboard = stage.one("AWS::CloudWatch::Dashboard")
    assert "DashboardName" not in dashboard["Properties"]  # generated, like every other name
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return "".join(part if isinstance(part, str) else "<token>" for part in parts)


def test_dashboard_shows_latency_percentiles_in_milliseconds(dev: Synthesized) -> None:
    body = _dashboard_body(dev)
    for name in ("ModelLatency", "OverheadLatency"):
        for percentile in ("p50", "p90", "p99"):
            metric_id = f"{name.lower()}_{percentile}"
            assert f'"expression":"{metric_id} / 1000"' in body
            assert f'"label":"{name} {percentile} (ms)"' in body
    assert '{"value":20,"label":"SLO","yAxis":"left"}' in body


@pytest.mark.parametrize(
    "metric",
    [
        '"Invocations"',
        '"InvocationsPerInstance"',
        '"Invocation4XXErrors"',
        '"Invocation5XXErrors"',
        '"ConcurrentRequestsPerModel"',
        '"/aws/sagemaker/Endpoints","CPUUtilization"',
        '"/aws/sagemaker/Endpoints","MemoryUtilization"',
        '"/aws/sagemaker/Endpoints","GPUUtilization"',
    ],
)
def test_dashboard_covers_traffic_errors_resources_and_capacity(dev: Synthesized, metric: str) -> None:
    assert metric in _dashboard_body(dev)


def test_dashboard_marks_the_scaling_target_and_derives_the_instance_count(dev: Synthesized) -> None:
    body = _dashboard_body(dev)
    # The stage's own target (a measured MAX_RPS, if one was written back, moves it with the dashboard).
    target = dev.settings.autoscaling.invocations_per_instance_target
    shown = int(target) if float(target).is_integer() else target
    assert f'{{"value":{shown},"label":"scaling target","yAxis":"left"}}' in body
    assert '"expression":"IF(per > 0, calls / per, 0)"' in body


def test_outputs_name_the_topic_and_the_dashboard(dev: Synthesized) -> None:
    outputs = dev.template_json["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": _topic_id(dev)}
    dashboard_id, _ = dev.one("AWS::CloudWatch::Dashboard")
    assert outputs["DashboardName"]["Value"] == {"Ref": dashboard_id}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"latency_slo_ms": 0.0},
            "latency_slo_ms=0.0 is invalid: allowed: greater than 0, at most 60000 (the invoke timeout)",
        ),
        ({"error_rate_alarm": 1.5}, "error_rate_alarm=1.5 is invalid: allowed: a share between 0 and 1, such as 0.01"),
        ({"max_capacity_alarm_minutes": 0}, "max_capacity_alarm_minutes=0 is invalid: allowed: 1 to 1440"),
    ],
)
def test_bad_monitoring_settings_fail_at_synth(changes: dict[str, Any], problem: str) -> None:
    assert problems_of(**changes) == [problem]


def test_no_alarm_carries_a_physical_name(any_stage: Synthesized) -> None:
    for alarm in any_stage.of_type("AWS::CloudWatch::Alarm").values():
        assert "AlarmName" not in alarm["Properties"]
    assert "TopicName" not in json.dumps(any_stage.of_type("AWS::SNS::Topic"))


# --- alarm semantics: operator, expression and threshold units, per alarm --------------------------------

MICROSECONDS_PER_MS = 1000  # ModelLatency and OverheadLatency are reported in microseconds


def _semantics(alarm: dict[str, Any]) -> dict[str, Any]:
    """What decides when an alarm fires: operator, the expression it watches, its inputs and threshold."""
    expressions = [m for m in alarm.get("Metrics", []) if "Expression" in m]
    returned = [m for m in expressions if m.get("ReturnData", True)]
    return {
        "operator": alarm["ComparisonOperator"],
        "expression": returned[0]["Expression"] if returned else None,
        "inner": {m["Id"]: m["Expression"] for m in expressions if not m.get("ReturnData", True)},
        "returns": [m["Id"] for m in alarm.get("Metrics", []) if m.get("ReturnData", True)],
        "inputs": _metric_stats(alarm) if "Metrics" in alarm else None,
        "periods": {m["MetricStat"]["Period"] for m in alarm.get("Metrics", []) if "MetricStat" in m},
        "threshold": alarm["Threshold"],
        "window": (alarm["EvaluationPeriods"], alarm.get("DatapointsToAlarm")),
        "missing": alarm["TreatMissingData"],
    }


def _expected_monitoring(stage: Synthesized) -> dict[str, dict[str, Any]]:
    settings = stage.settings
    return {
        # p99 model + p99 overhead (microseconds) above the SLO (milliseconds x 1000), in minutes with at
        # least 1,000 invocations (CloudWatch's rule for a p99; fewer give no datapoint).
        "LatencySloAlarm": {
            "operator": "GreaterThanThreshold",
            "expression": "IF(samples >= 1000, value)",
            "inner": {"value": "model + overhead"},
            "returns": ["expr_1"],
            "inputs": {
                "samples": ("ModelLatency", "SampleCount"),
                "model": ("ModelLatency", "p99"),
                "overhead": ("OverheadLatency", "p99"),
            },
            "periods": {60},
            "threshold": settings.latency_slo_ms * MICROSECONDS_PER_MS,
            "window": (5, 3),
            "missing": "notBreaching",
        },
        # The 5XX share of invocations (a fraction, like the setting), 0 without traffic.
        "ErrorRateAlarm": {
            "operator": "GreaterThanThreshold",
            "expression": "IF(calls > 0, errors / calls, 0)",
            "inner": {},
            "returns": ["expr_1"],
            "inputs": {"errors": ("Invocation5XXErrors", "Sum"), "calls": ("Invocations", "Sum")},
            "periods": {60},
            "threshold": settings.error_rate_alarm,
            "window": (5, 3),
            "missing": "notBreaching",
        },
        # Instances in service, derived as calls / calls-per-instance, reaching the most autoscaling may run.
        "AtMaxCapacityAlarm": {
            "operator": "GreaterThanOrEqualToThreshold",
            "expression": "IF(per > 0, calls / per, 0)",
            "inner": {},
            "returns": ["expr_1"],
            "inputs": {"calls": ("Invocations", "Sum"), "per": ("InvocationsPerInstance", "Sum")},
            "periods": {60},
            "threshold": settings.autoscaling.max_capacity,
            "window": (settings.max_capacity_alarm_minutes, None),
            "missing": "notBreaching",
        },
    }


@pytest.mark.parametrize("name", list(STAGES))
def test_every_monitoring_alarm_has_the_reviewed_operator_expression_and_units(
    name: str, synth_stage: Callable[[str], Synthesized]
) -> None:
    stage = synth_stage(name)
    expected = _expected_monitoring(stage)
    found = {
        logical_id: alarm["Properties"]
        for logical_id, alarm in stage.of_type("AWS::CloudWatch::Alarm").items()
        if logical_id.startswith("Monitoring") and not logical_id.startswith("MonitoringClient")
    }
    assert len(found) == len(expected) * stage.settings.shards, f"an alarm without reviewed semantics: {sorted(found)}"
    for shard, endpoint in enumerate(stage.settings.endpoint_names):
        for alarm_name, semantics in expected.items():
            alarm = _alarm(stage, alarm_name, shard)
            assert _semantics(alarm) == semantics, (shard, alarm_name)
            # Each shard's alarms watch its own endpoint's variant.
            dimensions = [m["MetricStat"]["Metric"]["Dimensions"] for m in alarm["Metrics"] if "MetricStat" in m]
            assert dimensions and all(
                found == [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}]
                for found in dimensions
            ), (shard, alarm_name)


def test_latency_threshold_converts_the_slo_from_ms_to_microseconds(dev_odd_thresholds: Synthesized) -> None:
    alarm = _alarm(dev_odd_thresholds, "LatencySloAlarm")
    assert ODD_THRESHOLDS["latency_slo_ms"] == 12.5
    assert alarm["Threshold"] == 12_500
    assert "(us)" in alarm["Metrics"][0]["Label"]
    assert "above the 12.5 ms SLO" in alarm["AlarmDescription"]


def test_error_rate_threshold_is_the_configured_share_not_a_percentage(dev_odd_thresholds: Synthesized) -> None:
    alarm = _alarm(dev_odd_thresholds, "ErrorRateAlarm")
    assert alarm["Threshold"] == ODD_THRESHOLDS["error_rate_alarm"] == 0.025
    assert "above 2.50% of invocations" in alarm["AlarmDescription"]


def test_a_changed_operator_fails_the_semantics_check(dev: Synthesized) -> None:
    """The check compares the operator itself: a LessThan alarm on latency would never fire."""
    alarm = dict(_alarm(dev, "LatencySloAlarm"), ComparisonOperator="LessThanThreshold")
    assert _semantics(alarm) != _expected_monitoring(dev)["LatencySloAlarm"]
