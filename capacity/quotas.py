"""SageMaker's endpoint-instance quotas: their Service Quotas names, and how many instances a fleet needs of them
with its rollout's surge. capacity_plan prints the values to request; operations/preflight.py reads the same names.

Instances of real-time endpoints count against two quotas in a region: one per instance type ("ml.c5.xlarge for
endpoint usage", often 0 on a new account) and one for the account ("Number of instances across active
endpoints"); AWS raises both case by case.
https://docs.aws.amazon.com/general/latest/gr/sagemaker.html
https://docs.aws.amazon.com/sagemaker/latest/dg/regions-quotas.html
"""

from __future__ import annotations

import math

# Service Quotas' service code for SageMaker, and the account-wide quota's name there.
QUOTA_SERVICE = "sagemaker"
ACCOUNT_WIDE_QUOTA = "Number of instances across active endpoints"

BLUE_GREEN = "blue_green"
ROLLING = "rolling"
STRATEGIES = (BLUE_GREEN, ROLLING)
# A rolling step's MaximumBatchSize "must be between 5% to 50% of the variant's total instance count".
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_RollingUpdatePolicy.html
ROLLING_BATCH_PERCENT_RANGE = (5, 50)
_EPSILON = 1e-9


def instance_type_quota(instance_type: str) -> str:
    """The per-type quota's name in Service Quotas: 'ml.c5.xlarge for endpoint usage'."""
    return f"{instance_type} for endpoint usage"


def rolling_batch(instances: int, batch_percent: float) -> int:
    """Instances in one rolling step: ``batch_percent`` of the fleet, rounded up (SageMaker does not document its
    rounding; up is the cautious side for a quota), at least one."""
    return max(1, math.ceil(instances * batch_percent / 100 - _EPSILON))


def rollout_surge(
    instances: int, strategy: str, batch_percent: float | None = None, rollback_batch_percent: float | None = None
) -> int:
    """Instances an update of one endpoint of ``instances`` runs beside its fleet at the worst moment.

    Blue/green provisions the whole new fleet before it shifts traffic and keeps the old one through the baking
    period: the fleet again. https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green.html
    A rolling deployment provisions one batch of the new fleet at a time and cleans up a batch of the old one after
    each shift: one batch; a rollback brings the old fleet back in batches of RollbackMaximumBatchSize (SageMaker's
    default 100%: the whole fleet at once), so the surge is the larger of the two (the kit's default rollback batch
    is the batch: stacks/settings.py). https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-rolling.html
    """
    if strategy == BLUE_GREEN:
        return instances
    if strategy == ROLLING:
        if batch_percent is None:
            raise ValueError("a rolling deployment needs its batch percent")
        return rolling_batch(instances, max(batch_percent, rollback_batch_percent or 0))
    raise ValueError(f"strategy={strategy!r} is invalid: allowed: one of {', '.join(STRATEGIES)}")


def fleet_need(
    per_shard: int,
    shards: int,
    strategy: str,
    batch_percent: float | None = None,
    rollback_batch_percent: float | None = None,
) -> int:
    """Instances of one type a stage can hold at once: every shard at ``per_shard`` plus one shard's rollout surge
    (shards are updated one after the other, so only one surges at a time)."""
    return shards * per_shard + rollout_surge(per_shard, strategy, batch_percent, rollback_batch_percent)
