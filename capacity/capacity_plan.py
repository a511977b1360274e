"""Plan instance counts, autoscaling settings and cost for a target peak request rate.

    python scripts/capacity_plan.py --peak-rps 1000000 --stage dev
    python scripts/capacity_plan.py --peak-rps 50000 --max-rps-per-instance 1800 --safety 0.5 \\
        --instance-type ml.c5.xlarge

AWS's sizing rule: load-test one instance to find its maximum requests per second (MAX_RPS), plan for
MAX_RPS x SAFETY per instance, and let target tracking hold SageMakerVariantInvocationsPerInstance at
MAX_RPS x SAFETY x 60. So:

    expected instances = ceil(peak / (MAX_RPS x SAFETY))                       (at least the HA minimum)
    min instances      = ceil(trough-fraction x peak / (MAX_RPS x SAFETY))     (at least the HA minimum)
    max instances      = ceil(expected x headroom)

Costs use capacity/data/sagemaker_prices.json (on-demand, us-east-1, source and date per entry); a month
is 730 hours. A type without a price there gets no cost line rather than a guessed one.
Bad input: one line on stderr and exit 2; an unreadable price table: exit 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import OneLineParser, UsageError, one_line, positive_int  # noqa: E402
from stacks import catalog  # noqa: E402

PROG = "capacity_plan"
PRICES = Path(__file__).resolve().parent / "data" / "sagemaker_prices.json"
HOURS_PER_MONTH = 730
# Absorbs float error such as 3 x 0.1 = 0.30000000000000004 before ceil, so an exact fit is not one more.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Probe:
    """A stage's client-path probe (client_probe): a burst per client AZ per run."""

    azs: int
    burst_size: int
    schedule_minutes: int
    memory_mb: int = 256
    # Assumed, not measured: a burst of sub-20 ms calls plus connection setup. The functions' REPORT log
    # lines give the real billed duration.
    seconds_per_run: float = 1.0


@dataclass(frozen=True)
class Inputs:
    peak_rps: float
    max_rps_per_instance: float
    safety: float
    instance_type: str
    min_ha: int = 2
    trough_fraction: float = 0.3
    headroom: float = 1.25
    probe: Probe | None = None


@dataclass(frozen=True)
class Plan:
    """Instance counts and the autoscaling settings that produce them."""

    min_instances: int
    expected_instances: int
    max_instances: int
    rps_per_instance_at_target: float
    invocations_per_instance_target: float


@dataclass(frozen=True)
class Price:
    usd_per_hour: float
    source: str
    read_on: str
    caveat: str | None


def ceil_count(value: float) -> int:
    """Whole instances needed for ``value`` instances' worth of load."""
    return math.ceil(value - _EPSILON)


def instances_for(rps: float, max_rps_per_instance: float, safety: float) -> int:
    """ceil(rps / (MAX_RPS x SAFETY)): instances that carry ``rps`` with each at its target load."""
    return ceil_count(rps / (max_rps_per_instance * safety))


def invocations_target(max_rps_per_instance: float, safety: float) -> float:
    """SageMakerVariantInvocationsPerInstance (per instance per minute) = MAX_RPS x SAFETY x 60."""
    return max_rps_per_instance * safety * 60


def plan(inputs: Inputs) -> Plan:
    """Min (off-peak), expected (peak) and max (peak x headroom) instances; never below the HA minimum,
    and min <= expected <= max."""
    floor = inputs.min_ha
    expected = max(instances_for(inputs.peak_rps, inputs.max_rps_per_instance, inputs.safety), floor)
    trough = instances_for(inputs.peak_rps * inputs.trough_fraction, inputs.max_rps_per_instance, inputs.safety)
    minimum = min(max(trough, floor), expected)
    maximum = max(ceil_count(expected * inputs.headroom), expected)
    return Plan(
        min_instances=minimum,
        expected_instances=expected,
        max_instances=maximum,
        rps_per_instance_at_target=inputs.max_rps_per_instance * inputs.safety,
        invocations_per_instance_target=invocations_target(inputs.max_rps_per_instance, inputs.safety),
    )


def hourly_cost(instances: int, usd_per_hour: float) -> float:
    return instances * usd_per_hour


def monthly_cost(instances: int, usd_per_hour: float) -> float:
    """A month of 730 hours, the figure AWS's pricing examples use."""
    return hourly_cost(instances, usd_per_hour) * HOURS_PER_MONTH


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    """The price table; ValueError (exit 1) if it is not what this script expects."""
    table = json.loads(path.read_text())
    if not isinstance(table, dict) or not isinstance(table.get("prices"), dict):
        raise ValueError(f"{path} has no 'prices' object")
    return table


def price_of(table: dict[str, Any], instance_type: str) -> Price | None:
    entry = table["prices"].get(instance_type)
    if entry is None:
        return None
    return Price(
        usd_per_hour=float(entry["usd_per_hour"]),
        source=str(entry["source"]),
        read_on=str(entry["read_on"]),
        caveat=entry.get("caveat"),
    )


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,}"


def format_plan(inputs: Inputs, result: Plan, price: Price | None, table: dict[str, Any], origin: str) -> list[str]:
    """The plan as text: counts, autoscaling settings, then cost (or why there is none)."""
    lines = [
        f"peak {_number(inputs.peak_rps)} requests/s on {inputs.instance_type}",
        f"  MAX_RPS per instance {_number(inputs.max_rps_per_instance)} ({origin}), safety {inputs.safety}: "
        f"{_number(result.rps_per_instance_at_target)} requests/s per instance at the scaling target",
        f"  instances: min {result.min_instances:,} (off-peak {inputs.trough_fraction:.0%} of peak, HA minimum "
        f"{inputs.min_ha}), expected {result.expected_instances:,} (at peak), max {result.max_instances:,} "
        f"(headroom x{inputs.headroom})",
        "autoscaling settings (stacks/stages.py):",
        f"  AutoscalingSettings(min_capacity={result.min_instances}, max_capacity={result.max_instances}, "
        f"max_rps_per_instance={inputs.max_rps_per_instance:g}, safety_factor={inputs.safety:g})",
        f"  SageMakerVariantInvocationsPerInstance target: {_number(inputs.max_rps_per_instance)} x {inputs.safety:g}"
        f" x 60 = {_number(result.invocations_per_instance_target)} per instance per minute",
    ]
    if inputs.probe is not None:
        lines += probe_lines(inputs.probe, result, table)
    if price is None:
        reason = table.get("missing", {}).get(inputs.instance_type, "not in the table")
        return [*lines, f"cost: no price for {inputs.instance_type} in {PRICES.name} ({reason})"]
    lines.append(
        f"cost, on-demand {table.get('region', '?')}, ${price.usd_per_hour:g} per instance-hour "
        f"(source: {price.source}, read {price.read_on}):"
    )
    lines.append(f"  {'':<10}{'instances':>10}{'per hour':>14}{'per month (730 h)':>20}")
    for name, count in (
        ("min", result.min_instances),
        ("expected", result.expected_instances),
        ("max", result.max_instances),
    ):
        hourly, monthly = hourly_cost(count, price.usd_per_hour), monthly_cost(count, price.usd_per_hour)
        lines.append(f"  {name:<10}{count:>10,}{_money(hourly):>14}{_money(monthly):>20}")
    if price.caveat:
        lines.append(f"  price caveat: {price.caveat}")
    return lines


def probe_lines(probe: Probe, result: Plan, table: dict[str, Any]) -> list[str]:
    """What the probe adds: its share of one instance's load at the scaling target, and its Lambda cost."""
    per_minute = probe.azs * probe.burst_size / probe.schedule_minutes
    share = per_minute / 60 / result.rps_per_instance_at_target
    runs = probe.azs * HOURS_PER_MONTH * 60 / probe.schedule_minutes
    lines = [
        f"client probe: {probe.azs} AZs x {probe.burst_size} invocations every {probe.schedule_minutes} min = "
        f"{_number(per_minute)} invocations per minute, {share:.2%} of one instance's load at the scaling target; "
        "counted in Invocations and the scaling metric like any caller (not excluded)",
    ]
    prices = table.get("lambda")
    if not isinstance(prices, dict):
        return [*lines, f"  probe cost: no Lambda prices in {PRICES.name}"]
    requests = runs / 1e6 * float(prices["usd_per_million_requests"])
    compute = runs * probe.seconds_per_run * probe.memory_mb / 1024 * float(prices["usd_per_gb_second"])
    lines.append(
        f"  probe cost: {_number(runs)} runs per month, {_money(requests + compute)} per month "
        f"(requests {_money(requests)}, {probe.memory_mb} MB x an assumed {probe.seconds_per_run:g} s per run "
        f"{_money(compute)}; Lambda, source: {prices['source']}, read {prices['read_on']}; {prices['caveat']})"
    )
    return lines


def _bounded(name: str, low: float, high: float | None, *, low_open: bool) -> Callable[[str], float]:
    """An argparse type for a finite number in a range, whose message names the range."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
            allowed = f"{bound} and at most {high:g}" if high is not None else bound
            raise argparse.ArgumentTypeError(f"allowed: {allowed}, got {text}")
        return value

    parse.__name__ = name
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    positive = _bounded("positive", 0, None, low_open=True)
    parser.add_argument("--peak-rps", type=positive, required=True, help="target peak requests per second")
    parser.add_argument("--stage", help="take the defaults below from this stage's settings")
    parser.add_argument("--max-rps-per-instance", type=positive, help="measured MAX_RPS of one instance")
    parser.add_argument("--safety", type=_bounded("safety", 0, 1, low_open=True), help="default: stage's, else 0.5")
    parser.add_argument("--instance-type", help="default: the stage's, else ml.c5.xlarge")
    parser.add_argument("--min-ha", type=positive_int, default=2, help="fewest instances ever (default 2, 2 AZs)")
    parser.add_argument(
        "--trough-fraction",
        type=_bounded("fraction", 0, 1, low_open=False),
        default=0.3,
        help="off-peak load as a share of the peak (default 0.3)",
    )
    parser.add_argument(
        "--headroom",
        type=_bounded("headroom", 1, None, low_open=False),
        default=1.25,
        help="max instances = expected x headroom (default 1.25)",
    )
    return parser


def resolve(args: argparse.Namespace) -> tuple[Inputs, str]:
    """Inputs from the arguments, with the stage's settings as defaults; and where MAX_RPS came from."""
    stage_scaling, stage_type, probe = None, None, None
    if args.stage:
        from stacks.settings import SettingsError  # only when a stage is asked for
        from stacks.stages import STAGES, load_stage

        if args.stage not in STAGES:
            raise UsageError(f"no stage {args.stage!r}; allowed: one of {sorted(STAGES)} (stacks/stages.py)")
        try:
            settings = load_stage(args.stage)
        except SettingsError as error:
            raise UsageError(one_line(error)) from None
        stage_scaling, stage_type = settings.autoscaling, settings.instance_type
        if settings.client_probe.enabled:
            probe = Probe(
                len(settings.client_azs), settings.client_probe.burst_size, settings.client_probe.schedule_minutes
            )
    if args.max_rps_per_instance is not None:
        max_rps, origin = args.max_rps_per_instance, "given"
    elif stage_scaling is not None:
        max_rps, origin = stage_scaling.max_rps_per_instance, f"stage {args.stage}'s setting; measure it"
    else:
        raise UsageError("give --max-rps-per-instance (measured on one instance) or --stage")
    safety = args.safety if args.safety is not None else (stage_scaling.safety_factor if stage_scaling else 0.5)
    instance_type = args.instance_type or stage_type or "ml.c5.xlarge"
    if instance_type not in catalog.hosting_instance_types():
        raise UsageError(
            f"--instance-type {instance_type!r} is not a SageMaker real-time instance type "
            "(stacks/data/instance_types.json)"
        )
    inputs = Inputs(
        peak_rps=args.peak_rps,
        max_rps_per_instance=max_rps,
        safety=safety,
        instance_type=instance_type,
        min_ha=args.min_ha,
        trough_fraction=args.trough_fraction,
        headroom=args.headroom,
        probe=probe,
    )
    return inputs, origin


def main(argv: list[str] | None = None) -> int:
    try:
        inputs, origin = resolve(build_parser().parse_args(argv))
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    try:
        table = load_prices(PRICES)
        price = price_of(table, inputs.instance_type)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"{PROG}: cannot read {PRICES}: {one_line(error)}", file=sys.stderr)
        return 1
    print("\n".join(format_plan(inputs, plan(inputs), price, table, origin)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
