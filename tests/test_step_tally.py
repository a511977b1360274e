"""A step's tally: counted by outcome, and merged across generator processes exactly (no percentile of
percentiles)."""

from __future__ import annotations

import math
import random

import pytest
from hdrh.histogram import HdrHistogram

from loadgen import knee
from loadgen.step_tally import Tally, histogram, merged


def nearest_rank(values: list[float], q: float) -> float:
    """The q-th percentile of raw values by the rank HdrHistogram uses: round(q% of n), at least 1."""
    ordered = sorted(values)
    return ordered[max(1, int(q / 100 * len(ordered) + 0.5)) - 1]


def bucket_top_ms(latency_ms: float) -> float:
    """The highest value HdrHistogram's 3 significant digits cannot tell from ``latency_ms`` (in ms)."""
    return float(histogram().get_highest_equivalent_value(round(latency_ms * 1000))) / 1000


def test_a_tally_counts_each_outcome_and_times_only_successful_calls() -> None:
    tally = Tally()
    for kind in ["ok"] * 13 + ["5xx", "5xx", "4xx", "client"]:
        tally.record(kind, 5.0, 4.0, 0.5, message="" if kind == "ok" else f"{kind} failure")
    tally.close(window_seconds=2.0, cpu_percent=40.0)
    stats = tally.stats(offered_rps=10, users=2)
    assert (stats.requests, stats.errors, stats.server_errors, stats.client_errors) == (17, 4, 2, 1)
    assert stats.achieved_rps == 6.5  # successful calls per second of the window
    assert stats.p99_ms == bucket_top_ms(5.0) and stats.service_p99_ms == bucket_top_ms(4.0)
    assert stats.lateness_p99_ms == bucket_top_ms(0.5)
    assert tally.messages == {"5xx failure": 2, "4xx failure": 1, "client failure": 1}
    assert "errors 23.53% (4/17: 5XX 11.76%, 4XX 5.88%)" in knee.step_line(0, stats, knee.Verdict(None))


def test_percentiles_are_the_nearest_ranks_bucket_and_nan_without_calls() -> None:
    tally = Tally()
    for latency in [10.0] * 99 + [300.0]:
        tally.record("ok", latency, latency, 0.0)
    tally.close(1.0, 1.0)
    stats = tally.stats(offered_rps=100, users=1)
    assert (stats.p50_ms, stats.p99_ms) == (bucket_top_ms(10.0), bucket_top_ms(10.0))  # rank 99 of 100
    assert bucket_top_ms(10.0) - 10.0 <= 0.001 * 10.0  # 3 significant digits
    empty = Tally()
    empty.record("5xx", 0, 0, 0)
    empty.close(1.0, 1.0)
    assert math.isnan(empty.stats(offered_rps=100, users=1).p99_ms)


def test_a_call_beyond_the_histograms_range_is_recorded_at_its_top() -> None:
    tally = Tally()
    tally.record("ok", 3_600_000.0, 1.0, 0.0)  # an hour
    assert tally.latency.get_max_value() >= 599_000_000 and tally.latency.get_total_count() == 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merged_tallies_give_the_percentiles_of_the_pooled_calls(seed: int) -> None:
    draw = random.Random(seed)
    processes = []
    pooled: list[float] = []
    for process in range(4):
        tally = Tally()
        calls = draw.randint(500, 5000)  # processes of unequal shares
        for _ in range(calls):
            latency = draw.lognormvariate(math.log(5 + process), 0.6)  # each its own distribution
            pooled.append(latency)
            tally.record("ok", latency, latency / 2, draw.random())
        tally.record("5xx", 0.0, 0.0, 0.0, message="InternalFailure")
        tally.close(window_seconds=10.0 + process, cpu_percent=20.0 * (process + 1))
        processes.append(Tally.from_message(tally.to_message()))  # as a worker's message reaches the master
    total = merged(processes)
    one = HdrHistogram(1, 600_000_000, 3)  # the histogram of the pooled calls, recorded in one place
    for latency in pooled:
        one.record_value(round(latency * 1000))
    stats = total.stats(offered_rps=1000, users=40)
    for q, value in ((50, stats.p50_ms), (90, stats.p90_ms), (99, stats.p99_ms)):
        assert value * 1000 == one.get_value_at_percentile(q)  # exact: merging loses nothing
        raw = nearest_rank(pooled, q)
        assert value == bucket_top_ms(raw) and abs(value - raw) <= 0.001 * raw  # the pooled calls' own
    assert stats.requests == len(pooled) + 4 and stats.server_errors == 4
    assert total.messages == {"InternalFailure": 4}
    assert stats.processes == 4 and stats.client_cpu_percent == 80.0  # the busiest process
    assert stats.achieved_rps == pytest.approx(sum(p.ok / p.window_seconds for p in processes))
    assert stats.process_rps == tuple(p.rates[0] for p in processes)
    # A percentile of the processes' percentiles is not the pooled one: why histograms travel, not p99s.
    per_process_p99 = [p.stats(offered_rps=250, users=10).p99_ms for p in processes]
    assert max(per_process_p99) != stats.p99_ms and min(per_process_p99) != stats.p99_ms


def test_the_event_loops_lag_weighs_a_stall_by_its_length() -> None:
    # 990 wakeups on time and one 500 ms late, every 10 ms: the late one stands for the 49 timers that
    # would have come due during the stall (as the calls whose answers arrived then), so the p99 sees it.
    tally = Tally()
    for _ in range(990):
        tally.record_lag(0.05, 10.0)
    tally.record_lag(500.0, 10.0)
    tally.close(1.0, 1.0)
    assert tally.loop_lag.get_total_count() == 990 + 50
    stats = tally.stats(offered_rps=1, users=1)
    assert stats.loop_lag_max_ms == bucket_top_ms(500.0)
    assert 10.0 < stats.loop_lag_p99_ms < 500.0
    quiet = Tally()
    for _ in range(1000):
        quiet.record_lag(0.05, 10.0)
    quiet.close(1.0, 1.0)
    assert quiet.stats(offered_rps=1, users=1).loop_lag_p99_ms == bucket_top_ms(0.05)


def test_each_process_reports_its_offered_share_and_starvation_and_the_worst_counts() -> None:
    processes = []
    for share, lag, steal, pressure in ((30.0, 0.2, 0.1, 60.0), (30.0, 80.0, None, None), (30.0, 0.3, 2.0, 95.0)):
        tally = Tally()
        tally.record("ok", 5.0, 5.0, 0.0)
        for _ in range(100):
            tally.record_lag(lag, 10.0)
        tally.close(1.0, 10.0, offered_rps=share, steal_percent=steal, pressure_percent=pressure)
        processes.append(Tally.from_message(tally.to_message()))  # as each worker's message reaches the master
    stats = merged(processes).stats(offered_rps=90.0, users=9, rows_per_request=4)
    assert stats.process_offered_rps == (30.0, 30.0, 30.0) and sum(stats.process_offered_rps) == stats.offered_rps
    assert stats.loop_lag_p99_ms == bucket_top_ms(80.0)  # the starved process, not the pooled timers
    assert stats.process_loop_lag_p99_ms == tuple(bucket_top_ms(lag) for lag in (0.2, 80.0, 0.3))
    assert (stats.cpu_steal_percent, stats.cpu_pressure_percent) == (2.0, 95.0)  # a process without them: skipped
    assert stats.rows_per_request == 4


def test_a_process_without_the_machines_counters_reports_none() -> None:
    tally = Tally()
    tally.close(1.0, 1.0)
    stats = Tally.from_message(tally.to_message()).stats(offered_rps=1, users=1)
    assert (stats.cpu_steal_percent, stats.cpu_pressure_percent) == (None, None)
    assert math.isnan(stats.loop_lag_p99_ms) and math.isnan(stats.loop_lag_max_ms)
