"""The capacity plan's arithmetic: instances for a peak rate, endpoint shards within a per-shard bound, prices.

AWS's sizing rule: load-test one instance to find its maximum requests per second (MAX_RPS), plan for
MAX_RPS x SAFETY per instance, and let target tracking hold SageMakerVariantInvocationsPerInstance at
MAX_RPS x SAFETY x 60. Per endpoint (shard), with the peak spread evenly over the shards:

    expected instances = ceil(shard's peak / (MAX_RPS x SAFETY))                      (at least the HA minimum)
    min instances      = ceil(trough-fraction x shard's peak / (MAX_RPS x SAFETY))    (at least the HA minimum)
    max instances      = ceil(expected x headroom)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capacity.quotas import fleet_need, rollout_surge

PRICES = Path(__file__).resolve().parent / "data" / "sagemaker_prices.json"
HOURS_PER_MONTH = 730
# Absorbs float error such as 3 x 0.1 = 0.30000000000000004 before ceil, so an exact fit is not one more.
_EPSILON = 1e-9
# Where the search for a shard count gives up: beyond it the bound, not the shard count, is wrong.
SHARD_SEARCH_LIMIT = 1000


@dataclass(frozen=True)
class Inputs:
    peak_rps: float
    max_rps_per_instance: float
    safety: float
    instance_type: str
    min_ha: int = 2
    trough_fraction: float = 0.3
    headroom: float = 1.25


@dataclass(frozen=True)
class Plan:
    """Instance counts of one endpoint and the autoscaling settings that produce them."""

    min_instances: int
    expected_instances: int
    max_instances: int
    rps_per_instance_at_target: float
    invocations_per_instance_target: float


@dataclass(frozen=True)
class Rollout:
    """How an update replaces a shard's fleet: "blue_green", or "rolling" in batches of ``batch_percent`` (and
    rollback batches of ``rollback_batch_percent``; None: the batch)."""

    strategy: str
    batch_percent: float | None = None
    rollback_batch_percent: float | None = None


@dataclass(frozen=True)
class ShardPlan:
    """The fleet as ``shards`` identical endpoints, each planned for its share of the peak."""

    shards: int
    per_shard: Plan
    surge: int  # instances one shard's update runs beside its fleet
    quota_need: int  # instances of the type at once: every shard at max plus one shard's surge

    @property
    def fleet_min(self) -> int:
        return self.shards * self.per_shard.min_instances

    @property
    def fleet_expected(self) -> int:
        return self.shards * self.per_shard.expected_instances

    @property
    def fleet_max(self) -> int:
        return self.shards * self.per_shard.max_instances

    @property
    def shard_peak_instances(self) -> int:
        """What one shard holds at once at worst: its max plus its own update's surge."""
        return self.per_shard.max_instances + self.surge


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


def shard_plan(inputs: Inputs, shards: int, rollout: Rollout) -> ShardPlan:
    """Each of ``shards`` endpoints planned for peak / shards (the client spreads calls evenly over them)."""
    per_shard = plan(Inputs(**{**inputs.__dict__, "peak_rps": inputs.peak_rps / shards}))
    batches = (rollout.batch_percent, rollout.rollback_batch_percent)
    surge = rollout_surge(per_shard.max_instances, rollout.strategy, *batches)
    need = fleet_need(per_shard.max_instances, shards, rollout.strategy, *batches)
    return ShardPlan(shards=shards, per_shard=per_shard, surge=surge, quota_need=need)


def choose_shards(inputs: Inputs, rollout: Rollout, bound: int) -> ShardPlan | None:
    """The fewest shards whose max per shard plus its update's surge fit ``bound`` instances; None if even
    SHARD_SEARCH_LIMIT do not (the HA minimum alone can exceed a small bound)."""
    for shards in range(1, SHARD_SEARCH_LIMIT + 1):
        candidate = shard_plan(inputs, shards, rollout)
        if candidate.shard_peak_instances <= bound:
            return candidate
    return None


def hourly_cost(instances: int, usd_per_hour: float) -> float:
    return instances * usd_per_hour


def monthly_cost(instances: int, usd_per_hour: float) -> float:
    """A month of 730 hours, the figure AWS's pricing examples use."""
    return hourly_cost(instances, usd_per_hour) * HOURS_PER_MONTH


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    """The price table; ValueError (exit 1) if it is not what the plan expects."""
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
