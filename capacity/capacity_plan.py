"""Plan a peak rate: endpoint shards, instances per shard, the quotas to request (with the rollout's surge), the
interface endpoint's bandwidth per AZ, the client cores and the monthly cost, one line per figure with its source.

    python scripts/capacity_plan.py --peak-rps 1000000 --max-rps-per-instance 1000 --instance-type ml.c5.xlarge
    python scripts/capacity_plan.py --stage prod --peak-rows-per-second 4000000 --rows-per-request 8 --json

Arithmetic in capacity/sizing.py (instances, shards, cost), capacity/quotas.py (quota names, rollout surge) and
capacity/network.py (bytes, bandwidth, client cores); the page is docs/scale.md. Costs use
capacity/data/sagemaker_prices.json; a type without a price there gets no cost line rather than a guessed one.
Bad input: one line on stderr and exit 2; an unreadable price table: exit 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from capacity import network  # noqa: E402
from capacity.plan_figures import (  # noqa: E402
    Figure,
    Probe,
    Resolved,
    as_json,
    format_text,
    number,
    probe_figures,
    sections,
    settings_line,
)
from capacity.quotas import BLUE_GREEN, ROLLING, ROLLING_BATCH_PERCENT_RANGE, STRATEGIES  # noqa: E402
from capacity.sizing import (  # noqa: E402  (re-exported: tests and callers use capacity_plan's names)
    HOURS_PER_MONTH,
    PRICES,
    SHARD_SEARCH_LIMIT,
    Inputs,
    Plan,
    Price,
    Rollout,
    ShardPlan,
    choose_shards,
    hourly_cost,
    instances_for,
    load_prices,
    monthly_cost,
    plan,
    price_of,
    shard_plan,
)
from cliutil import OneLineParser, UsageError, one_line, positive_int  # noqa: E402
from stacks import catalog  # noqa: E402
from stacks.settings import RolloutSettings  # noqa: E402
from stacks.settings_rules import MAX_INSTANCES, MAX_SHARDS  # noqa: E402

__all__ = ["HOURS_PER_MONTH", "PRICES", "Figure", "Inputs", "Plan", "Price", "Probe", "hourly_cost", "instances_for"]
__all__ += ["load_prices", "main", "monthly_cost", "plan", "price_of", "probe_figures", "shard_plan"]

PROG = "capacity_plan"
DEFAULT_MANIFEST = REPO_ROOT / "model_artifacts" / "model-manifest.json"
# The rolling batch when neither the stage nor --rolling-batch-percent gives one: the settings' default.
DEFAULT_ROLLING_BATCH_PERCENT = float(RolloutSettings().rolling_batch_percent)


# --- arguments -------------------------------------------------------------------------------------------------


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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"allowed: 0 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    positive = _bounded("positive", 0, None, low_open=True)
    low, high = ROLLING_BATCH_PERCENT_RANGE
    peak = parser.add_mutually_exclusive_group()
    peak.add_argument("--peak-rps", type=positive, help="target peak requests per second")
    peak.add_argument("--peak-rows-per-second", type=positive, help="target peak rows per second (with batching)")
    parser.add_argument("--rows-per-request", type=positive_int, default=1, help="rows per call (default 1)")
    parser.add_argument("--stage", help="take the defaults below from this stage's settings")
    parser.add_argument("--max-rps-per-instance", type=positive, help="measured MAX_RPS of one instance")
    parser.add_argument("--safety", type=_bounded("safety", 0, 1, low_open=True), help="default: stage's, else 0.5")
    parser.add_argument("--instance-type", help="default: the stage's, else ml.c5.xlarge")
    parser.add_argument("--min-ha", type=positive_int, default=2, help="fewest instances per shard (default 2, 2 AZs)")
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
    parser.add_argument("--shards", type=positive_int, help="endpoints to spread over (default: the fewest that fit)")
    parser.add_argument(
        "--max-instances-per-shard",
        type=positive_int,
        help=f"bound on a shard's max plus its update's surge (default {MAX_INSTANCES}, the settings')",
    )
    parser.add_argument("--strategy", choices=STRATEGIES, help="rollout: default the stage's, else blue_green")
    parser.add_argument(
        "--rolling-batch-percent",
        type=_bounded("percent", low, high, low_open=False),
        help=f"a rolling step's share of the shard ({low}-{high}; default the stage's, else "
        f"{DEFAULT_ROLLING_BATCH_PERCENT:g})",
    )
    parser.add_argument(
        "--rolling-rollback-batch-percent",
        type=_bounded("percent", low, 100, low_open=False),
        help="a rolling rollback's batch (default the stage's, else the batch; SageMaker's own default is 100)",
    )
    parser.add_argument(
        "--in-use-elsewhere",
        type=_count,
        default=0,
        help="instances of the type other endpoints already run in the region (default 0)",
    )
    parser.add_argument("--azs", type=positive_int, help="client AZs (default: the stage's, else 2)")
    parser.add_argument("--request-bytes", type=positive_int, help="bytes per request on the wire (default: estimate)")
    parser.add_argument("--response-bytes", type=positive_int, help="bytes per response on the wire")
    parser.add_argument(
        "--client-calls-per-core",
        type=positive,
        help="measured client calls per CPU-second (default: the fast client's and boto3's)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON for tools")
    return parser  # fmt: skip


def _stage(name: str) -> Any:
    from stacks.settings import SettingsError  # only when a stage is asked for
    from stacks.stages import STAGES, load_stage

    if name not in STAGES:
        raise UsageError(f"no stage {name!r}; allowed: one of {sorted(STAGES)} (stacks/stages.py)")
    try:
        return load_stage(name)
    except SettingsError as error:
        raise UsageError(one_line(error)) from None


def _max_rps_origin(settings: Any) -> str:
    from stacks.measurements import MEASUREMENTS_FILE, read_measurements
    from stacks.settings import max_rps_is_measured

    if not max_rps_is_measured(settings):
        return f"stage {settings.name} sets it in stacks/stages.py"
    entry = read_measurements(MEASUREMENTS_FILE).get(settings.name)
    if isinstance(entry, dict) and entry.get("instance_type") == settings.instance_type:
        return f"measured: stacks/data/measurements.json ({entry.get('source', 'no source recorded')})"
    return (
        f"the kit's default: stage {settings.name} has no measurement on {settings.instance_type} in "
        "stacks/data/measurements.json; measure it (docs/load-testing.md)"
    )


def _sample_row(settings: Any) -> tuple[str, str]:
    """The manifest's sample payload (one CSV row) and which manifest it came from."""
    path = DEFAULT_MANIFEST
    if settings is not None:
        from stacks.artifact import manifest_path

        path = manifest_path(settings.artifact_path)
    try:
        row = json.loads(path.read_text())["sample_payload"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"no sample_payload in {path}; allowed: give --request-bytes and --response-bytes") from None
    return str(row), str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def resolve(args: argparse.Namespace) -> Resolved:
    """Inputs from the arguments, with the stage's settings as defaults, and the source of each."""
    settings = _stage(args.stage) if args.stage else None
    sources: dict[str, str] = {}
    rows = args.rows_per_request
    if args.peak_rps is not None:
        peak, sources["peak"] = args.peak_rps, "--peak-rps"
    elif args.peak_rows_per_second is not None:
        peak = args.peak_rows_per_second / rows
        sources["peak"] = (
            f"--peak-rows-per-second {number(args.peak_rows_per_second)} / --rows-per-request {rows} "
            f"(MAX_RPS must be measured with {rows}-row requests)"
        )
    else:
        raise UsageError("give --peak-rps, or --peak-rows-per-second (with --rows-per-request)")
    scaling = settings.autoscaling if settings is not None else None
    if args.max_rps_per_instance is not None:
        max_rps, sources["max_rps"] = args.max_rps_per_instance, "--max-rps-per-instance (measured on one instance)"
    elif scaling is not None:
        max_rps, sources["max_rps"] = float(scaling.max_rps_per_instance), _max_rps_origin(settings)
    else:
        raise UsageError("give --max-rps-per-instance (measured on one instance) or --stage")
    if args.safety is not None:
        safety, sources["safety"] = args.safety, "--safety"
    elif scaling is not None:
        safety, sources["safety"] = scaling.safety_factor, f"stage {args.stage}'s safety_factor"
    else:
        safety, sources["safety"] = 0.5, "AWS's starting value"
    instance_type = args.instance_type or (settings.instance_type if settings else "ml.c5.xlarge")
    if instance_type not in catalog.hosting_instance_types():
        raise UsageError(
            f"--instance-type {instance_type!r} is not a SageMaker real-time instance type "
            "(stacks/data/instance_types.json)"
        )
    rollout = _rollout(args, settings, sources)
    sources["shards"] = "--shards" if args.shards else "chosen: the fewest whose max plus surge fit the bound"
    sources["max_shards"] = f"more than the settings' {MAX_SHARDS} (stacks/settings_rules.py MAX_SHARDS): raise it"
    bound = args.max_instances_per_shard or MAX_INSTANCES
    sources["bound"] = (
        "--max-instances-per-shard"
        if args.max_instances_per_shard
        else "the settings' bound per shard (stacks/settings_rules.py MAX_INSTANCES), the surge inside it"
    )
    azs = args.azs or (len(settings.client_azs) if settings is not None and settings.client_azs else 2)
    sources["azs"] = "--azs" if args.azs else (f"stage {args.stage}'s client_azs" if settings else "the HA minimum")
    wire = _wire(args, settings, rows, sources)
    probe = None
    if settings is not None and settings.client_probe.enabled:
        probe_settings = settings.client_probe
        probe = Probe(len(settings.client_azs), probe_settings.burst_size, probe_settings.schedule_minutes)
    inputs = Inputs(peak, max_rps, safety, instance_type, args.min_ha, args.trough_fraction, args.headroom)
    return Resolved(
        inputs=inputs, rollout=rollout, shards=args.shards, bound=bound, azs=azs, wire=wire, rows_per_request=rows,
        in_use_elsewhere=args.in_use_elsewhere, client_calls_per_core=args.client_calls_per_core, probe=probe,
        sources=sources, max_shards=MAX_SHARDS,
    )  # fmt: skip


def _rollout(args: argparse.Namespace, settings: Any, sources: dict[str, str]) -> Rollout:
    stage = settings.rollout if settings is not None else None
    strategy = args.strategy or (stage.strategy if stage is not None else BLUE_GREEN)
    sources["strategy"] = (
        "--strategy" if args.strategy else ("the stage's" if stage is not None else "the kit's default")
    )
    if strategy != ROLLING:
        return Rollout(strategy)
    batch = args.rolling_batch_percent or (stage.rolling_batch_percent if stage else DEFAULT_ROLLING_BATCH_PERCENT)
    rollback = args.rolling_rollback_batch_percent or (stage.rolling_rollback_batch_percent if stage else None)
    return Rollout(ROLLING, float(batch), None if rollback is None else float(rollback))


def _wire(args: argparse.Namespace, settings: Any, rows: int, sources: dict[str, str]) -> network.WireSize:
    estimate = network.WireSize(0, 0)
    row, manifest = "", ""
    if args.request_bytes is None or args.response_bytes is None:
        row, manifest = _sample_row(settings)
        estimate = network.wire_size(row, rows)
    body = f"{rows} x the sample row of {manifest} ({len(row.encode()) + 1} bytes with its newline)"
    sources["request_bytes"] = (
        "--request-bytes"
        if args.request_bytes
        else f"{body} + {network.REQUEST_OVERHEAD_BYTES:,} for SigV4 headers with a session token, TLS and TCP "
        "(capacity/network.py)"
    )
    sources["response_bytes"] = (
        "--response-bytes"
        if args.response_bytes
        else f"{rows} x {network.RESPONSE_BYTES_PER_ROW} per probability + {network.RESPONSE_OVERHEAD_BYTES} for "
        "headers, TLS and TCP (an estimate)"
    )
    return network.WireSize(args.request_bytes or estimate.request, args.response_bytes or estimate.response)


def shard_result(r: Resolved) -> ShardPlan:
    """The shard plan for the given or the chosen shard count; UsageError if it breaks the per-shard bound."""
    if r.shards is None:
        chosen = choose_shards(r.inputs, r.rollout, r.bound)
        if chosen is None:
            raise UsageError(
                f"--max-instances-per-shard {r.bound}: no shard count up to {SHARD_SEARCH_LIMIT} fits a shard's max "
                "plus its surge in it; allowed: a larger bound"
            )
        return chosen
    result = shard_plan(r.inputs, r.shards, r.rollout)
    if result.shard_peak_instances > r.bound:
        fits = choose_shards(r.inputs, r.rollout, r.bound)
        allowed = f"{fits.shards} or more shards" if fits else "more shards"
        raise UsageError(
            f"--shards {r.shards}: a shard's max {result.per_shard.max_instances:,} plus its {r.rollout.strategy} "
            f"surge {result.surge:,} is {result.shard_peak_instances:,}, over the bound of {r.bound:,} per shard; "
            f"allowed: {allowed}, or --max-instances-per-shard"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        resolved = resolve(args)
        result = shard_result(resolved)
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    try:
        table = load_prices(PRICES)
        price = price_of(table, resolved.inputs.instance_type)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"{PROG}: cannot read {PRICES}: {one_line(error)}", file=sys.stderr)
        return 1
    found = sections(resolved, result, price, table)
    settings = settings_line(resolved, result)
    if args.json:
        print(json.dumps(as_json(resolved, result, found, settings), indent=2))
    else:
        print("\n".join(format_text(found, settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
