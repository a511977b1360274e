"""No alarm judges a percentile on fewer samples than CloudWatch's own rule asks for (stacks/sample_counts.py):
10/(1-p) data points for p from 0.5, 10/p below (a p99 needs 1,000; on 20 it is the maximum of 20)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.sample_counts import MAX_WINDOW_MINUTES, min_samples, percentile_share, window_minutes
from stacks.settings import AutoscalingSettings, ClientProbeSettings, SettingsError
from stacks.stages import STAGES, load_stage

from .conftest import Synthesized, synthesize

# Metrics whose calls per minute the template alone tells: the client probe's, from its settings.
PROBE_METRIC = ("RtbInference/ClientPath", "ClientRoundTrip")
GUARD = re.compile(r"IF\((?P<samples>\w+) >= (?P<n>\d+), (?P<value>\w+)\)")


@pytest.mark.parametrize(
    ("statistic", "samples"),
    [("p99", 1000), ("p50", 20), ("p90", 100), ("p99.9", 10_000), ("p10", 100), ("p25", 40), ("p75", 40)],
)
def test_cloudwatchs_rule(statistic: str, samples: int) -> None:
    assert min_samples(statistic) == samples


@pytest.mark.parametrize("statistic", ["avg", "p100", "p0", "Maximum", "tm99"])
def test_only_percentiles_have_a_rule(statistic: str) -> None:
    with pytest.raises(ValueError):
        percentile_share(statistic)


@pytest.mark.parametrize(
    ("burst", "schedule", "minutes"),
    [(20, 1, 50), (100, 1, 10), (100, 5, 50), (7, 2, 286), (1, 1, 1000), (30, 1, 34)],
)
def test_the_window_is_whole_runs_that_hold_a_p99s_samples(burst: int, schedule: int, minutes: int) -> None:
    assert window_minutes(burst, schedule, "p99") == minutes
    assert (minutes // schedule) * burst >= 1000 > (minutes // schedule - 1) * burst


def test_a_probe_that_cannot_gather_a_p99_in_a_day_is_refused_in_one_line() -> None:
    with pytest.raises(SettingsError) as raised:
        dataclasses.replace(
            load_stage("prod"), client_probe=ClientProbeSettings(enabled=True, burst_size=3, schedule_minutes=5)
        )
    (problem,) = raised.value.problems
    assert problem.startswith("client_probe.burst_size=3 is invalid: the client-seen p99 alarm needs 1000 probe calls")
    assert "take 1670 min" in problem and "burst_size of at least 4 with schedule_minutes=5" in problem
    assert window_minutes(4, 5, "p99") <= MAX_WINDOW_MINUTES


# --- every alarm of every stage ---------------------------------------------------------------------------


def _percentile_inputs(alarm: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for metric in alarm.get("Metrics", []):
        stat = metric.get("MetricStat", {}).get("Stat", "")
        if stat.startswith("p"):
            yield metric["Id"], metric["MetricStat"]


def low_sample_problems(alarm: dict[str, Any], probe_calls_per_minute: float | None) -> list[str]:
    """Why an alarm may judge a percentile on fewer samples than CloudWatch's rule; [] when it cannot."""
    problems = []
    statistic = alarm.get("ExtendedStatistic")
    if statistic is not None:
        needed = min_samples(statistic)
        if alarm.get("EvaluateLowSampleCountPercentile") != "ignore":
            problems.append(f"{statistic} evaluated on low-sample periods (EvaluateLowSampleCountPercentile)")
        if (alarm["Namespace"], alarm["MetricName"]) == PROBE_METRIC:
            held = (probe_calls_per_minute or 0) * alarm["Period"] / 60
            if held < needed:
                problems.append(f"{statistic} over {alarm['Period']} s holds {held:g} probe calls, not {needed}")
        return problems
    metrics = {metric["Id"]: metric for metric in alarm.get("Metrics", [])}
    for metric_id, stat in _percentile_inputs(alarm):
        # The percentile must reach the returned series only through IF(samples >= N, value) where samples is
        # the SampleCount of the same metric and N is at least the rule's count.
        guarded = False
        for metric in metrics.values():
            match = GUARD.fullmatch(metric.get("Expression", ""))
            if match is None or not metric.get("ReturnData", True):
                continue
            samples = metrics.get(match["samples"], {}).get("MetricStat", {})
            value = metrics.get(match["value"], {})
            feeds = match["value"] == metric_id or re.search(rf"\b{metric_id}\b", value.get("Expression", ""))
            same_calls = samples.get("Stat") == "SampleCount" and samples.get("Period") == stat["Period"]
            same_calls = same_calls and samples["Metric"]["Namespace"] == stat["Metric"]["Namespace"]
            same_calls = same_calls and samples["Metric"]["Dimensions"] == stat["Metric"]["Dimensions"]
            if feeds and same_calls and int(match["n"]) >= min_samples(stat["Stat"]):
                guarded = True
        if not guarded:
            problems.append(
                f"{stat['Stat']} of {stat['Metric']['MetricName']} ({metric_id}) is not guarded by its sample count"
            )
    return problems


def _alarms(stage: Synthesized) -> dict[str, dict[str, Any]]:
    return {key: alarm["Properties"] for key, alarm in stage.of_type("AWS::CloudWatch::Alarm").items()}


def _calls_per_minute(stage: Synthesized) -> float:
    probe = stage.settings.client_probe
    return probe.burst_size / probe.schedule_minutes


@pytest.mark.parametrize("name", list(STAGES))
def test_no_alarm_of_any_stage_judges_a_percentile_on_too_few_samples(
    name: str, synth_stage: Callable[[str], Synthesized]
) -> None:
    stage = synth_stage(name)
    found = {key: low_sample_problems(alarm, _calls_per_minute(stage)) for key, alarm in _alarms(stage).items()}
    assert {key: problems for key, problems in found.items() if problems} == {}
    # Each stage has at least its latency SLO alarm and the rollback's: the check has percentiles to judge.
    assert (
        sum(1 for alarm in _alarms(stage).values() if alarm.get("ExtendedStatistic") or list(_percentile_inputs(alarm)))
        >= 2
    )


def test_nor_the_latency_step_scaling_alarm(tmp_path: Path) -> None:
    base = load_stage("dev")
    settings = dataclasses.replace(base, autoscaling=AutoscalingSettings(latency_step_scaling=True))
    stage = synthesize(settings, tmp_path)
    step = {
        key: alarm
        for key, alarm in _alarms(stage).items()
        if alarm.get("AlarmDescription") == "Upper threshold scaling alarm"
    }
    assert len(step) == 1
    assert {key: low_sample_problems(alarm, None) for key, alarm in step.items()} == {key: [] for key in step}


# --- the check fails on the old alarms ------------------------------------------------------------------


def test_the_check_catches_a_p99_of_twenty_probe_calls() -> None:
    """The probe's former alarm: p99 over one minute of 20 calls, 3 of 5, evaluated whatever the count."""
    old = {
        "Namespace": PROBE_METRIC[0],
        "MetricName": PROBE_METRIC[1],
        "ExtendedStatistic": "p99",
        "Period": 60,
        "EvaluationPeriods": 5,
        "DatapointsToAlarm": 3,
    }
    assert low_sample_problems(old, 20.0) == [
        "p99 evaluated on low-sample periods (EvaluateLowSampleCountPercentile)",
        "p99 over 60 s holds 20 probe calls, not 1000",
    ]


def test_the_check_catches_unguarded_percentiles_in_metric_math() -> None:
    """The former SLO alarm: p99 ModelLatency + p99 OverheadLatency, whatever the minute's invocations."""

    def stat(key: str, name: str, statistic: str) -> dict[str, Any]:
        metric = {"Namespace": "AWS/SageMaker", "MetricName": name, "Dimensions": [{"Name": "E", "Value": "e"}]}
        return {"Id": key, "MetricStat": {"Metric": metric, "Period": 60, "Stat": statistic}, "ReturnData": False}

    old = {
        "Metrics": [
            {"Id": "expr_1", "Expression": "model + overhead", "ReturnData": True},
            stat("model", "ModelLatency", "p99"),
            stat("overhead", "OverheadLatency", "p99"),
        ]
    }
    assert len(low_sample_problems(old, None)) == 2
    weak = {
        "Metrics": [
            {"Id": "expr_1", "Expression": "IF(samples >= 100, value)", "ReturnData": True},
            stat("samples", "ModelLatency", "SampleCount"),
            {"Id": "value", "Expression": "model", "ReturnData": False},
            stat("model", "ModelLatency", "p99"),
        ]
    }
    assert low_sample_problems(weak, None) == ["p99 of ModelLatency (model) is not guarded by its sample count"]
