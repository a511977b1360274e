"""scripts/simulate_day.py: target tracking's timing on known steps, scheduled capacity, overload and its fluid
backlog, the suggested schedule that removes slow minutes, the traffic curves, the load-test report, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from capacity import fleet_sim, simulate, traffic
from capacity.fleet_sim import INSTANCE, POOLED, Fleet, Instance, Scheduled, run_day
from capacity.queueing import ServiceTime
from cliutil import UsageError

SERVICE = ServiceTime.from_percentiles(3, 8)
INSTANCE_4 = Instance(4, SERVICE, 0.020)  # 99% within 20 ms up to about 1,060 calls/s


def _steps(*levels: tuple[int, float]) -> np.ndarray:
    """A day at ``rate`` from each (minute, rate) on."""
    rates = np.zeros(fleet_sim.MINUTES * 60)
    for minute, rate in levels:
        rates[minute * 60 :] = rate
    return rates


# A target of 600 invocations per instance per minute: 10 calls/s per instance. 455 calls/s steadies at 46
# instances (metric 593.5, under the target by more than the minute's Poisson noise).
FLEET = Fleet(shards=1, min_capacity=2, max_capacity=100, target=600, start_s=120)


@pytest.fixture(scope="module")
def stepped() -> fleet_sim.Day:
    # Doubled at minute 60, back at minute 120; a scheduled minimum of 80 at minute 200.
    fleet = Fleet(**{**FLEET.__dict__, "scheduled": (Scheduled(200, min_capacity=80),)})
    return run_day(_steps((0, 455), (60, 910), (120, 455)), fleet, INSTANCE_4, seed=1)


def test_scale_out_after_three_minutes_over_the_target_then_the_start_time(stepped: fleet_sim.Day) -> None:
    # Minutes 60, 61, 62 over the target: at 63:00 the desired count becomes ceil(910 x 60 / 600) = 91, in
    # service 120 s later (65:00).
    assert stepped.in_service[59] == 46
    assert stepped.in_service[64] == 46
    assert stepped.in_service[65] == 91
    assert stepped.instances[63] == 91  # starting instances are paid for


def test_scale_in_after_fifteen_minutes_under_90_percent(stepped: fleet_sim.Day) -> None:
    # From minute 120 the metric is about 455 x 60 / 91 = 300 < 540: the 15th such minute ends at 135:00. (The
    # alarm stayed in ALARM while the 45 instances started, and a noisy minute asked for one more: 92.)
    assert stepped.in_service[134] in (91, 92)
    assert stepped.in_service[135] == 46


def test_a_scheduled_minimum_raises_the_fleet_and_holds_it(stepped: fleet_sim.Day) -> None:
    assert stepped.in_service[199] == 46
    assert stepped.instances[200] == 80  # launched at 200:00, in service 120 s later
    assert stepped.in_service[202] == 80
    assert stepped.in_service[fleet_sim.MINUTES - 1] == 80  # scale-in stops at the minimum


def test_a_fleet_that_keeps_up_has_no_slow_minutes(stepped: fleet_sim.Day) -> None:
    # 910 calls/s on 46 instances is 19.8 per instance for five minutes: far below the knee.
    assert stepped.minutes_over(INSTANCE) == 0
    assert stepped.share_over(INSTANCE) < 1e-5


def test_an_overloaded_shard_is_slow_until_its_backlog_drains() -> None:
    # At most 5 instances (about 6,100 calls/s of capacity) offered 7,000 calls/s from minute 60 to 70.
    fleet = Fleet(shards=1, min_capacity=5, max_capacity=5, target=600, start_s=120)
    day = run_day(_steps((0, 3000), (60, 7000), (70, 3000)), fleet, INSTANCE_4)
    slow = fleet_sim.over_minutes(day)
    # The ten overloaded minutes, and the backlog of about 9,000 s x 900 calls drains at 3,100 calls/s: ~3 more.
    assert slow[0] == 60 and 72 <= slow[-1] <= 74
    assert slow == list(range(60, slow[-1] + 1))
    assert day.minutes_over(POOLED) == len(slow)  # overload is overload whatever the routing


def test_the_fluid_backlog_matches_its_recursion() -> None:
    rng = np.random.default_rng(3)
    arrivals = rng.uniform(0, 10, (500, 2))
    capacity = np.full((500, 2), 5.2)
    expected = np.zeros_like(arrivals)
    level = np.zeros(2)
    for second in range(500):
        level = np.maximum(level + arrivals[second] - capacity[second], 0)
        expected[second] = level
    assert np.allclose(fleet_sim._backlog(arrivals, capacity), expected)


def test_the_suggested_schedule_removes_the_slow_minutes() -> None:
    # A shard holding at most its need at 60% of the peak, then a climb to the peak over ten minutes: target
    # tracking at 0.9 x 1,000 calls/s per instance cannot start instances fast enough.
    rates = traffic.per_second(((0.0, 0.6), (19 + 50 / 60, 0.6), (20.0, 1.0), (22.0, 1.0), (23.0, 0.6))) * 20_000
    fleet = Fleet(shards=1, min_capacity=4, max_capacity=40, target=1000 * 0.9 * 60, start_s=360)
    day = run_day(rates, fleet, INSTANCE_4)
    assert day.minutes_over(INSTANCE) > 0
    suggestion = fleet_sim.suggest_schedule(rates, fleet, INSTANCE_4, day)
    assert suggestion is not None
    schedule, after = suggestion
    assert after.minutes_over(INSTANCE) == 0
    before, back = schedule
    assert before.minute < fleet_sim.over_minutes(day)[0] and back.minute > fleet_sim.over_minutes(day)[-1]
    assert before.min_capacity == 23  # ceil(20,000 / 900): what target tracking holds at the peak
    assert back.min_capacity == 4
    assert after.instance_hours > day.instance_hours


def test_no_schedule_is_suggested_for_a_day_without_slow_minutes(stepped: fleet_sim.Day) -> None:
    assert fleet_sim.suggest_schedule(_steps((0, 455)), FLEET, INSTANCE_4, stepped) is None


# --- the traffic curves ---


def test_a_curve_is_linear_between_its_points_and_wraps_at_midnight() -> None:
    curve = traffic.per_second(((6.0, 100.0), (18.0, 300.0)))
    assert curve[12 * 3600] == pytest.approx(200, abs=0.01)
    assert curve[0] == pytest.approx(200, abs=0.01)  # midnight: halfway from 18:00 back to 06:00
    assert curve.max() == pytest.approx(300, abs=0.01)


def test_the_built_in_evening_curve_peaks_at_prime_time() -> None:
    curve = traffic.builtin("evening", 1_000_000)
    assert curve.max() == pytest.approx(1_000_000)
    assert int(np.argmax(curve)) // 3600 == 20
    assert curve[4 * 3600] == pytest.approx(300_000, rel=1e-4)  # the night trough: the plan's 30% off-peak


def test_a_csv_curve_in_rps_or_as_fractions(tmp_path: Path) -> None:
    path = tmp_path / "day.csv"
    path.write_text("time,rps\n00:00,100\n12:00,500\n")
    curve, peak = traffic.read_curve(path, None)
    assert peak == pytest.approx(500, abs=0.01) and curve[6 * 3600] == pytest.approx(300, abs=0.01)
    path.write_text("time,fraction\n0,0.5\n43200,1\n")
    curve, peak = traffic.read_curve(path, 2000.0)
    assert peak == pytest.approx(2000, abs=0.1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,rps\n00:00,1\n", "the header must be 'time,rps' or 'time,fraction'"),
        ("time,rps\n25:00,1\n01:00,2\n", "line 2: time '25:00'; allowed: HH:MM, HH:MM:SS or seconds since midnight"),
        ("time,rps\n00:00,-1\n01:00,2\n", "line 2: rps '-1'; allowed: a number, 0 or more"),
        ("time,rps\n00:00,1,2\n", "line 2: 3 fields; allowed: 2 (time and rps)"),
        ("time,rps\n00:00,1\n", "allowed: at least 2 points and a peak above 0"),
    ],
)
def test_a_bad_curve_is_named_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "day.csv"
    path.write_text(text)
    with pytest.raises(traffic.CurveError) as raised:
        traffic.read_curve(path, None)
    assert str(raised.value) == f"--curve-csv {path}{':' if not message.startswith('line') else ''} {message}"


# --- the instance model and the load test's report ---


def test_the_fitted_workers_put_the_knee_at_max_rps() -> None:
    workers = simulate.calibrated_workers(1000, SERVICE, 0.020)
    assert workers == 4
    assert simulate.knee(workers, SERVICE, 0.020) >= 1000 > simulate.knee(workers - 1, SERVICE, 0.020)


def _report(tmp_path: Path, steps: list[dict[str, Any]]) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"steps": steps, "result": {"max_rps_per_instance": 850.0}}))
    return path


def test_the_service_time_comes_from_the_reports_least_loaded_good_step(tmp_path: Path) -> None:
    steps = [
        {"step": 1, "offered_rps": 400, "ok": True, "p50_ms": 2.0, "p99_ms": 9.0, "service_p99_ms": 6.0},
        {"step": 2, "offered_rps": 200, "ok": True, "p50_ms": 1.5, "p99_ms": 5.0, "service_p99_ms": 4.5},
        {"step": 3, "offered_rps": 100, "ok": False, "p50_ms": 1.0, "p99_ms": 50.0},
    ]
    service, max_rps, source = simulate.service_from_report(_report(tmp_path, steps))
    assert service.percentile_s(0.5) == pytest.approx(0.0015)
    assert service.percentile_s(0.99) == pytest.approx(0.0045)
    assert max_rps == 850.0
    assert source.startswith("report.json, step 2 at 200 RPS")


def test_a_report_without_a_good_step_is_refused(tmp_path: Path) -> None:
    path = _report(tmp_path, [{"step": 1, "offered_rps": 100, "ok": False, "p50_ms": 1.0, "p99_ms": 50.0}])
    with pytest.raises(UsageError, match=r"no step met the criteria; allowed: a loadgen report\.json"):
        simulate.service_from_report(path)


# --- the command ---


def test_the_command_prints_the_day_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--stage", "prod", "--peak-rps", "40000", "--safety", "0.9", "--start-seconds", "600", "--json"]
    assert simulate.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["hourly"]) == 24
    assert result["day"]["calls"] == pytest.approx(traffic.builtin("evening", 40_000).sum(), rel=1e-3)
    assert result["day"]["minutes_over_instance"] > 0
    assert result["with_schedule"]["minutes_over_instance"] == 0
    assert all(line.startswith('ScheduledCapacity(name="') for line in result["schedule"])


def test_the_command_prints_the_day_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate.main(["--stage", "dev", "--peak-rps", "20000", "--schedule", "19:30=30"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("simulated day: stage dev, built-in 'evening' to 20,000 requests/s (times in UTC)")
    assert "minutes over SLO  0 of 1,440" in out
    assert '  scheduled         ScheduledCapacity(name="Given1930", cron="cron(30 19 * * ? *)", min_capacity=30)' in out
    assert "scheduled capacity: none needed" in out
    assert out.rstrip().splitlines()[-1].startswith("simulated 86,400 seconds x 1 shards in ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stage", "staging"], "--stage 'staging'; allowed: one of"),
        (["--schedule", "19:30"], "argument --schedule: '19:30'; allowed: HH:MM=MIN, e.g. 19:30=300"),
        (["--schedule", "7pm=30"], "argument --schedule: time '7pm'; allowed: HH:MM"),
        (["--schedule", "24:00=30"], "argument --schedule: time '24:00'; allowed: HH:MM"),
        (["--schedule", "19:00=0"], "argument --schedule: '19:00=0'; allowed: a minimum of 1 or more"),
        (["--peak-rps", "-1"], "argument --peak-rps: allowed: greater than 0, got -1"),
        (["--safety", "1.5"], "--safety 1.5; allowed: greater than 0 and at most 1"),
        (["--min-capacity", "900", "--max-capacity", "10"], "--min-capacity 900 is above the max capacity 10"),
        (["--curve-csv", "/nonexistent/day.csv"], "--curve-csv /nonexistent/day.csv: cannot read it"),
        (["--curve", "morning"], "argument --curve: invalid choice: 'morning'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"simulate_day: {message}") and err.count("\n") == 1, err
