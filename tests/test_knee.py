"""The load test's knee finding, target arithmetic and report, on synthetic latency curves (no Locust)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from loadgen import figure, knee
from loadgen.knee import Criteria, Search, StepStats, StopReason
from loadgen.report import summary_lines
from loadgen.step_tally import Tally
from stacks.settings import AutoscalingSettings

CRITERIA = Criteria(slo_p99_ms=20.0, max_error_rate=0.01, min_achieved_ratio=0.9)


def curve(
    offered: Sequence[float],
    *,
    p99: Callable[[float], float] = lambda rps: 8.0,
    achieved: Callable[[float], float] = lambda rps: rps,
    error_rate: Callable[[float], float] = lambda rps: 0.0,
    cpu: float | None = 30.0,
) -> list[StepStats]:
    """Steps of an endpoint whose p99, throughput and errors are these functions of the offered rate."""
    steps = []
    for rps in offered:
        requests = 10_000
        steps.append(
            StepStats(
                offered_rps=rps,
                achieved_rps=achieved(rps),
                p50_ms=p99(rps) / 2,
                p90_ms=p99(rps) * 0.8,
                p99_ms=p99(rps),
                requests=requests,
                errors=round(error_rate(rps) * requests),
                users=math.ceil(rps / 25),
                window_seconds=16.0,
                client_cpu_percent=cpu,
            )
        )
    return steps


def tallied(offered_rps: float, latencies_ms: Sequence[float], *, errors: int = 0) -> StepStats:
    """A step as the load test measures it: its calls tallied over a 1 s window."""
    tally = Tally()
    for latency in latencies_ms:
        tally.record("ok", latency, latency, 0.0)
    for _ in range(errors):
        tally.record("5xx", 0.0, 0.0, 0.0)
    tally.close(1.0, 10.0)
    return tally.stats(offered_rps=offered_rps, users=1)


RISING = [100.0 * n for n in range(1, 11)]  # 100 .. 1000 RPS


def test_flat_then_rising_p99_stops_at_the_first_step_over_the_slo() -> None:
    steps = curve(RISING, p99=lambda rps: 10.0 if rps <= 600 else 10.0 + (rps - 600) / 10)  # 20 ms at 700
    found = knee.find_knee(steps, CRITERIA)
    assert found.max_rps == 700.0  # p99 exactly at the SLO still meets it
    assert (found.knee_step, found.failed_step, found.reason) == (6, 7, StopReason.SLO)
    assert found.detail == "step 8 (offered 800.0 RPS): p99 30.0 ms > SLO 20 ms"
    assert not found.lower_bound


def test_an_error_wall_stops_the_search_even_with_good_latency() -> None:
    steps = curve(RISING, error_rate=lambda rps: 0.0 if rps < 500 else 0.05)
    found = knee.find_knee(steps, CRITERIA)
    assert (found.max_rps, found.reason) == (400.0, StopReason.ERRORS)
    assert found.detail == "step 5 (offered 500.0 RPS): error rate 5.00% > 1.00% (500/10000)"


def test_errors_at_the_bound_still_count_as_good() -> None:
    steps = curve(RISING[:3], error_rate=lambda rps: 0.01)
    assert knee.find_knee(steps, CRITERIA).reason is StopReason.MAX_STEPS


def test_saturation_stops_where_achieved_falls_under_90_percent_of_offered() -> None:
    # Throughput flattens at 650 RPS while latency stays flat (e.g. callers queue in front of the endpoint).
    steps = curve(RISING, achieved=lambda rps: min(rps, 650.0))
    found = knee.find_knee(steps, CRITERIA)
    # 700 offered -> 650 achieved is 93% (good); 800 -> 650 is 81%.
    assert (found.max_rps, found.reason) == (650.0, StopReason.SATURATED)
    assert "achieved 650.0 RPS < 90% of offered 800.0 RPS" in found.detail


def test_a_saturated_load_generator_makes_the_result_a_lower_bound() -> None:
    steps = curve(RISING, achieved=lambda rps: min(rps, 650.0), cpu=97.0)
    found = knee.find_knee(steps, CRITERIA)
    assert (found.max_rps, found.reason, found.lower_bound) == (650.0, StopReason.CLIENT_BOUND, True)
    assert "the load generator used 97% CPU" in found.detail


def test_slo_missed_at_the_first_step_gives_no_max_rps() -> None:
    steps = curve(RISING[:1], p99=lambda rps: 25.0)
    found = knee.find_knee(steps, CRITERIA)
    assert (found.max_rps, found.knee_step, found.failed_step, found.reason) == (None, None, 0, StopReason.SLO)
    assert found.detail.endswith("no step below it met the criteria, start lower")
    assert knee.next_offered(steps, CRITERIA, Search(start_rps=100, step_rps=100)) is None


@pytest.mark.parametrize(
    ("ended_by", "reason"),
    [(None, StopReason.MAX_STEPS), (StopReason.TIME_LIMIT, StopReason.TIME_LIMIT)],
)
def test_every_step_fine_up_to_the_last_is_a_lower_bound(ended_by: StopReason | None, reason: StopReason) -> None:
    steps = curve(RISING, achieved=lambda rps: rps * 0.99)
    found = knee.find_knee(steps, CRITERIA, ended_by=ended_by)
    assert (found.max_rps, found.knee_step, found.failed_step) == (990.0, 9, None)
    assert (found.reason, found.lower_bound) == (reason, True)
    assert found.detail == "every step met the criteria up to offered 1000.0 RPS"


def test_no_steps_at_all() -> None:
    found = knee.find_knee([], CRITERIA, ended_by=StopReason.INTERRUPTED)
    assert (found.max_rps, found.reason, found.detail) == (None, StopReason.INTERRUPTED, "no step completed")


def _search(true_knee: float, search: Search) -> list[StepStats]:
    """Run the step search against an endpoint that meets the SLO up to ``true_knee`` RPS."""
    steps: list[StepStats] = []
    while (offered := knee.next_offered(steps, CRITERIA, search)) is not None:
        assert len(steps) < 100
        steps += curve([offered], p99=lambda rps: 10.0 if rps <= true_knee else 60.0)
    return steps


def test_the_search_rises_then_halves_the_gap_to_the_first_failure() -> None:
    steps = _search(745.0, Search(start_rps=100, step_rps=100, refine=2))
    assert [step.offered_rps for step in steps] == [100, 200, 300, 400, 500, 600, 700, 800, 750, 725]
    found = knee.find_knee(steps, CRITERIA)
    # The lowest failing step is now 750 (refined), and the best good step below it 725.
    assert (found.max_rps, found.knee_step, found.failed_step) == (725.0, 9, 8)


def test_without_refinement_the_search_stops_at_the_first_failure() -> None:
    steps = _search(745.0, Search(start_rps=100, step_rps=100, refine=0))
    assert [step.offered_rps for step in steps][-2:] == [700, 800]
    assert knee.find_knee(steps, CRITERIA).max_rps == 700.0


def test_the_rising_steps_respect_max_rps_and_max_steps() -> None:
    assert Search(start_rps=50, step_rps=50, max_rps=200).coarse() == [50, 100, 150, 200]
    assert Search(start_rps=50, step_rps=50, max_steps=3).coarse() == [50, 100, 150]
    assert len(_search(10_000.0, Search(start_rps=50, step_rps=50, max_rps=200))) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slo_p99_ms": 0.0}, "slo_p99_ms=0.0 is invalid: allowed: greater than 0"),
        ({"max_error_rate": 1.0}, "max_error_rate=1.0 is invalid: allowed: at least 0 and below 1"),
        ({"min_achieved_ratio": 1.5}, r"min_achieved_ratio=1.5 is invalid: allowed: in \(0, 1\]"),
    ],
)
def test_criteria_refuse_nonsense(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Criteria(**kwargs)


def test_search_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max_rps=10 is invalid: allowed: at least start_rps=50"):
        Search(start_rps=50, step_rps=50, max_rps=10)
    with pytest.raises(ValueError, match="step_rps=0 is invalid"):
        Search(start_rps=50, step_rps=0)


def test_a_step_without_successful_calls_fails_on_latency_too() -> None:
    step = tallied(100, [], errors=50)
    verdict = knee.check_step(step, CRITERIA)
    assert verdict.reason is StopReason.ERRORS
    assert verdict.detail == (
        "error rate 100.00% > 1.00% (50/50); no successful call to measure p99 on; "
        "achieved 0.0 RPS < 90% of offered 100.0 RPS"
    )


def test_the_target_is_max_rps_per_instance_times_safety_times_60() -> None:
    assert knee.per_instance(1300.0, 2) == 650.0
    assert knee.invocations_target(650.0, 0.5) == 19_500.0
    # The same formula the stack's autoscaling uses.
    settings = AutoscalingSettings(max_rps_per_instance=650.0, safety_factor=0.5)
    assert knee.invocations_target(650.0, 0.5) == settings.invocations_per_instance_target
    with pytest.raises(ValueError, match="instances=0 is invalid"):
        knee.per_instance(100.0, 0)
    with pytest.raises(ValueError, match=r"safety_factor=1\.5 is invalid"):
        knee.invocations_target(100.0, 1.5)


def _report(steps: list[StepStats], found: knee.Knee, instances: int = 2) -> dict[str, Any]:
    return knee.build_report(
        steps=steps,
        knee=found,
        criteria=CRITERIA,
        instances=instances,
        safety_factor=0.5,
        endpoint={"name": "ep", "url": None, "stage": "dev"},
        parameters={"step_seconds": 20},
    )


def test_the_report_has_steps_result_slo_and_parameters() -> None:
    steps = curve(RISING, p99=lambda rps: 10.0 if rps <= 600 else 10.0 + (rps - 600) / 10)
    report = _report(steps, knee.find_knee(steps, CRITERIA))
    assert set(report) == {"report_version", "endpoint", "slo", "steps", "result", "parameters"}
    assert report["slo"] == {
        "slo_p99_ms": 20.0,
        "max_error_rate": 0.01,
        "min_achieved_ratio": 0.9,
        "max_client_cpu_percent": 90.0,
        "max_generator_lateness_ms": 10.0,
        "max_loop_lag_share": 0.1,
        "max_cpu_steal_percent": 10.0,
        "max_cpu_pressure_percent": 90.0,
    }
    assert report["result"] == {
        "max_rps": 700.0,
        "rows_per_request": 1,
        "max_rows_per_second": 700.0,
        "instances": 2,
        "max_rps_per_instance": 350.0,
        "safety_factor": 0.5,
        "invocations_per_instance_target": 10_500.0,
        "stop_reason": "slo",
        "lower_bound": False,
        "knee_step": 7,
        "failed_step": 8,
        "detail": "step 8 (offered 800.0 RPS): p99 30.0 ms > SLO 20 ms",
    }
    rows = report["steps"]
    assert set(rows[0]) == {
        "step", "users", "offered_rps", "achieved_rps", "p50_ms", "p90_ms", "p99_ms", "service_p99_ms",
        "generator_lateness_p99_ms", "requests", "errors",
        "error_rate", "server_errors_5xx", "server_error_rate_5xx", "client_errors_4xx", "client_error_rate_4xx",
        "window_seconds", "client_cpu_percent", "processes", "process_rps", "process_cpu_percent", "ok", "verdict",
        "detail", "process_offered_rps", "rows_per_request", "offered_rows_per_second", "achieved_rows_per_second",
        "loop_lag_p99_ms", "loop_lag_max_ms", "process_loop_lag_p99_ms", "cpu_steal_percent", "cpu_pressure_percent",
        "generator_starved",
    }  # fmt: skip
    assert [row["verdict"] for row in rows[6:9]] == ["ok", "slo", "slo"]
    assert json.loads(json.dumps(report, allow_nan=False)) == report


@pytest.mark.slow  # matplotlib draws the figure
def test_the_report_of_a_failed_search_is_valid_json_without_nan(tmp_path: Path) -> None:
    steps = [tallied(100, [], errors=100)]
    report = _report(steps, knee.find_knee(steps, CRITERIA))
    assert report["result"]["max_rps"] is None
    assert report["result"]["invocations_per_instance_target"] is None
    knee.write_report(report, tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text())["steps"][0]["p99_ms"] is None
    figure.plot_report(report, tmp_path / "latency.png")
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.slow  # matplotlib draws the figure
def test_the_plot_is_a_png_with_the_curves(tmp_path: Path) -> None:
    steps = _search(745.0, Search(start_rps=100, step_rps=100, refine=2))
    report = _report(steps, knee.find_knee(steps, CRITERIA))
    figure.plot_report(report, tmp_path / "latency.png")
    data = (tmp_path / "latency.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000


def test_the_summary_gives_the_verdict_once_then_the_target() -> None:
    steps = curve(RISING, p99=lambda rps: 10.0 if rps <= 600 else 10.0 + (rps - 600) / 10)
    report = _report(steps, knee.find_knee(steps, CRITERIA))
    report["verdict"] = knee.verdict_in_words(report)
    assert summary_lines(report) == [
        "MAX_RPS 350.0 per instance: p99 30.0 ms at 800 RPS exceeded the 20 ms SLO",
        "SageMakerVariantInvocationsPerInstance = 350.0 x 0.5 x 60 = 10500 (700.0 RPS over the endpoint's 2 instances)",
        "MAX_RPS 700.0 requests/s x 1 row per request = 700.0 rows/s",
    ]
    batched = [dataclasses.replace(step, rows_per_request=8) for step in steps]
    report = _report(batched, knee.find_knee(batched, CRITERIA))
    report["verdict"] = knee.verdict_in_words(report)
    # MAX_RPS and the target stay per request (SageMaker counts invocations); the rows ride along.
    assert summary_lines(report)[1:] == [
        "SageMakerVariantInvocationsPerInstance = 350.0 x 0.5 x 60 = 10500 (700.0 RPS over the endpoint's 2 instances)",
        "MAX_RPS 700.0 requests/s x 8 rows per request = 5600.0 rows/s",
    ]
    assert report["steps"][0]["achieved_rows_per_second"] == 800.0


def test_a_progress_line_shows_rates_percentiles_and_errors() -> None:
    (step,) = curve([200.0], p99=lambda rps: 30.0, error_rate=lambda rps: 0.002)
    line = knee.step_line(2, step, knee.check_step(step, CRITERIA))
    assert line.startswith("step  3  users    8  offered    200.0  achieved    200.0 RPS (100%)    200.0 rows/s")
    assert "p50   15.0  p90   24.0  p99   30.0 ms  errors  0.20% (20/10000: 5XX 0.00%, 4XX 0.00%)  cpu  30%" in line
    assert line.endswith("FAIL (slo): p99 30.0 ms > SLO 20 ms")


def test_the_verdict_says_in_words_what_stopped_the_search() -> None:
    slo = curve(RISING, p99=lambda rps: 10.0 if rps <= 600 else 10.0 + (rps - 600) / 10)
    assert knee.verdict_in_words(_report(slo, knee.find_knee(slo, CRITERIA))) == (
        "MAX_RPS 350.0 per instance: p99 30.0 ms at 800 RPS exceeded the 20 ms SLO"
    )
    errors = curve(RISING, error_rate=lambda rps: 0.0 if rps <= 500 else 0.05)
    assert knee.verdict_in_words(_report(errors, knee.find_knee(errors, CRITERIA))).endswith(
        "errors 5.00% of attempts (5XX 0.00%) at 600 RPS exceeded 1.00%"
    )
    flat = curve([100.0, 200.0])
    lower = knee.verdict_in_words(_report(flat, knee.find_knee(flat, CRITERIA, ended_by=knee.StopReason.MAX_STEPS)))
    assert lower == (
        "MAX_RPS 100.0 per instance: a lower bound (max_steps): every step met the criteria up to offered 200.0 RPS"
    )
    assert lower.count("lower bound") == 1  # said once


def test_a_first_step_that_fails_says_to_start_lower() -> None:
    failing = curve(RISING, p99=lambda rps: 40.0)
    verdict = knee.verdict_in_words(_report(failing, knee.find_knee(failing, CRITERIA)))
    assert verdict == (
        "no MAX_RPS: the first step failed: p99 40.0 ms at 100 RPS exceeded the 20 ms SLO; start lower (--start-rps)"
    )


def test_a_failing_step_whose_generator_sent_late_is_the_generators_not_the_endpoints() -> None:
    late = dataclasses.replace(curve([200.0], p99=lambda rps: 30.0)[0], lateness_p99_ms=12.0)
    verdict = knee.check_step(late, CRITERIA)
    assert verdict.reason == knee.StopReason.CLIENT_BOUND
    assert verdict.detail.endswith("the load generator sent 12.0 ms late (p99) with users free, so it set the pace")
    on_time = dataclasses.replace(late, lateness_p99_ms=1.0)
    assert knee.check_step(on_time, CRITERIA).reason == knee.StopReason.SLO
    passing = dataclasses.replace(curve([200.0])[0], lateness_p99_ms=12.0)
    assert knee.check_step(passing, CRITERIA).ok  # lateness alone fails nothing: it explains a failure


def _titles(figure: Any) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_title()]


@pytest.mark.slow  # matplotlib draws the figure
def test_the_figure_shows_errors_only_when_there_were_some_and_always_the_generator() -> None:
    from matplotlib import pyplot as plt

    clean = curve([400.0, 500.0, 600.0], p99=lambda rps: 10.0 if rps < 600 else 30.0)
    report = _report(clean, knee.find_knee(clean, CRITERIA)) | {"run_id": "loadtest-dev-1", "started_at": "2026-12-02"}
    drawn = figure.build_figure(report)
    assert _titles(drawn) == ["Latency by offered load", "Latency by achieved load", "Throughput", "Load generator"]
    assert drawn._suptitle.get_text() == f"{knee.verdict_in_words(report)}\nloadtest-dev-1 2026-12-02"
    (throughput,) = [ax for ax in drawn.axes if ax.get_title() == "Throughput"]
    assert 350 < throughput.get_xlim()[0] < 400  # fitted to 400..600, not squashed from 0
    plt.close(drawn)
    erring = curve([400.0, 500.0], error_rate=lambda rps: 0.0 if rps < 500 else 0.05)
    drawn = figure.build_figure(_report(erring, knee.find_knee(erring, CRITERIA)))
    assert "Errors" in _titles(drawn)
    plt.close(drawn)


# --- a starved generator: its failures are its own, the endpoint's errors stay the endpoint's ------------


def _starved(step: StepStats, **measures: Any) -> StepStats:
    return dataclasses.replace(step, **measures)


def test_a_latency_failure_while_the_generators_event_loop_lagged_is_client_bound() -> None:
    # The incident: an endpoint whose own p99 was 4.7 ms measured at p99 71 ms from a starved generator.
    (slow,) = curve([200.0], p99=lambda rps: 71.0)
    starved = _starved(slow, loop_lag_p99_ms=60.0, loop_lag_max_ms=240.0)
    verdict = knee.check_step(starved, CRITERIA)
    assert verdict.reason is StopReason.CLIENT_BOUND
    assert verdict.starved == ("woke 60.0 ms late (event-loop lag p99, over 2 ms: 10% of the SLO)",)
    assert verdict.detail == (
        "p99 71.0 ms > SLO 20 ms; the load generator woke 60.0 ms late (event-loop lag p99, over 2 ms: 10% of the "
        "SLO), so it set the pace"
    )
    # The same failure from a generator whose loop kept time is the endpoint's.
    assert knee.check_step(_starved(slow, loop_lag_p99_ms=0.3), CRITERIA).reason is StopReason.SLO
    # A lag alone fails nothing: it explains a failure.
    (fine,) = curve([200.0])
    assert knee.check_step(_starved(fine, loop_lag_p99_ms=60.0), CRITERIA).ok


def test_the_event_loop_bound_is_a_share_of_the_slo() -> None:
    (slow,) = curve([200.0], p99=lambda rps: 400.0)
    lagging = _starved(slow, loop_lag_p99_ms=5.0)
    assert knee.check_step(lagging, CRITERIA).reason is StopReason.CLIENT_BOUND  # 5 ms > 10% of 20 ms
    wide = Criteria(slo_p99_ms=100.0)
    assert knee.check_step(lagging, wide).reason is StopReason.SLO  # 5 ms < 10% of 100 ms: noise for this SLO


@pytest.mark.parametrize(
    ("measures", "sign"),
    [
        ({"cpu_steal_percent": 25.0}, "lost 25% of the machine's CPU time to other guests (steal)"),
        ({"cpu_pressure_percent": 97.0}, "ran where some task waited for a CPU 97% of the time (CPU pressure)"),
    ],
)
def test_machine_wide_cpu_steal_or_pressure_make_a_failure_client_bound(measures: dict[str, float], sign: str) -> None:
    (saturated,) = curve([800.0], achieved=lambda rps: 600.0)
    verdict = knee.check_step(_starved(saturated, **measures), CRITERIA)
    assert (verdict.reason, verdict.starved) == (StopReason.CLIENT_BOUND, (sign,))
    assert knee.check_step(_starved(saturated, cpu_steal_percent=0.2, cpu_pressure_percent=65.0),
                           CRITERIA).reason is StopReason.SATURATED  # fmt: skip


def test_errors_the_endpoint_answered_stay_its_verdict_however_starved_the_generator() -> None:
    # A load-independent 5XX share (every 10th call), from a generator starved every way it can be.
    tally = Tally()
    for n in range(1000):
        tally.record("5xx" if n % 10 == 0 else "ok", 900.0, 5.0, 0.0)
    tally.close(1.0, 99.0, offered_rps=1000.0, steal_percent=40.0, pressure_percent=100.0)
    step = _starved(tally.stats(offered_rps=1000.0, users=20), loop_lag_p99_ms=800.0, lateness_p99_ms=50.0)
    verdict = knee.check_step(step, CRITERIA)
    assert verdict.reason is StopReason.ERRORS
    assert len(verdict.starved) == 5  # every sign seen, none of them changes whose errors these were
    steps = [*curve([500.0]), step]
    found = knee.find_knee(steps, CRITERIA)
    assert (found.reason, found.lower_bound) == (StopReason.ERRORS, False)
    assert knee.verdict_in_words(_report(steps, found)).endswith(
        "errors 10.00% of attempts (5XX 10.00%) at 1,000 RPS exceeded 1.00%"
    )


def test_calls_that_failed_in_a_starved_client_are_the_clients() -> None:
    # Timeouts and calls unfinished at the drain are no answer of the endpoint's.
    tally = Tally()
    for n in range(1000):
        tally.record("client" if n % 10 == 0 else "ok", 5.0, 5.0, 0.0)
    tally.close(1.0, 20.0, offered_rps=900.0)
    step = tally.stats(offered_rps=900.0, users=20)
    assert knee.check_step(step, CRITERIA).reason is StopReason.ERRORS
    assert knee.check_step(_starved(step, loop_lag_p99_ms=30.0), CRITERIA).reason is StopReason.CLIENT_BOUND


def test_a_run_stopped_by_a_starved_generator_reports_a_lower_bound_never_an_slo_failure() -> None:
    steps = [*curve([100.0, 200.0]), _starved(curve([300.0], p99=lambda rps: 71.0)[0], loop_lag_p99_ms=60.0)]
    found = knee.find_knee(steps, CRITERIA)
    assert (found.max_rps, found.reason, found.lower_bound) == (200.0, StopReason.CLIENT_BOUND, True)
    report = _report(steps, found)
    assert report["steps"][2]["generator_starved"] == [
        "woke 60.0 ms late (event-loop lag p99, over 2 ms: 10% of the SLO)"
    ]
    words = knee.verdict_in_words(report)
    assert words == (
        "MAX_RPS 100.0 per instance: a lower bound (client_bound): at 300 RPS the load generator woke 60.0 ms late "
        "(event-loop lag p99, over 2 ms: 10% of the SLO); its latencies and rate were its own, and the endpoint was "
        "not shown to fail"
    )
    assert "exceeded" not in words
    first = knee.find_knee(steps[2:], CRITERIA)
    assert knee.verdict_in_words(_report(steps[2:], first)).endswith(
        "the endpoint was not shown to fail; run the generator where nothing starves it (a quieter host, or more "
        "--processes)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_loop_lag_share": 0.0}, "max_loop_lag_share=0.0 is invalid: allowed: greater than 0"),
        ({"max_cpu_steal_percent": 0.0}, r"max_cpu_steal_percent=0.0 is invalid: allowed: in \(0, 100\]"),
        ({"max_cpu_pressure_percent": 101.0}, r"max_cpu_pressure_percent=101.0 is invalid: allowed: in \(0, 100\]"),
    ],
)
def test_starvation_bounds_refuse_nonsense(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Criteria(**kwargs)


def test_a_progress_line_shows_the_generators_starvation_measures() -> None:
    (step,) = curve([200.0])
    line = knee.step_line(0, _starved(step, loop_lag_p99_ms=0.4, cpu_steal_percent=0.1, cpu_pressure_percent=63.0),
                          knee.Verdict(None))  # fmt: skip
    assert "lag p99 0.4 ms  steal 0.1%  cpu pressure 63%  ok" in line
    assert "steal" not in knee.step_line(0, step, knee.Verdict(None))  # not available: not shown


# --- the figure's title and a one-step run ---------------------------------------------------------------


@pytest.mark.slow  # matplotlib draws the figure
def test_a_long_title_wraps_within_the_figure_and_keeps_the_max_rps_figure() -> None:
    from matplotlib import pyplot as plt

    steps = [*curve([100.0, 200.0]), _starved(curve([300.0], p99=lambda rps: 71.0)[0], loop_lag_p99_ms=60.0,
                                              cpu_steal_percent=30.0, cpu_pressure_percent=99.0)]  # fmt: skip
    report = _report(steps, knee.find_knee(steps, CRITERIA)) | {"run_id": "loadtest-" + "x" * 60}
    words = knee.verdict_in_words(report)
    assert len(words) > 300  # far wider than the figure at the title's size
    drawn = figure.build_figure(report)
    title = drawn._suptitle
    lines = title.get_text().splitlines()
    assert lines[0].startswith("MAX_RPS 100.0 per instance")  # the figure, whole, on the first line
    assert " ".join(lines[:-1]).split() == words.split()  # wrapped, nothing dropped
    renderer = drawn.canvas.get_renderer()
    box = title.get_window_extent(renderer)
    assert drawn.bbox.x0 <= box.x0 and box.x1 <= drawn.bbox.x1 and box.y1 <= drawn.bbox.y1  # inside the figure
    top = max(ax.get_tightbbox(renderer).y1 for ax in drawn.axes)
    assert top <= box.y0  # the panels start below it
    plt.close(drawn)


@pytest.mark.slow  # matplotlib draws the figure
def test_a_one_step_run_draws_its_throughput_as_labelled_bars_from_zero() -> None:
    from matplotlib import pyplot as plt

    steps = curve([150.0], achieved=lambda rps: 148.2)
    drawn = figure.build_figure(_report(steps, knee.find_knee(steps, CRITERIA)))
    (throughput,) = [ax for ax in drawn.axes if ax.get_title() == "Throughput"]
    assert [tick.get_text() for tick in throughput.get_xticklabels()] == ["offered", "achieved"]
    assert [round(bar.get_height(), 1) for bar in throughput.patches] == [150.0, 148.2]
    assert {text.get_text() for text in throughput.texts} >= {"150.0", "148.2"}  # each bar's value
    low, high = throughput.get_ylim()
    assert low == 0 and 150 < high <= 200  # from zero, with room for the labels
    plt.close(drawn)


@pytest.mark.slow  # matplotlib draws the figure
def test_several_rows_per_request_add_a_rows_per_second_axis() -> None:
    from matplotlib import pyplot as plt

    steps = [dataclasses.replace(step, rows_per_request=4) for step in curve([100.0, 200.0])]
    drawn = figure.build_figure(_report(steps, knee.find_knee(steps, CRITERIA)))
    (throughput,) = [ax for ax in drawn.axes if ax.get_title() == "Throughput"]
    assert [child.get_ylabel() for child in throughput.child_axes] == ["rows/s (4 per request)"]
    plt.close(drawn)


def test_title_lines_never_cut_a_word() -> None:
    text = "MAX_RPS 1,234,567.8 per instance: " + "word " * 80
    lines = figure.title_lines(text, width_inches=4)
    assert lines[0].startswith("MAX_RPS 1,234,567.8 per instance:")
    assert " ".join(lines).split() == text.split()
    assert max(len(line) for line in lines) <= int(4 * 72 / (figure.TITLE_POINTS * figure.CHAR_EM))
