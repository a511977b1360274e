"""The stages this app deploys: one validated StageSettings per stage, picked with ``-c stage=NAME``.

Each stage is a function so that a mistake in one stage's settings does not stop the others from
synthesizing. Add a stage by adding a function and an entry in STAGES whose key is the stage's name.
An autoscaling block without max_rps_per_instance takes the stage's own measurement
(`scripts/loadtest.py --write-back`, stacks/data/measurements.json), so a copied stage never inherits
another stage's figure.
"""

from __future__ import annotations

from collections.abc import Callable

from stacks.github_ci_settings import GitHubCiSettings
from stacks.settings import (
    AutoscalingSettings,
    ClientProbeSettings,
    DataCaptureSettings,
    ExistingRuntimeEndpoint,
    RolloutSettings,
    ScheduledCapacity,
    StageSettings,
)
from stacks.stage_loader import load_from

DEFAULT_STAGE = "dev"


def dev() -> StageSettings:
    """The default: a new private VPC in two us-east-1 AZs; no account needed to synthesize."""
    return StageSettings(
        name="dev",
        region="us-east-1",
        client_azs=("us-east-1a", "us-east-1b"),
        vpc_cidr="10.42.0.0/16",
        instance_type="ml.c5.xlarge",
        # max_rps_per_instance: dev's measurement on ml.c5.xlarge, else 1000 (`scripts/loadtest.py --write-back`).
        autoscaling=AutoscalingSettings(min_capacity=2, max_capacity=4),
    )


def shared_vpc() -> StageSettings:
    """An existing VPC, looked up once and committed in cdk.context.json, that already has a SageMaker Runtime
    endpoint with private DNS (a second one would be refused): the stage uses it (example ids)."""
    return StageSettings(
        name="shared-vpc",
        account="123456789012",
        region="us-east-1",
        vpc_id="vpc-0a1b2c3d4e5f67890",
        client_azs=("us-east-1a", "us-east-1b"),
        client_cidrs=("10.100.0.0/16",),
        runtime_endpoint=ExistingRuntimeEndpoint(
            vpc_endpoint_id="vpce-0a1b2c3d4e5f67890", security_group_id="sg-0a1b2c3d4e5f67890"
        ),
        autoscaling=AutoscalingSettings(min_capacity=2, max_capacity=8),
    )


def prod() -> StageSettings:
    """Production example: three client AZs and more headroom; the account comes from the credentials."""
    return StageSettings(
        name="prod",
        region="us-east-1",
        client_azs=("us-east-1a", "us-east-1b", "us-east-1c"),
        vpc_cidr="10.43.0.0/16",
        instance_type="ml.c5.xlarge",
        initial_instance_count=3,
        autoscaling=AutoscalingSettings(
            min_capacity=3,
            max_capacity=20,
            # US ad traffic peaks in the evening: raise the floor an hour before, so instances are in
            # service before the ramp instead of launching into it, and lower it again when it ebbs.
            time_zone="America/New_York",
            scheduled=(
                ScheduledCapacity(name="EveningPeak", cron="cron(0 17 * * ? *)", min_capacity=6),
                ScheduledCapacity(name="Night", cron="cron(0 23 * * ? *)", min_capacity=3),
            ),
        ),
        # A sample of production traffic for Model Monitor baselines and drift checks.
        data_capture=DataCaptureSettings(enabled=True, sampling_percent=2),
        # What the ad servers see in each AZ, beside what SageMaker sees (docs/client-latency.md).
        client_probe=ClientProbeSettings(enabled=True),
    )


def gpu() -> StageSettings:
    """The gpu profile: Triton's FIL backend on ml.g4dn (local NVMe storage, so no KmsKeyId)."""
    return StageSettings(
        name="gpu",
        region="us-east-1",
        client_azs=("us-east-1a", "us-east-1b"),
        vpc_cidr="10.44.0.0/16",
        profile="gpu",
        instance_type="ml.g4dn.xlarge",
        kms_encryption=False,
        autoscaling=AutoscalingSettings(min_capacity=2, max_capacity=4),
    )


def inferentia() -> StageSettings:
    """The inferentia profile: the traced model, compiled by Neo during the deploy, on ml.inf1."""
    return StageSettings(
        name="inferentia",
        region="us-east-1",
        client_azs=("us-east-1a", "us-east-1b"),
        vpc_cidr="10.45.0.0/16",
        profile="inferentia",
        instance_type="ml.inf1.xlarge",
        autoscaling=AutoscalingSettings(min_capacity=2, max_capacity=4),
    )


def scale() -> StageSettings:
    """Three identical endpoints (shards) behind the runtime endpoint, each autoscaled on its own (the counts are per
    shard), updated in rolling batches and one shard after another: no update needs a second fleet
    (docs/safe-updates.md)."""
    return StageSettings(
        name="scale",
        region="us-east-1",
        client_azs=("us-east-1a", "us-east-1b", "us-east-1c"),
        vpc_cidr="10.46.0.0/16",
        instance_type="ml.c5.xlarge",
        shards=3,
        initial_instance_count=4,
        autoscaling=AutoscalingSettings(min_capacity=4, max_capacity=40),
        # Batches of a fifth of a shard: at 40 instances, 8 start beside the 40 while one is updated. Five batches
        # bake 5 minutes each; the timeout leaves each batch's new instances about 15 minutes more to start.
        rollout=RolloutSettings(
            strategy="rolling", rolling_batch_percent=20, wait_interval_seconds=300, max_execution_timeout_seconds=6000
        ),
    )


def portable() -> StageSettings:
    """Environment-agnostic: one template for any region; the image resolves through a mapping."""
    return StageSettings(name="portable", region=None)


STAGES: dict[str, Callable[[], StageSettings]] = {
    "dev": dev,
    "prod": prod,
    "shared-vpc": shared_vpc,
    "portable": portable,
    "scale": scale,
    "gpu": gpu,
    "inferentia": inferentia,
}


def github_ci() -> GitHubCiSettings:
    """Who may run this kit's workflows in AWS (the RtbInference-GitHubCi stack): set your repository."""
    return GitHubCiSettings(repository="example-org/sagemaker-rtb-inference-kit", regions=("us-east-1",))


def load_stage(name: object) -> StageSettings:
    """The validated settings of stage ``name``; SettingsError (one line per problem) for anything wrong."""
    return load_from(STAGES, name)
