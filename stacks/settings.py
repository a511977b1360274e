"""The typed settings of one stage (environment): what a stage can set, the defaults, and what follows from them.

Every field is documented in the settings table of docs/settings.md. A stage that breaks a rule fails here, at
synth, with one line per problem naming the setting, the value and what is allowed, before anything
reaches CloudFormation. The checks live in stacks/settings_checks.py (types, MAX_RPS, the order of the rules)
and stacks/settings_rules.py (the bounds, and the rules on where a stage runs and what it serves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from stacks import settings_checks
from stacks.artifact import ModelArtifact
from stacks.profiles import PROFILES, Profile
from stacks.settings_checks import (
    MIN_BAKE_WITH_ROLLBACK_SECONDS,
    ROLLBACK_BATCH_PERCENT,
    ROLLING_BATCH_PERCENT,
    ROLLOUT_STRATEGIES,
    TRAFFIC_SHIFTING,
    max_rps_is_measured,
    rollout_steps,
    update_surge_instances,
)
from stacks.settings_rules import (
    CONTEXT_FILE,
    DEFAULT_MAX_RPS_PER_INSTANCE,
    ENDPOINT_NAME_MAX,
    EXECUTION_TIMEOUT_RANGE,
    LOG_RETENTION_DAYS,
    MAX_COOLDOWN_SECONDS,
    MAX_INSTANCES,
    MAX_RPS_PER_INSTANCE,
    MAX_SHARDS,
    PROBE_MAX_BURST,
    PROBE_MAX_SAMPLE_CHARS,
    PROBE_MAX_SCHEDULE_MINUTES,
    REPO_ROOT,
    STAGE_NAME_MAX,
    TIMEOUT_RANGE,
    VPC_RANGES,
    WAIT_RANGE,
    inspect_profile_artifact,
    vpc_lookup_key,
)

# What `from stacks.settings import ...` offers: the types here, and the bounds and helpers of the checks
# (a test that patches one, such as CONTEXT_FILE, patches it where it is defined: stacks/settings_rules.py).
__all__ = [
    "CONTEXT_FILE",
    "DEFAULT_MAX_RPS_PER_INSTANCE",
    "DEFAULT_VPC_CIDR",
    "ENDPOINT_NAME_MAX",
    "EXECUTION_TIMEOUT_RANGE",
    "LOG_RETENTION_DAYS",
    "MAX_COOLDOWN_SECONDS",
    "MAX_INSTANCES",
    "MAX_RPS_PER_INSTANCE",
    "MAX_SHARDS",
    "MIN_BAKE_WITH_ROLLBACK_SECONDS",
    "PROBE_MAX_BURST",
    "PROBE_MAX_SAMPLE_CHARS",
    "PROBE_MAX_SCHEDULE_MINUTES",
    "REPO_ROOT",
    "ROLLBACK_BATCH_PERCENT",
    "ROLLING_BATCH_PERCENT",
    "ROLLOUT_STRATEGIES",
    "STAGE_NAME_MAX",
    "TIMEOUT_RANGE",
    "TRAFFIC_SHIFTING",
    "VPC_RANGES",
    "WAIT_RANGE",
    "AutoscalingSettings",
    "ClientProbeSettings",
    "DataCaptureSettings",
    "ExistingRuntimeEndpoint",
    "RolloutSettings",
    "ScheduledCapacity",
    "SettingsError",
    "ShadowSettings",
    "StageSettings",
    "inspect_profile_artifact",
    "max_rps_is_measured",
    "rollout_steps",
    "update_surge_instances",
    "vpc_lookup_key",
]

DEFAULT_VPC_CIDR = "10.42.0.0/16"


class SettingsError(ValueError):
    """One or more settings of a stage are wrong; the message lists every problem."""

    def __init__(self, stage: str, problems: list[str]) -> None:
        self.stage = stage
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"stage {stage!r} has {len(problems)} invalid setting(s):\n{lines}")


@dataclass(frozen=True, kw_only=True)
class ScheduledCapacity:
    """A scheduled action that sets the scalable target's minimum and/or maximum on a cron."""

    # Also the ScheduledActionName; unique within the stage.
    name: str
    # Application Auto Scaling cron, six fields, in autoscaling.time_zone: 'cron(0 17 * * ? *)'.
    cron: str
    min_capacity: int | None = None
    max_capacity: int | None = None


@dataclass(frozen=True, kw_only=True)
class AutoscalingSettings:
    """Application Auto Scaling of the variant's instance count."""

    enabled: bool = True
    min_capacity: int = 2
    max_capacity: int = 4
    # Measured on one instance by a load test; the target tracking value follows from it. None: this
    # stage's measurement on its instance type (stacks/data/measurements.json), else 1000.0.
    max_rps_per_instance: float | None = None
    safety_factor: float = 0.5
    scale_in_cooldown_seconds: int = 300
    scale_out_cooldown_seconds: int = 60
    # Optional second policy on SageMakerVariantConcurrentRequestsPerModelHighResolution.
    concurrency_target_per_instance: float | None = None
    # IANA time zone of the scheduled actions' crons (Application Auto Scaling follows its DST changes).
    time_zone: str = "UTC"
    # Ad traffic follows the day: raise the floor before the evening peak, lower it at night.
    scheduled: tuple[ScheduledCapacity, ...] = ()
    # Optional step scale-out when the variant's p99 ModelLatency stays above the stage's latency_slo_ms.
    latency_step_scaling: bool = False

    @property
    def invocations_per_instance_target(self) -> float:
        """AWS guidance: SageMakerVariantInvocationsPerInstance = MAX_RPS * SAFETY_FACTOR * 60."""
        max_rps = self.max_rps_per_instance
        return (DEFAULT_MAX_RPS_PER_INSTANCE if max_rps is None else max_rps) * self.safety_factor * 60


@dataclass(frozen=True, kw_only=True)
class RolloutSettings:
    """Deployment guardrails: how an endpoint update (model, container) shifts traffic and rolls back."""

    # "blue_green": a whole new fleet beside the old one, then traffic shifted to it (traffic_shifting, step_percent,
    # termination_wait_seconds); "rolling": batches of rolling_batch_percent replace the old fleet's instances.
    strategy: str = "blue_green"
    # CANARY: one step of step_percent, then the rest; LINEAR: steps of step_percent; ALL_AT_ONCE: one step.
    traffic_shifting: str = "CANARY"
    # Share of the variant's capacity per step: canary 1-50, linear 10-50 (SageMaker's bounds).
    step_percent: int = 25
    # A rolling batch: the share of the variant's instances started, given traffic and then taking the place of as
    # many old ones, per step (SageMaker's bounds: 5 to 50).
    rolling_batch_percent: int = 10
    # A rolling rollback's batch; None: rolling_batch_percent. 100 brings the whole old fleet back at once.
    rolling_rollback_batch_percent: int | None = None
    # Baking time after each step, while the rollback alarms watch the new fleet.
    wait_interval_seconds: int = 300
    # How long the old fleet stays after the last step, ready for a rollback.
    termination_wait_seconds: int = 300
    max_execution_timeout_seconds: int = 3600
    # Roll back when the new fleet's 5XX rate or p99 ModelLatency alarm fires during the rollout.
    auto_rollback: bool = True


@dataclass(frozen=True, kw_only=True)
class ShadowSettings:
    """A shadow variant: a candidate model answering a copy of production traffic; its answers are dropped."""

    model_artifact: str
    # None: the production variant's instance type.
    instance_type: str | None = None
    instance_count: int = 1
    # Share of production requests copied to the shadow.
    sampling_percent: int = 10


@dataclass(frozen=True, kw_only=True)
class DataCaptureSettings:
    """Model Monitor data capture of requests and responses to a retained, encrypted bucket."""

    enabled: bool = False
    sampling_percent: int = 5
    # Captured objects expire after this many days (and old versions 30 days after they are replaced).
    retention_days: int = 90


@dataclass(frozen=True, kw_only=True)
class ExistingRuntimeEndpoint:
    """A SageMaker Runtime interface endpoint that already serves the VPC (a VPC holds at most one with private
    DNS: a second is refused with "conflicting DNS domain"). The stage adds HTTPS rules for its client security
    group (and client_cidrs) to this endpoint's security group and publishes the endpoint's zonal DNS names; the
    endpoint itself, its policy and its subnets stay its owner's."""

    # The interface endpoint's id, as DescribeVpcEndpoints lists it: 'vpce-0123456789abcdef0'.
    vpc_endpoint_id: str
    # The security group attached to that endpoint: the stage adds an HTTPS rule from its client group to it.
    security_group_id: str


@dataclass(frozen=True)
class ClientProbeSettings:
    """A probe per client AZ that invokes the endpoint as the ad servers do and alarms on what it sees."""

    enabled: bool = False
    # Invocations per run and AZ: enough for a p99 over a few minutes, far below any scaling target.
    burst_size: int = 20
    # Minutes between runs; the alarms' period.
    schedule_minutes: int = 1


@dataclass(frozen=True, kw_only=True)
class StageSettings:
    """Everything that differs between stages. Defaults are the recommended production values."""

    name: str
    # None makes the stack environment-agnostic: the image resolves per region at deploy time.
    region: str | None
    account: str | None = None
    # The Availability Zones the clients (ad servers) run in; endpoint and model share them.
    client_azs: tuple[str, ...] = ()
    # None creates a VPC; a VPC id places the endpoints in that VPC (lookup from cdk.context.json).
    vpc_id: str | None = None
    # The new VPC's network; None: 10.42.0.0/16. Only without vpc_id.
    vpc_cidr: str | None = None
    # Networks, besides the exported client security group, that may call the runtime endpoint.
    client_cidrs: tuple[str, ...] = ()
    # None creates the SageMaker Runtime interface endpoint; an existing one (only with vpc_id) is used instead.
    runtime_endpoint: ExistingRuntimeEndpoint | None = None
    # The serving stack: "cpu" (built-in XGBoost), "gpu" (Triton FIL), "inferentia" (Neo, ml.inf1).
    profile: str = "cpu"
    instance_type: str = "ml.c5.xlarge"
    initial_instance_count: int = 2
    high_availability: bool = True
    # Identical endpoints serving the stage, each with the instance counts above and autoscaling below of its own.
    shards: int = 1
    # None: the profile's pinned container version (stacks/profiles.py).
    image_tag: str | None = None
    # None: the profile's artifact (model_artifacts/, built by `make model`).
    model_artifact: str | None = None
    kms_encryption: bool = True
    container_startup_timeout_seconds: int = 300
    model_download_timeout_seconds: int = 300
    log_retention_days: int = 365
    # The end-to-end goal: p99 of ModelLatency + OverheadLatency (alarm, dashboard, load test).
    latency_slo_ms: float = 20.0
    # Share of invocations answered 5XX that raises the error-rate alarm.
    error_rate_alarm: float = 0.01
    # Minutes pinned at the most instances autoscaling may run before the capacity alarm fires.
    max_capacity_alarm_minutes: int = 30
    autoscaling: AutoscalingSettings = field(default_factory=AutoscalingSettings)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    data_capture: DataCaptureSettings = field(default_factory=DataCaptureSettings)
    client_probe: ClientProbeSettings = field(default_factory=ClientProbeSettings)
    shadow: ShadowSettings | None = None

    def __post_init__(self) -> None:
        # Types first, then MAX_RPS (filled in place), then the rules (stacks/settings_checks.py).
        problems = list(settings_checks.type_problems(self))
        if not problems:
            problems = list(settings_checks.resolve_max_rps(self)) or list(settings_checks.rule_problems(self))
        if problems:
            raise SettingsError(self.name if isinstance(self.name, str) else repr(self.name), problems)

    @property
    def new_vpc_cidr(self) -> str:
        """The CIDR of the VPC the stack creates (vpc_id is None)."""
        return self.vpc_cidr or DEFAULT_VPC_CIDR

    @property
    def serving(self) -> Profile:
        return PROFILES[self.profile]

    @property
    def container_version(self) -> str:
        """The container image version (XGBoost tag, Triton release, Neo PyTorch version) served."""
        return self.image_tag or self.serving.default_version()

    @property
    def artifact_file(self) -> str:
        return self.model_artifact or self.serving.default_artifact

    @property
    def artifact_path(self) -> Path:
        return REPO_ROOT / self.artifact_file

    @cached_property
    def artifact(self) -> ModelArtifact:
        return inspect_profile_artifact(self.serving, self.artifact_path)

    @property
    def stack_name(self) -> str:
        return f"RtbInference-{self.name}"

    @property
    def endpoint_name(self) -> str:
        """Named after the stack and the instance type. The rollback alarms must name the endpoint before
        it exists, and a new instance type must mean a new endpoint: SageMaker refuses to change the
        instance type of a variant registered with Application Auto Scaling (docs/safe-updates.md)."""
        return f"{self.stack_name}-{self.instance_type.removeprefix('ml.').replace('.', '-')}"

    def shard_endpoint_name(self, index: int) -> str:
        """Shard ``index``'s endpoint name: shard 0 keeps the one-endpoint stage's name."""
        return self.endpoint_name if index == 0 else f"{self.endpoint_name}-shard{index}"

    @property
    def endpoint_names(self) -> tuple[str, ...]:
        """Every shard's endpoint name, shard 0 first."""
        return tuple(self.shard_endpoint_name(index) for index in range(self.shards))

    @property
    def environment_agnostic(self) -> bool:
        return self.region is None
