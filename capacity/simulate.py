"""Simulate a day of a sharded fleet before paying for it: the minutes and share of calls over the latency SLO
under target tracking, and the scheduled capacity that removes them.

    python scripts/simulate_day.py                                  # prod's settings, evening ramp to 1M RPS
    python scripts/simulate_day.py --stage prod --safety 0.7 --load-test-report bench-results/RUN/report.json
    python scripts/simulate_day.py --curve-csv day.csv --peak-rps 400000 --schedule 19:30=300 --json

The stage gives the SLO, MAX_RPS, the safety factor, the cooldowns and the time zone; the capacity plan
(capacity/sizing.py) gives the shards and each shard's minimum and maximum for the peak; the model is
capacity/fleet_sim.py, its page docs/scale.md. Bad input: one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from capacity import traffic  # noqa: E402
from capacity.fleet_sim import (  # noqa: E402
    INSTANCE,
    MINUTES,
    MODELS,
    Day,
    Fleet,
    Instance,
    Scheduled,
    run_day,
    slow_share,
    suggest_schedule,
)
from capacity.queueing import ServiceTime  # noqa: E402
from capacity.sizing import Inputs, Rollout, choose_shards, shard_plan  # noqa: E402
from cliutil import OneLineParser, UsageError, one_line, positive_int  # noqa: E402
from stacks.settings_rules import DEFAULT_MAX_RPS_PER_INSTANCE, MAX_INSTANCES  # noqa: E402

PROG = "simulate_day"
# The service time when no load-test report is given. Assumed, not measured: a 4-vCPU ml.c5.xlarge answering the
# kit's default MAX_RPS of 1,000 spends about 4 vCPU-ms per call, of which the model itself takes 0.25 ms
# (make bench-model) and the container's HTTP stack the rest. Replace it with your load test's (--load-test-report).
DEFAULT_SERVICE_P50_MS = 3.0
DEFAULT_SERVICE_P99_MS = 8.0
# SageMaker publishes no figure for how long a scale-out takes to serve; read yours from the scaling activities'
# StartTime and EndTime (aws application-autoscaling describe-scaling-activities --service-namespace sagemaker).
DEFAULT_START_SECONDS = 360
MAX_WORKERS = 256


@dataclass(frozen=True)
class Setup:
    """Everything one simulated day needs, with the sources the report names."""

    rates: np.ndarray
    curve: str
    fleet: Fleet
    instance: Instance
    service: ServiceTime
    max_rps: float
    safety: float
    instance_type: str
    time_zone: str
    service_source: str
    workers_source: str
    stage: str | None


def service_from_report(path: Path) -> tuple[ServiceTime, float | None, str]:
    """The service time a load test measured: its lowest-offered step that met the criteria (the least
    queueing), p50 and the p99 from the actual sends; and the report's MAX_RPS per instance."""
    try:
        report = json.loads(path.read_text())
        steps = [step for step in report["steps"] if step.get("ok") and step.get("p50_ms")]
        if not steps:
            raise ValueError("no step met the criteria")
        step = min(steps, key=lambda item: item["offered_rps"])
        p99 = step.get("service_p99_ms") or step["p99_ms"]
        service = ServiceTime.from_percentiles(float(step["p50_ms"]), float(p99))
        max_rps = report.get("result", {}).get("max_rps_per_instance")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"--load-test-report {path}: {one_line(error)}; allowed: a loadgen report.json") from None
    source = f"{path.name}, step {step['step']} at {step['offered_rps']:,.0f} RPS (p50 and p99 from the sends)"
    return service, (float(max_rps) if max_rps else None), source


def knee(workers: int, service: ServiceTime, slo_s: float) -> float:
    """The highest per-instance rate at which at most 1% of calls are slower than the SLO (instance model)."""
    low, high = 0.0, workers / service.mean_s
    for _ in range(30):
        middle = (low + high) / 2
        share = slow_share(np.array([middle]), np.ones(1), Instance(workers, service, slo_s), INSTANCE, np.zeros(1))
        low, high = (middle, high) if share[0] <= 0.01 else (low, middle)
    return low


def calibrated_workers(max_rps: float, service: ServiceTime, slo_s: float) -> int:
    """The fewest workers for which one instance at MAX_RPS keeps 99% of calls within the SLO: the model
    instance's knee is then the measured one (or just above it)."""
    for workers in range(1, MAX_WORKERS + 1):
        if knee(workers, service, slo_s) >= max_rps:
            return workers
    raise UsageError(
        f"MAX_RPS {max_rps:g} per instance: no instance of up to {MAX_WORKERS} workers with this service time meets "
        "the SLO at it; allowed: a smaller MAX_RPS, a faster service time or --workers"
    )


def _clock(text: str) -> int:
    try:
        hours, minutes = (int(part) for part in text.split(":"))
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"time {text!r}; allowed: HH:MM") from None
    return hours * 60 + minutes


def _scheduled(text: str) -> Scheduled:
    """'HH:MM=MIN' (each shard's minimum from then on)."""
    when, _, value = text.partition("=")
    try:
        minimum = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: HH:MM=MIN, e.g. 19:30=300") from None
    if minimum < 1:
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: a minimum of 1 or more")
    return Scheduled(_clock(when), min_capacity=minimum, name=f"Given{when.replace(':', '')}")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"allowed: greater than 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="prod", help="SLO, MAX_RPS, safety, cooldowns, time zone (default prod)")
    parser.add_argument("--peak-rps", type=_positive, default=1_000_000.0, help="the curve's peak (default 1M)")
    curve = parser.add_mutually_exclusive_group()
    curve.add_argument("--curve", choices=sorted(traffic.CURVES), default="evening", help="built-in curve")
    curve.add_argument("--curve-csv", type=Path, help="a day as CSV: time,rps or time,fraction (of --peak-rps)")
    parser.add_argument("--load-test-report", type=Path, help="a loadgen report.json: its service time and MAX_RPS")
    parser.add_argument("--max-rps-per-instance", type=_positive, help="default: the report's, else the stage's")
    parser.add_argument("--safety", type=_positive, help="default: the stage's safety_factor")
    parser.add_argument("--workers", type=positive_int, help="calls one instance serves at once (default: fitted)")
    parser.add_argument("--shards", type=positive_int, help="default: the capacity plan's")
    parser.add_argument("--min-capacity", type=positive_int, help="per shard (default: the plan's)")
    parser.add_argument("--max-capacity", type=positive_int, help="per shard (default: the plan's)")
    parser.add_argument(
        "--start-seconds",
        type=positive_int,
        default=DEFAULT_START_SECONDS,
        help=f"until a new instance serves (default {DEFAULT_START_SECONDS}, assumed)",
    )
    parser.add_argument(
        "--schedule",
        type=_scheduled,
        action="append",
        default=[],
        help="HH:MM=MIN: each shard's minimum from then on (repeat)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the arrivals' random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser  # fmt: skip


def setup(args: argparse.Namespace) -> Setup:
    from stacks.settings import SettingsError
    from stacks.stages import STAGES, load_stage

    if args.stage not in STAGES:
        raise UsageError(f"--stage {args.stage!r}; allowed: one of {sorted(STAGES)} (stacks/stages.py)")
    try:
        settings = load_stage(args.stage)
    except SettingsError as error:
        raise UsageError(one_line(error)) from None
    scaling, slo_s = settings.autoscaling, settings.latency_slo_ms / 1000
    if args.curve_csv is not None:
        try:
            rates, peak = traffic.read_curve(args.curve_csv, args.peak_rps)
        except traffic.CurveError as error:
            raise UsageError(str(error)) from None
        curve = f"{args.curve_csv.name} (peak {peak:,.0f} requests/s)"
    else:
        rates, peak = traffic.builtin(args.curve, args.peak_rps), args.peak_rps
        curve = f"built-in '{args.curve}' to {peak:,.0f} requests/s"
    service = ServiceTime.from_percentiles(DEFAULT_SERVICE_P50_MS, DEFAULT_SERVICE_P99_MS)
    service_source, report_max_rps = "the kit's default (no --load-test-report): assumed", None
    if args.load_test_report is not None:
        service, report_max_rps, service_source = service_from_report(args.load_test_report)
    max_rps = (
        args.max_rps_per_instance or report_max_rps or scaling.max_rps_per_instance or DEFAULT_MAX_RPS_PER_INSTANCE
    )
    safety = args.safety or scaling.safety_factor
    if safety > 1:
        raise UsageError(f"--safety {safety:g}; allowed: greater than 0 and at most 1")
    if args.workers:
        workers, workers_source = args.workers, "--workers"
    else:
        workers, workers_source = calibrated_workers(max_rps, service, slo_s), "fitted: the knee at MAX_RPS"
    inputs = Inputs(peak, max_rps, safety, settings.instance_type)
    stage_rollout = settings.rollout
    rollback = stage_rollout.rolling_rollback_batch_percent
    rollout = Rollout(stage_rollout.strategy, float(stage_rollout.rolling_batch_percent), rollback and float(rollback))
    planned = shard_plan(inputs, args.shards, rollout) if args.shards else choose_shards(inputs, rollout, MAX_INSTANCES)
    if planned is None:
        raise UsageError(f"--peak-rps {peak:g}: no shard count fits the settings' bound; allowed: give --shards")
    minimum = args.min_capacity or planned.per_shard.min_instances
    maximum = args.max_capacity or planned.per_shard.max_instances
    if minimum > maximum:
        raise UsageError(f"--min-capacity {minimum} is above the max capacity {maximum}; allowed: at most {maximum}")
    fleet = Fleet(
        shards=planned.shards, min_capacity=minimum, max_capacity=maximum, target=max_rps * safety * 60,
        scale_in_cooldown_s=scaling.scale_in_cooldown_seconds, scale_out_cooldown_s=scaling.scale_out_cooldown_seconds,
        start_s=args.start_seconds, scheduled=tuple(sorted(args.schedule, key=lambda action: action.minute)),
    )  # fmt: skip
    return Setup(
        rates=rates, curve=curve, fleet=fleet, instance=Instance(workers, service, slo_s), service=service,
        max_rps=max_rps, safety=safety, instance_type=settings.instance_type, time_zone=scaling.time_zone,
        service_source=service_source, workers_source=workers_source, stage=args.stage,
    )  # fmt: skip


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def cron_line(action: Scheduled) -> str:
    """The action as the settings spell it (stacks/settings.py ScheduledCapacity)."""
    cron = f"cron({action.minute % 60} {action.minute // 60} * * ? *)"
    return f'ScheduledCapacity(name="{action.name}", cron="{cron}", min_capacity={action.min_capacity})'


def hourly(day: Day, rates: np.ndarray) -> list[dict[str, Any]]:
    """The day's table: one row per hour."""
    rows = []
    for hour in range(24):
        minutes = slice(hour * 60, hour * 60 + 60)
        rows.append({
            "starts": f"{hour:02d}:00",
            "peak_rps": float(rates[hour * 3600: hour * 3600 + 3600].max()),
            "instances_max": float(day.instances[minutes].max()),
            "load_per_instance_max": float(day.load_per_instance[minutes].max()),
            **{f"minutes_over_{m}": int((day.worst_share[m][minutes] > 0.01).sum()) for m in MODELS},
            "share_over_instance": float(day.slow[INSTANCE][minutes].sum() / day.calls[minutes].sum()),
        })  # fmt: skip
    return rows


def summary(day: Day) -> dict[str, Any]:
    worst = int(np.argmax(day.worst_share[INSTANCE]))
    return {
        "calls": float(day.calls.sum()),
        **{f"minutes_over_{m}": day.minutes_over(m) for m in MODELS},
        **{f"share_over_{m}": day.share_over(m) for m in MODELS},
        "worst_minute": _hhmm(worst),
        "worst_minute_share": float(day.worst_share[INSTANCE][worst]),
        "worst_minute_load_per_instance": float(day.load_per_instance[worst]),
        "instance_hours": day.instance_hours,
        "scaling_activities": day.scaling_events,
    }


def report_lines(s: Setup, day: Day, suggestion: tuple[tuple[Scheduled, ...], Day] | None, seconds: float) -> list[str]:
    f, i, d = s.fleet, s.instance, summary(day)
    service = s.service
    lines = [
        f"simulated day: stage {s.stage}, {s.curve} (times in {s.time_zone}), {f.shards} shards of {s.instance_type}",
        f"  instance          {i.workers} workers ({s.workers_source}), service p50 {service.median_s * 1000:.1f} ms, "
        f"p99 {service.percentile_s(0.99) * 1000:.1f} ms ({s.service_source}); 99% within {i.slo_s * 1000:g} ms up "
        f"to {knee(i.workers, service, i.slo_s):,.0f} calls/s (MAX_RPS {s.max_rps:,.0f})",
        f"  scaling           target {f.target:,.0f} invocations per instance per minute ({s.max_rps:,.0f} x "
        f"{s.safety:g} x 60); per shard min {f.min_capacity}, max {f.max_capacity}; out after {f.high_points} "
        f"one-minute points over, in after {f.low_points} under {f.low_ratio:.0%}, in-cooldown "
        f"{f.scale_in_cooldown_s} s; instances serve {f.start_s} s after launch",
        *[f"  scheduled         {cron_line(action)} (--schedule)" for action in f.scheduled],
        f"  calls             {d['calls'] / 1e9:,.2f} billion",
        f"  minutes over SLO  {d['minutes_over_instance']} of {MINUTES:,} with instances as separate queues "
        f"(conservative), {d['minutes_over_pooled']} pooled (ideal least-outstanding routing)",
        f"  calls over SLO    {d['share_over_instance']:.4%} separate, {d['share_over_pooled']:.4%} pooled",
        f"  worst minute      {d['worst_minute']}: {d['worst_minute_share']:.2%} of the busiest shard's calls over "
        f"the SLO, {d['worst_minute_load_per_instance']:,.0f} calls/s per instance",
        f"  instance-hours    {d['instance_hours']:,.0f} ({d['scaling_activities']} scaling activities)",
    ]
    if suggestion is None:
        lines.append("scheduled capacity: none needed (no minute over the SLO)")
    else:
        schedule, after = suggestion
        lines.append(f"scheduled capacity that removes them (each shard; crons in {s.time_zone}):")
        lines += [f"  {cron_line(action)}" for action in schedule]
        lines.append(
            f"  with them: {after.minutes_over(INSTANCE)} minutes over, {after.share_over(INSTANCE):.4%} of calls, "
            f"{after.instance_hours:,.0f} instance-hours ({after.instance_hours - day.instance_hours:+,.0f})"
        )
    lines.append("hour  peak requests/s  instances (max)  calls/s per instance (max)  minutes over  share over")
    for row in hourly(day, s.rates):
        lines.append(
            f"{row['starts'][:2]:>4}  {row['peak_rps']:>15,.0f}  {row['instances_max']:>15,.0f}  "
            f"{row['load_per_instance_max']:>26,.0f}  {row['minutes_over_instance']:>12}  "
            f"{row['share_over_instance']:>10.4%}"
        )
    lines.append(f"simulated {MINUTES * 60:,} seconds x {f.shards} shards in {seconds:.1f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        s = setup(args)
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    day = run_day(s.rates, s.fleet, s.instance, args.seed)
    suggestion = suggest_schedule(s.rates, s.fleet, s.instance, day, seed=args.seed)
    seconds = time.perf_counter() - began
    if args.json:
        result: dict[str, Any] = {"day": summary(day), "hourly": hourly(day, s.rates), "seconds": round(seconds, 2)}
        if suggestion is not None:
            result["schedule"] = [cron_line(action) for action in suggestion[0]]
            result["with_schedule"] = summary(suggestion[1])
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(report_lines(s, day, suggestion, seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
