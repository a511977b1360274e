"""The capacity plan's figures: one line each, with its unit and source, in sections a team reads in order
(rates, shards, quotas, network, client CPU, cost, probe); as aligned text or as JSON for tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from capacity import network
from capacity.quotas import ACCOUNT_WIDE_QUOTA, BLUE_GREEN, QUOTA_SERVICE, ROLLING, instance_type_quota
from capacity.sizing import HOURS_PER_MONTH, PRICES, Inputs, Plan, Price, Rollout, ShardPlan, monthly_cost

BLUE_GREEN_DOC = "https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green.html"
ROLLING_DOC = "https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-rolling.html"


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
class Figure:
    """One line of the plan: a figure, its unit and where it comes from."""

    key: str
    label: str
    value: Any
    text: str
    unit: str
    source: str


@dataclass
class Resolved:
    """The plan's inputs after the arguments and the stage's settings, with where each came from."""

    inputs: Inputs
    rollout: Rollout
    shards: int | None
    bound: int
    azs: int
    wire: network.WireSize
    rows_per_request: int
    in_use_elsewhere: int
    client_calls_per_core: float | None
    probe: Probe | None = None
    sources: dict[str, str] = field(default_factory=dict)
    max_shards: int = 10


def number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,}"


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _figure(key: str, label: str, value: Any, unit: str, source: str, text: str | None = None) -> Figure:
    shown = text if text is not None else (number(value) if isinstance(value, int | float) else str(value))
    return Figure(key, label, value, shown, unit, source)


# --- the figures -----------------------------------------------------------------------------------------------


def rate_figures(r: Resolved, result: ShardPlan) -> list[Figure]:
    inputs, per = r.inputs, result.per_shard
    return [
        _figure("peak_rps", "peak rate", inputs.peak_rps, "requests/s", r.sources["peak"]),
        _figure("max_rps_per_instance", "MAX_RPS per instance", inputs.max_rps_per_instance, "requests/s",
                r.sources["max_rps"]),
        _figure("rps_per_instance_at_target", "per instance at the scaling target", per.rps_per_instance_at_target,
                "requests/s", f"MAX_RPS x safety {inputs.safety:g} ({r.sources['safety']})"),
        _figure("invocations_per_instance_target", "SageMakerVariantInvocationsPerInstance",
                per.invocations_per_instance_target, "per minute",
                f"{number(inputs.max_rps_per_instance)} x {inputs.safety:g} x 60: AWS's target-tracking rule"),
    ]  # fmt: skip


def shard_figures(r: Resolved, result: ShardPlan) -> list[Figure]:
    inputs, per, rollout = r.inputs, result.per_shard, r.rollout
    if rollout.strategy == BLUE_GREEN:
        surge_source = f"blue/green provisions one shard's whole new fleet beside the old ({BLUE_GREEN_DOC})"
        strategy_text = BLUE_GREEN
    else:
        rollback = rollout.rollback_batch_percent
        batch = (
            f"{rollout.batch_percent:g}%"
            if rollback is None
            else f"{rollout.batch_percent:g}% (rollback {rollback:g}%)"
        )
        surge_source = (
            f"the larger of a rolling batch and a rollback batch, {batch} of the shard's max, rounded up ("
            f"SageMaker's rollback default, 100%, would bring a whole fleet back at once) ({ROLLING_DOC})"
        )
        strategy_text = f"{ROLLING} {rollout.batch_percent:g}%"
    shard_peak = inputs.peak_rps / result.shards
    return [
        _figure("strategy", "rollout", rollout.strategy, "", f"{r.sources['strategy']}; shard by shard, never two "
                "at once", text=strategy_text),
        _figure("shards", "shards (endpoints)", result.shards, "", r.sources["shards"]
                + (f"; {r.sources['max_shards']}" if result.shards > r.max_shards else "")),
        _figure("surge", "rollout surge per shard update", result.surge, "instances", surge_source),
        _figure("per_shard_bound", "bound per shard (max + surge)", r.bound, "instances", r.sources["bound"]),
        _figure("per_shard_min", "instances per shard, min", per.min_instances, "",
                f"{inputs.trough_fraction:.0%} of the shard's peak at the target, at least {inputs.min_ha} (HA; "
                "--trough-fraction, --min-ha)"),
        _figure("per_shard_expected", "instances per shard, expected", per.expected_instances, "",
                f"the shard's peak {number(round(shard_peak, 1))} / {number(per.rps_per_instance_at_target)}"),
        _figure("per_shard_max", "instances per shard, max", per.max_instances, "",
                f"expected x {inputs.headroom:g} headroom (--headroom)"),
        _figure("fleet", "fleet, min / expected / max", result.fleet_expected, "instances",
                f"{result.shards} shards x the above",
                text=f"{result.fleet_min:,} / {result.fleet_expected:,} / {result.fleet_max:,}"),
    ]  # fmt: skip


def quota_figures(r: Resolved, result: ShardPlan) -> list[Figure]:
    total = result.quota_need + r.in_use_elsewhere
    parts = (
        f"{result.shards} shards x max {result.per_shard.max_instances:,} + one shard's surge {result.surge:,} + "
        f"{r.in_use_elsewhere:,} in use elsewhere (--in-use-elsewhere)"
    )
    return [
        _figure("quota_instance_type", f"'{instance_type_quota(r.inputs.instance_type)}'", total, "instances", parts),
        _figure("quota_account_wide", f"'{ACCOUNT_WIDE_QUOTA}'", total, "instances",
                "the same instances: it counts every type (add other types' endpoints); make preflight reads both"),
    ]  # fmt: skip


def network_figures(r: Resolved) -> list[Figure]:
    per_az = network.gbps(r.inputs.peak_rps, r.wire.both) / r.azs
    return [
        _figure("request_bytes", "request on the wire", r.wire.request, "bytes", r.sources["request_bytes"]),
        _figure("response_bytes", "response on the wire", r.wire.response, "bytes", r.sources["response_bytes"]),
        _figure("gbps_per_az", "interface endpoint per AZ at peak", round(per_az, 2), "Gbps",
                f"both directions over {r.azs} client AZs ({r.sources['azs']}): "
                f"{network.bandwidth_verdict(per_az)} (docs.aws.amazon.com/vpc/latest/privatelink/"
                "vpc-limits-endpoints.html)", text=f"{per_az:,.2f}"),
    ]  # fmt: skip


def client_figures(r: Resolved) -> list[Figure]:
    peak = r.inputs.peak_rps
    if r.client_calls_per_core is not None:
        rate = r.client_calls_per_core
        return [
            _figure("client_cores", "client cores for the calls", network.client_cores(peak, rate), "cores",
                    f"{number(rate)} calls per CPU-second (--client-calls-per-core)")
        ]  # fmt: skip
    clients = (
        ("client_cores_fast", "client cores, the kit's fast client", network.FAST_CLIENT_CALLS_PER_CORE),
        ("client_cores_boto3", "client cores, boto3", network.BOTO3_CALLS_PER_CORE),
    )
    return [
        _figure(key, label, network.client_cores(peak, rate), "cores",
                f"{number(rate)} calls per CPU-second (docs/client-latency.md; loopback, no TLS: measure yours)")
        for key, label, rate in clients
    ]  # fmt: skip


def cost_figures(r: Resolved, result: ShardPlan, price: Price | None, table: dict[str, Any]) -> list[Figure]:
    kind = r.inputs.instance_type
    if price is None:
        reason = table.get("missing", {}).get(kind, "not in the table")
        return [_figure("cost", "cost", "no price", "", f"{kind} in {PRICES.name}: {reason}")]
    figures = [
        _figure("price_per_hour", "price per instance-hour", price.usd_per_hour, "USD",
                f"on-demand {table.get('region', '?')}: {price.source}, read {price.read_on}"
                + (f"; {price.caveat}" if price.caveat else ""), text=f"${price.usd_per_hour:g}"),
    ]  # fmt: skip
    figures += [
        _figure(f"monthly_cost_{name}", f"per month, fleet at {name} all month",
                round(monthly_cost(count, price.usd_per_hour), 2), "USD",
                f"{count:,} instances x ${price.usd_per_hour:g} x {HOURS_PER_MONTH} h",
                text=_money(monthly_cost(count, price.usd_per_hour)))
        for name, count in (("min", result.fleet_min), ("expected", result.fleet_expected), ("max", result.fleet_max))
    ]  # fmt: skip
    return figures


def probe_figures(probe: Probe, per_shard: Plan, table: dict[str, Any]) -> list[Figure]:
    """What the probe adds: its share of one instance's load at the scaling target, and its Lambda cost."""
    per_minute = probe.azs * probe.burst_size / probe.schedule_minutes
    share = per_minute / 60 / per_shard.rps_per_instance_at_target
    runs = probe.azs * HOURS_PER_MONTH * 60 / probe.schedule_minutes
    figures = [
        _figure("probe_invocations_per_minute", "client probe", per_minute, "calls/minute",
                f"{probe.azs} AZs x {probe.burst_size} every {probe.schedule_minutes} min: {share:.2%} of one "
                "instance's load at the target, counted in Invocations and the scaling metric like any caller"),
    ]  # fmt: skip
    prices = table.get("lambda")
    if not isinstance(prices, dict):
        return [*figures, _figure("probe_cost", "client probe cost", "no price", "", f"no Lambda prices in {PRICES}")]
    requests = runs / 1e6 * float(prices["usd_per_million_requests"])
    compute = runs * probe.seconds_per_run * probe.memory_mb / 1024 * float(prices["usd_per_gb_second"])
    source = (
        f"{number(runs)} runs: requests {_money(requests)}, {probe.memory_mb} MB x an assumed "
        f"{probe.seconds_per_run:g} s per run {_money(compute)} (Lambda: {prices['source']}, read "
        f"{prices['read_on']}; {prices['caveat']})"
    )
    cost = requests + compute
    return [*figures, _figure("probe_cost", "client probe per month", round(cost, 2), "USD", source, _money(cost))]


def sections(
    r: Resolved, result: ShardPlan, price: Price | None, table: dict[str, Any]
) -> list[tuple[str, list[Figure]]]:
    """The plan's figures by section, in the order a team reads them."""
    region = f"region {table.get('region', '?')} prices" if price else "no price"
    found: list[tuple[str, list[Figure]]] = [
        (f"capacity plan: {number(r.inputs.peak_rps)} requests/s at peak on {r.inputs.instance_type}",
         rate_figures(r, result)),
        ("shards", shard_figures(r, result)),
        (f"quotas to request (Service Quotas, service code {QUOTA_SERVICE}, the stage's region)",
         quota_figures(r, result)),
        ("network: the SageMaker Runtime interface endpoint", network_figures(r)),
        ("client CPU for the calls (one client stack each)", client_figures(r)),
        (f"cost ({region})", cost_figures(r, result, price, table)),
    ]  # fmt: skip
    if r.probe is not None:
        found.append(("client probe", probe_figures(r.probe, result.per_shard, table)))
    return found


def settings_line(r: Resolved, result: ShardPlan) -> str:
    """The plan as the stage's settings spell it (stacks/stages.py)."""
    per, rollout = result.per_shard, r.rollout
    strategy = f'strategy="{rollout.strategy}"'
    if rollout.strategy == ROLLING:
        strategy += f", rolling_batch_percent={rollout.batch_percent:g}"
        if rollout.rollback_batch_percent is not None:
            strategy += f", rolling_rollback_batch_percent={rollout.rollback_batch_percent:g}"
    return (
        f"shards={result.shards}, autoscaling=AutoscalingSettings(min_capacity={per.min_instances}, "
        f"max_capacity={per.max_instances}, max_rps_per_instance={r.inputs.max_rps_per_instance:g}, "
        f"safety_factor={r.inputs.safety:g}), rollout=RolloutSettings({strategy})"
    )


def format_text(found: list[tuple[str, list[Figure]]], settings: str) -> list[str]:
    """Section titles, then one aligned line per figure: label, value, unit, source."""
    figures = [figure for _, items in found for figure in items]
    label_width = max(len(figure.label) for figure in figures)
    value_width = max(len(figure.text) for figure in figures)
    unit_width = max(len(figure.unit) for figure in figures)
    lines = []
    for title, items in found:
        lines.append(title)
        for f in items:
            lines.append(f"  {f.label:<{label_width}}  {f.text:>{value_width}} {f.unit:<{unit_width}}  {f.source}")
    return [*lines, "settings per shard (stacks/stages.py; the settings reference: docs/settings.md)", f"  {settings}"]


def as_json(r: Resolved, result: ShardPlan, found: list[tuple[str, list[Figure]]], settings: str) -> dict[str, Any]:
    total = result.quota_need + r.in_use_elsewhere
    return {
        "figures": {
            f.key: {"label": f.label, "value": f.value, "unit": f.unit, "source": f.source}
            for _, items in found
            for f in items
        },
        "quota_requests": [
            {"service_code": QUOTA_SERVICE, "quota_name": name, "desired_value": total}
            for name in (instance_type_quota(r.inputs.instance_type), ACCOUNT_WIDE_QUOTA)
        ],
        "settings_per_shard": settings,
    }
