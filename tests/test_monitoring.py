"""Observability: the alarm topic, the SLO alarms and the dashboard (issue 4, first part)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Synthesized
from .test_settings import problems_of

VARIANT_DIMENSIONS = [
    {"Name": "EndpointName", "Value": "RtbInference-dev-c5-xlarge"},  # the endpoint's name, known at synth
    {"Name": "VariantName", "Value": "AllTraffic"},
]


def _alarm(stage: Synthesized, name: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [
        alarm["Properties"]
        for logical_id, alarm in stage.of_type("AWS::CloudWatch::Alarm").items()
        if logical_id.startswith(f"Monitoring{name}")
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


def test_latency_alarm_fires_on_p99_model_plus_overhead_above_the_slo(dev: Synthesized) -> None:
    alarm = _alarm(dev, "LatencySloAlarm")
    assert alarm["Threshold"] == dev.settings.latency_slo_ms * 1000 == 20_000  # microseconds
    assert _metric_stats(alarm) == {"model": ("ModelLatency", "p99"), "overhead": ("OverheadLatency", "p99")}
    assert [m["Expression"] for m in alarm["Metrics"] if "Expression" in m] == ["model + overhead"]
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
    assert len(alarms) == 5  # three here, two rollback alarms (tests/test_rollout.py)
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
    assert '{"value":30000,"label":"scaling target","yAxis":"left"}' in body
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
