"""The simulated day: shards of instances under target tracking, driven second by second by a traffic curve.

Per-request events would not fit (a day at 1M RPS is 86 billion calls), so the model is sampled and fluid:

- arrivals: each second, each shard draws its calls from a Poisson law at its share of the curve (the client
  spreads calls evenly over the shards);
- routing: least outstanding requests spreads a shard's calls evenly over its instances in service;
- latency: the share of a second's calls slower than the SLO from a queueing formula, under two readings of
  the routing that bound it (capacity/queueing.py; tests/test_simulate_queueing.py holds both against per-request
  simulation): "instance", each instance its own M/G/c queue of c workers (the load test measures one instance
  alone, so this is the measured knee; conservative), and "pooled", a shard as one M/G/(n c) queue (what perfect
  least-outstanding-requests routing approaches; optimistic). Calls beyond the shard's capacity queue as a fluid
  backlog, which drains when capacity returns; every call of an overloaded second, or behind a backlog, is slow;
- scaling: Application Auto Scaling's target tracking on SageMakerVariantInvocationsPerInstance (each call adds
  1/instances-in-service to its minute, https://docs.aws.amazon.com/sagemaker/latest/APIReference/
  API_ScalingPolicyMetric.html), its alarms on 1-minute points (out after 3 above the target, in after 15 below
  90% of it: the alarms target tracking creates for this metric, as a user lists them on AWS re:Post,
  https://repost.aws/questions/QUf450Wsd9RROGGOIwaolN9w/sagemaker-autoscaling-delay), the new capacity in
  proportion to the metric (invocations / target), scale-in cooldown, never below the minimum; a larger scale-out
  is never held back by the scale-out cooldown, whose capacity counts in the next scale-out
  (https://docs.aws.amazon.com/autoscaling/application/APIReference/API_TargetTrackingScalingPolicyConfiguration.html);
  new instances serve after a start time; scheduled actions set the minimum and maximum at a time of day.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from capacity.queueing import Floats, Service, erlang_c, halfin_whitt
from capacity.traffic import DAY_SECONDS

MINUTES = DAY_SECONDS // 60
INSTANCE, POOLED = "instance", "pooled"
MODELS = (INSTANCE, POOLED)
# A minute is over the SLO when more than this share of a shard's calls are slower (its p99 is over the SLO).
SLO_SHARE = 0.01


@dataclass(frozen=True)
class Scheduled:
    """A scheduled action: at ``minute`` of the day, set each shard's minimum and/or maximum."""

    minute: int
    min_capacity: int | None = None
    max_capacity: int | None = None
    name: str = ""


@dataclass(frozen=True)
class Fleet:
    """Shards and their scaling: everything the controller needs."""

    shards: int
    min_capacity: int  # per shard
    max_capacity: int  # per shard
    target: float  # SageMakerVariantInvocationsPerInstance, per instance per minute
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60
    start_s: int = 360
    high_points: int = 3
    low_points: int = 15
    low_ratio: float = 0.9
    scheduled: tuple[Scheduled, ...] = ()


@dataclass(frozen=True)
class Instance:
    """One instance as a queue: ``workers`` behind one queue, each call taking a ``service`` time."""

    workers: int
    service: Service
    slo_s: float

    @property
    def capacity_rps(self) -> float:
        return self.workers / self.service.mean_s


@dataclass
class Day:
    """What a simulated day gives, by minute (shards pooled unless said)."""

    calls: Floats
    slow: dict[str, Floats]  # model -> calls slower than the SLO
    worst_share: dict[str, Floats]  # model -> the worst shard's share of slow calls
    instances: Floats  # instances running (in service or starting), all shards, average over the minute
    in_service: Floats
    load_per_instance: Floats  # calls/s per instance in service, the busiest shard's
    scaling_events: int = 0
    scheduled: tuple[Scheduled, ...] = field(default_factory=tuple)

    def minutes_over(self, model: str) -> int:
        return int((self.worst_share[model] > SLO_SHARE).sum())

    def share_over(self, model: str) -> float:
        return float(self.slow[model].sum() / self.calls.sum())

    @property
    def instance_hours(self) -> float:
        return float(self.instances.sum() / 60)


class _Shard:
    """One shard's scaling state between minutes."""

    def __init__(self, desired: int) -> None:
        self.desired = desired
        self.in_service = desired
        self.pending: list[list[int]] = []  # [ready second, count] of starting instances
        self.high = self.low = 0
        self.last_in = self.last_out = -(10**9)

    def starting(self) -> int:
        return sum(count for _, count in self.pending)

    def set_desired(self, new: int, now: int, start_s: int) -> None:
        if new > self.desired:
            self.pending.append([now + start_s, new - self.desired])
        elif new < self.desired:
            drop = self.desired - new
            for entry in sorted(self.pending, key=lambda item: -item[0]):  # the latest to start go first
                taken = min(drop, entry[1])
                entry[1] -= taken
                drop -= taken
            self.pending = [entry for entry in self.pending if entry[1] > 0]
            self.in_service -= drop
        self.desired = new


def _steady(rate: float, fleet: Fleet) -> int:
    return min(max(math.ceil(rate * 60 / fleet.target - 1e-9), fleet.min_capacity), fleet.max_capacity)


def run_day(rates: Floats, fleet: Fleet, instance: Instance, seed: int = 0) -> Day:
    """Simulate a day of ``rates`` (calls/s for each second, all shards) through ``fleet``."""
    rng = np.random.default_rng(seed)
    arrivals = rng.poisson(np.repeat(rates[:, None] / fleet.shards, fleet.shards, axis=1)).astype(np.float64)
    in_service = np.zeros_like(arrivals)
    running = np.zeros((MINUTES, fleet.shards))
    shards = [_Shard(_steady(rates[0] / fleet.shards, fleet)) for _ in range(fleet.shards)]
    bounds = [fleet.min_capacity, fleet.max_capacity]
    actions = {action.minute: action for action in fleet.scheduled}
    events = 0
    for minute in range(MINUTES):
        now = minute * 60
        action = actions.get(minute)
        if action is not None:
            bounds = [action.min_capacity or bounds[0], action.max_capacity or bounds[1]]
            for shard in shards:
                clamped = min(max(shard.desired, bounds[0]), bounds[1])
                if clamped != shard.desired:
                    shard.set_desired(clamped, now, fleet.start_s)
                    events += 1
        for index, shard in enumerate(shards):
            counts = np.full(60, shard.in_service, dtype=np.float64)
            for entry in shard.pending:
                if entry[0] < now + 60:
                    counts[max(entry[0] - now, 0) :] += entry[1]
            shard.pending = [entry for entry in shard.pending if entry[0] >= now + 60]
            shard.in_service = int(counts[-1])
            in_service[now : now + 60, index] = counts
            running[minute, index] = counts.mean() + shard.starting()
            calls = arrivals[now : now + 60, index]
            metric = float((calls / counts).sum())  # SageMakerVariantInvocationsPerInstance of the minute
            shard.high = shard.high + 1 if metric > fleet.target else 0
            shard.low = shard.low + 1 if metric < fleet.low_ratio * fleet.target else 0
            wanted = math.ceil(calls.sum() / fleet.target - 1e-9)
            end = now + 60
            if shard.high >= fleet.high_points and min(wanted, bounds[1]) > shard.desired:
                shard.set_desired(min(wanted, bounds[1]), end, fleet.start_s)
                shard.last_out, events = end, events + 1
            elif (
                shard.low >= fleet.low_points
                and end - shard.last_in >= fleet.scale_in_cooldown_s
                and max(wanted, bounds[0]) < shard.desired
            ):
                shard.set_desired(max(wanted, bounds[0]), end, fleet.start_s)
                shard.last_in, events = end, events + 1
    return _latency(arrivals, in_service, running, instance, events, fleet.scheduled)


def _backlog(arrivals: Floats, capacity: Floats) -> Floats:
    """Calls waiting beyond what the queue formulas cover, at the end of each second (a fluid queue, per shard):
    B_t = max(0, B_(t-1) + arrivals_t - capacity_t), in closed form S_t - min(0, min_(k<=t) S_k)."""
    total = np.cumsum(arrivals - capacity, axis=0)
    return np.asarray(total - np.minimum.accumulate(np.minimum(total, 0.0), axis=0), dtype=np.float64)


@functools.cache
def _integral_table(instance: Instance) -> tuple[Floats, Floats]:
    """I(theta) = integral over [0, SLO] of exp(-theta (SLO - s)) f(s) ds on a log grid of theta."""
    x = instance.slo_s
    grid = np.linspace(0.0, x, 1025)
    density = instance.service.density(grid)
    thetas = np.geomspace(1e-3, 1e7, 1500)
    values = np.trapezoid(np.exp(-thetas[:, None] * (x - grid)[None, :]) * density[None, :], grid, axis=1)
    return np.log(thetas), np.asarray(values, dtype=np.float64)


def slow_share(per_instance_rate: Floats, instances: Floats, instance: Instance, model: str, backlog: Floats) -> Floats:
    """The share of calls slower than the SLO for instances at ``per_instance_rate`` (calls/s): the M/G/c formula,
    per instance or pooled over the shard's ``instances``; 1 when overloaded or behind a ``backlog`` (calls)."""
    service, workers = instance.service, instance.workers
    servers = workers * (instances if model == POOLED else np.ones_like(instances))
    rate = per_instance_rate * (instances if model == POOLED else 1.0)
    offered = rate * service.mean_s
    rho = offered / servers
    waiting = halfin_whitt(servers, rho) if model == POOLED else erlang_c(workers, offered)
    theta = np.maximum(servers / service.mean_s - rate, 1e-3) * 2 / (1 + service.scv)
    log_thetas, table = _integral_table(instance)
    share = service.tail(np.array([instance.slo_s]))[0] + waiting * np.interp(np.log(theta), log_thetas, table)
    # An overloaded second, or one behind a backlog left by overload, counts every call slow: the cautious side.
    return np.asarray(np.where((rho >= 1) | (backlog > 0.5), 1.0, np.minimum(share, 1.0)), dtype=np.float64)


def _latency(
    arrivals: Floats,
    in_service: Floats,
    running: Floats,
    instance: Instance,
    events: int,
    scheduled: tuple[Scheduled, ...],
) -> Day:
    capacity = in_service * instance.capacity_rps
    backlog = _backlog(arrivals, capacity)
    per_instance = arrivals / in_service
    calls = arrivals.reshape(MINUTES, 60, -1)
    slow, worst = {}, {}
    for model in MODELS:
        share = slow_share(per_instance.ravel(), in_service.ravel(), instance, model, backlog.ravel())
        slow_calls = (arrivals.ravel() * share).reshape(MINUTES, 60, -1).sum(axis=1)
        slow[model] = slow_calls.sum(axis=1)
        worst[model] = (slow_calls / np.maximum(calls.sum(axis=1), 1)).max(axis=1)
    return Day(
        calls=calls.sum(axis=(1, 2)),
        slow=slow,
        worst_share=worst,
        instances=running.sum(axis=1),
        in_service=in_service.reshape(MINUTES, 60, -1).mean(axis=1).sum(axis=1),
        load_per_instance=per_instance.reshape(MINUTES, 60, -1).mean(axis=1).max(axis=1),
        scaling_events=events,
        scheduled=scheduled,
    )


def over_minutes(day: Day, model: str = INSTANCE) -> list[int]:
    return [int(minute) for minute in np.flatnonzero(day.worst_share[model] > SLO_SHARE)]


def _episodes(minutes: list[int], gap: int = 30) -> list[tuple[int, int]]:
    """Runs of slow minutes, those closer than ``gap`` minutes joined."""
    runs: list[list[int]] = []
    for minute in minutes:
        if runs and minute - runs[-1][1] <= gap:
            runs[-1][1] = minute
        else:
            runs.append([minute, minute])
    return [(first, last) for first, last in runs]


def suggest_schedule(
    rates: Floats, fleet: Fleet, instance: Instance, day: Day, *, seed: int = 0, attempts: int = 6
) -> tuple[tuple[Scheduled, ...], Day] | None:
    """Scheduled minimums that remove the slow minutes of ``day`` (the conservative model's), and the day with
    them; None when there is nothing to remove. For each run of slow minutes: raise each shard's minimum to what
    target tracking would hold at the run's busiest minute, early enough for the instances to start and the
    alarm's minutes to pass (plus 10 minutes), and lower it back 30 minutes after the run; if minutes stay slow,
    start 10 minutes earlier and hold 10% more, up to ``attempts`` times."""
    slow = over_minutes(day)
    if not slow:
        return None
    per_minute_peak = rates.reshape(MINUTES, 60).max(axis=1) / fleet.shards
    needed = np.ceil(per_minute_peak * 60 / fleet.target - 1e-9)
    lead = math.ceil((fleet.start_s + fleet.high_points * 60) / 60) + 10
    extra = 1.0
    result = day
    schedule: tuple[Scheduled, ...] = ()
    for _ in range(attempts):
        actions: list[Scheduled] = []
        for first, last in _episodes(slow):
            begin = (first - lead) // 5 * 5 % MINUTES
            end = -(-(last + 30) // 5) * 5 % MINUTES
            window = needed[np.arange(first - 5, last + 31) % MINUTES]
            level = min(math.ceil(window.max() * extra), fleet.max_capacity)
            actions += [
                Scheduled(begin, min_capacity=level, name=f"Before{begin // 60:02d}{begin % 60:02d}"),
                Scheduled(end, min_capacity=fleet.min_capacity, name=f"After{end // 60:02d}{end % 60:02d}"),
            ]
        schedule = tuple(sorted({action.minute: action for action in [*fleet.scheduled, *actions]}.values(),
                                key=lambda action: action.minute))  # fmt: skip
        result = run_day(rates, Fleet(**{**fleet.__dict__, "scheduled": schedule}), instance, seed)
        if not over_minutes(result):
            break
        lead, extra = lead + 10, extra * 1.1
    return schedule, result
