"""The typed, validated settings of one stage (environment).

Every field is documented in the settings table of docs/settings.md. A stage that breaks a rule fails here, at
synth, with one line per problem naming the setting, the value and what is allowed, before anything
reaches CloudFormation.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from stacks import catalog
from stacks.artifact import ArtifactError, ModelArtifact, inspect_artifact
from stacks.measurements import MEASUREMENTS_FILE, measured_max_rps
from stacks.profiles import PROFILES, TRITON_MODEL_NAME, Profile
from stacks.sample_counts import MAX_WINDOW_MINUTES, min_samples, window_minutes

REPO_ROOT = Path(__file__).resolve().parents[1]

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
# SageMaker's bounds for ContainerStartupHealthCheckTimeoutInSeconds and ModelDataDownloadTimeoutInSeconds.
TIMEOUT_RANGE = (60, 3600)
# SageMaker's bounds (botocore's model) for the blue/green policy: WaitIntervalInSeconds,
# TerminationWaitInSeconds, MaximumExecutionTimeoutInSeconds.
WAIT_RANGE = (0, 3600)
EXECUTION_TIMEOUT_RANGE = (600, 28800)
# Application Auto Scaling's model gives capacities and cooldowns no maximum and SageMaker's instance
# quotas are per account and soft: these are the kit's bounds, there to catch a typo (4000 for 40).
MAX_INSTANCES = 1000
MAX_COOLDOWN_SECONDS = 86400
MAX_RPS_PER_INSTANCE = 1_000_000.0
# The documented MAX_RPS per instance for a stage that has no measurement on its instance type.
DEFAULT_MAX_RPS_PER_INSTANCE = 1000.0
DEFAULT_VPC_CIDR = "10.42.0.0/16"
STAGE_NAME_MAX = 24
# SageMaker endpoint names: at most 63 characters.
ENDPOINT_NAME_MAX = 63
# The client probe's bounds: a burst stays a probe, not load; runs stay frequent enough for 3-of-5 alarms.
PROBE_MAX_BURST = 100
PROBE_MAX_SCHEDULE_MINUTES = 5
# Lambda caps a function's environment at 4 KB in all; the sample row takes most of it, the rest is small.
PROBE_MAX_SAMPLE_CHARS = 3000

# ASCII only and matched against the whole string (re.fullmatch): "$" alone would accept a trailing
# newline, and "\d" any Unicode digit.
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]", re.ASCII)
_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)
_VPC_ID = re.compile(r"vpc-[0-9a-f]{8,17}", re.ASCII)
_VPC_ENDPOINT_ID = re.compile(r"vpce-[0-9a-f]{8,17}", re.ASCII)
_SECURITY_GROUP_ID = re.compile(r"sg-[0-9a-f]{8,17}", re.ASCII)
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-]*", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
CONTEXT_FILE = Path(__file__).resolve().parents[1] / "cdk.context.json"


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

    # CANARY: one step of step_percent, then the rest; LINEAR: steps of step_percent; ALL_AT_ONCE: one step.
    traffic_shifting: str = "CANARY"
    # Share of the variant's capacity per step: canary 1-50, linear 10-50 (SageMaker's bounds).
    step_percent: int = 25
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
        problems = list(_type_problems(self))
        if not problems:
            problems = list(_resolve_max_rps(self)) or list(_rule_problems(self))
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

    @property
    def environment_agnostic(self) -> bool:
        return self.region is None


def _problem(setting: str, value: object, allowed: str) -> str:
    return f"{setting}={value!r} is invalid: {allowed}"


def _type_text(hint: Any) -> str:
    """A declared type as a user writes it: 'int | None', 'tuple[ScheduledCapacity, ...]'."""
    if get_origin(hint) in (Union, types.UnionType):
        return " | ".join("None" if arg is type(None) else _type_text(arg) for arg in get_args(hint))
    if get_origin(hint) is tuple:
        return f"tuple[{_type_text(get_args(hint)[0])}, ...]"
    return str(hint.__name__)


def _type_problems(settings: StageSettings) -> Iterator[str]:
    """Wrong types first: a string where a number belongs would make the rules below meaningless."""
    hints = _hints(StageSettings)
    for item in fields(settings):
        yield from _value_problems(item.name, getattr(settings, item.name), hints[item.name])


@cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a settings class (the annotations are strings here)."""
    return get_type_hints(cls)


def _value_problems(name: str, value: Any, hint: Any) -> Iterator[str]:
    """Check ``value`` against the declared type ``hint``, walking nested settings and tuples.

    The settings use only bool, int, float, str, settings classes, ``X | None`` and ``tuple[X, ...]``;
    a field of any other type fails loudly here, so this walker grows with the settings."""
    expected = f"expected {_type_text(hint)}"
    if get_origin(hint) in (Union, types.UnionType):
        (inner,) = [arg for arg in get_args(hint) if arg is not type(None)]
        if value is not None:
            yield from (
                _value_problems(name, value, inner) if _is_type(value, inner) else [_problem(name, value, expected)]
            )
    elif get_origin(hint) is tuple:
        yield from _tuple_problems(name, value, hint)
    elif not _is_type(value, hint):
        yield _problem(name, value, expected)
    elif isinstance(hint, type) and is_dataclass(hint):
        hints = _hints(hint)
        for item in fields(hint):
            yield from _value_problems(f"{name}.{item.name}", getattr(value, item.name), hints[item.name])
    elif isinstance(value, float) and not math.isfinite(value):
        yield _problem(name, value, "allowed: a finite number")


def _is_type(value: Any, hint: Any) -> bool:
    if is_dataclass(hint):
        return type(value) is hint
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float, str):
        # bool is an int to Python, never to a setting; an int is a fine float.
        allowed = (int, float) if hint is float else hint
        return isinstance(value, allowed) and not isinstance(value, bool)
    if get_origin(hint) is tuple:
        return isinstance(value, tuple)
    raise TypeError(f"settings field type {hint!r} is not handled by the settings type check")


def _tuple_problems(name: str, value: Any, hint: Any) -> Iterator[str]:
    item_hint = get_args(hint)[0]
    if not isinstance(value, tuple):
        if _is_type(value, item_hint) if get_origin(item_hint) is None else False:
            why = f"a single value needs a trailing comma: ({value!r},)"
        elif isinstance(value, list):
            why = "a tuple in parentheses, not a list in brackets"
        else:
            why = f"a tuple of {_type_text(item_hint)}, () for none"
        yield _problem(name, value, f"expected {_type_text(hint)}: {why}")
        return
    for index, item in enumerate(value):
        yield from _value_problems(f"{name}[{index}]", item, item_hint)


def _resolve_max_rps(s: StageSettings) -> Iterator[str]:
    """Fill autoscaling.max_rps_per_instance=None with this stage's own measurement on its instance type,
    else the documented default; the value records which stage and type it was looked up for, so a copy
    of these settings under another name or type looks its own up again."""
    scaling = s.autoscaling
    looked_up_for = getattr(scaling, "_measured_for", None)
    if scaling.max_rps_per_instance is not None and looked_up_for in (None, (s.name, s.instance_type)):
        return
    try:
        max_rps = measured_max_rps(s.name, instance_type=s.instance_type, default=DEFAULT_MAX_RPS_PER_INSTANCE)
    except ValueError as error:
        yield _problem("autoscaling.max_rps_per_instance", None, f"reading {MEASUREMENTS_FILE.name}: {error}")
        return
    resolved = dataclasses.replace(scaling, max_rps_per_instance=max_rps)
    object.__setattr__(resolved, "_measured_for", (s.name, s.instance_type))
    object.__setattr__(s, "autoscaling", resolved)


def max_rps_is_measured(s: StageSettings) -> bool:
    """Whether the stage takes its MAX_RPS from the measurements (max_rps_per_instance=None)."""
    return getattr(s.autoscaling, "_measured_for", None) is not None


def _rule_problems(s: StageSettings) -> Iterator[str]:
    yield from _identity_problems(s)
    yield from _network_problems(s)
    yield from _instance_problems(s)
    yield from _capacity_problems(s)
    yield from _schedule_problems(s)
    yield from _artifact_problems(s)
    if not TIMEOUT_RANGE[0] <= s.container_startup_timeout_seconds <= TIMEOUT_RANGE[1]:
        yield _problem("container_startup_timeout_seconds", s.container_startup_timeout_seconds, "allowed: 60 to 3600")
    if not TIMEOUT_RANGE[0] <= s.model_download_timeout_seconds <= TIMEOUT_RANGE[1]:
        yield _problem("model_download_timeout_seconds", s.model_download_timeout_seconds, "allowed: 60 to 3600")
    yield from _monitoring_problems(s)
    yield from _rollout_problems(s.rollout)
    yield from _data_capture_problems(s.data_capture)
    yield from _client_probe_problems(s)
    yield from _shadow_problems(s)
    if s.log_retention_days not in LOG_RETENTION_DAYS:
        yield _problem("log_retention_days", s.log_retention_days, f"allowed: one of {list(LOG_RETENTION_DAYS)}")


def _identity_problems(s: StageSettings) -> Iterator[str]:
    if not _STAGE_NAME.fullmatch(s.name):
        yield _problem("name", s.name, "allowed: lowercase ASCII letters, digits and '-', starting with a letter")
    elif len(s.name) > STAGE_NAME_MAX:
        yield _problem(
            "name", s.name, f"{len(s.name)} characters; allowed: at most {STAGE_NAME_MAX} (the stack is named after it)"
        )
    elif len(s.endpoint_name) > ENDPOINT_NAME_MAX:
        yield _problem(
            "name",
            s.name,
            f"the endpoint name {s.endpoint_name!r} would have {len(s.endpoint_name)} characters; "
            f"allowed: a name that keeps it within SageMaker's {ENDPOINT_NAME_MAX}",
        )
    if s.account is not None and not _ACCOUNT.fullmatch(s.account):
        yield _problem("account", s.account, "allowed: a 12-digit AWS account id, or None")
    if s.profile not in PROFILES:
        yield _problem("profile", s.profile, f"allowed: one of {list(PROFILES)}")
        return
    versions = s.serving.versions()
    if s.image_tag is not None and s.image_tag not in versions:
        yield _problem(
            "image_tag", s.image_tag, f"the {s.profile} profile's images: allowed: one of {list(versions)}, or None"
        )
        return
    if s.region is None:
        return
    if not _REGION.fullmatch(s.region):
        yield _problem("region", s.region, "allowed: an AWS region name such as 'us-east-1', or None")
    elif s.serving.registry(s.container_version).image(s.region) is None:
        regions = sorted(s.serving.registry(s.container_version).regions)
        yield _problem(
            "region",
            s.region,
            f"SageMaker publishes no {s.serving.image_label} {s.container_version} image there; "
            f"allowed: one of {regions}",
        )


def _network_problems(s: StageSettings) -> Iterator[str]:
    if s.region is None:
        if s.client_azs:
            yield _problem(
                "client_azs",
                s.client_azs,
                "an environment-agnostic stage (region=None) uses the first two AZs of the deploy region; "
                "allowed: () or set region",
            )
    elif _REGION.fullmatch(s.region):
        if len(s.client_azs) < 2:
            yield _problem("client_azs", s.client_azs, "allowed: at least 2 Availability Zones (high availability)")
        if len(set(s.client_azs)) != len(s.client_azs):
            yield _problem("client_azs", s.client_azs, "allowed: each Availability Zone once")
        zone = re.compile(rf"{re.escape(s.region)}[a-z]", re.ASCII)
        for az in s.client_azs:
            if not zone.fullmatch(az):
                yield _problem(
                    "client_azs", az, f"allowed: Availability Zones of region {s.region} such as '{s.region}a'"
                )
    if s.vpc_id is not None:
        if s.vpc_cidr is not None:
            yield _problem(
                "vpc_cidr", s.vpc_cidr, "an existing VPC (vpc_id) keeps its own network; allowed: None with vpc_id"
            )
        if not _VPC_ID.fullmatch(s.vpc_id):
            yield _problem("vpc_id", s.vpc_id, "allowed: a VPC id such as 'vpc-0123456789abcdef0', or None")
        elif s.account is None or s.region is None:
            yield _problem(
                "vpc_id", s.vpc_id, "an existing VPC is looked up per account and region; set account and region"
            )
        elif _ACCOUNT.fullmatch(s.account) and _REGION.fullmatch(s.region):
            yield from _existing_vpc_problems(s)
    elif s.vpc_cidr is not None:
        yield from _vpc_cidr_problems(s.vpc_cidr)
    yield from _runtime_endpoint_problems(s)
    for cidr in s.client_cidrs:
        try:
            network = ipaddress.ip_network(cidr)
        except ValueError:
            yield _problem("client_cidrs", cidr, "allowed: IPv4 or IPv6 networks such as '10.0.0.0/16'")
            continue
        if network.prefixlen == 0 or not network.is_private:
            yield _problem("client_cidrs", cidr, "allowed: private networks only (no public path to the endpoint)")


def _runtime_endpoint_problems(s: StageSettings) -> Iterator[str]:
    existing = s.runtime_endpoint
    if existing is None:
        return
    if s.vpc_id is None:
        yield _problem(
            "runtime_endpoint",
            existing,
            "the VPC the stage creates has no endpoint yet; allowed: None, or an existing VPC's endpoint with vpc_id",
        )
        return
    if not _VPC_ENDPOINT_ID.fullmatch(existing.vpc_endpoint_id):
        yield _problem(
            "runtime_endpoint.vpc_endpoint_id",
            existing.vpc_endpoint_id,
            "allowed: an interface endpoint id such as 'vpce-0123456789abcdef0'",
        )
    if not _SECURITY_GROUP_ID.fullmatch(existing.security_group_id):
        yield _problem(
            "runtime_endpoint.security_group_id",
            existing.security_group_id,
            "allowed: the endpoint's security group id such as 'sg-0123456789abcdef0'",
        )


def vpc_lookup_key(account: str, region: str, vpc_id: str) -> str:
    """The key under which `cdk synth` records the lookup of an existing VPC in cdk.context.json."""
    return f"vpc-provider:account={account}:filter.vpc-id={vpc_id}:region={region}:returnAsymmetricSubnets=true"


def _existing_vpc_problems(s: StageSettings) -> Iterator[str]:
    """The client AZs against the committed lookup of the VPC, before any construct runs. Without a
    lookup, `cdk synth` (with credentials) looks the VPC up, records it and synthesizes again."""
    assert s.vpc_id is not None and s.account is not None and s.region is not None
    try:
        context = json.loads(CONTEXT_FILE.read_text())
    except (OSError, ValueError):
        return  # no readable lookups: the CLI reports a malformed file itself
    lookup = context.get(vpc_lookup_key(s.account, s.region, s.vpc_id)) if isinstance(context, dict) else None
    if not isinstance(lookup, dict):
        return
    private_azs: set[str] = set()
    for group in lookup.get("subnetGroups") or []:
        if isinstance(group, dict) and group.get("type") in ("Private", "Isolated"):
            for subnet in group.get("subnets") or []:
                if isinstance(subnet, dict) and isinstance(subnet.get("availabilityZone"), str):
                    private_azs.add(subnet["availabilityZone"])
    missing = [az for az in s.client_azs if az not in private_azs]
    if missing:
        yield _problem(
            "client_azs",
            s.client_azs,
            f"VPC {s.vpc_id} has no private subnet in {missing} (cdk.context.json); allowed: AZs among "
            f"{sorted(private_azs)} (after a VPC change, refresh the lookup: 'npx cdk context --reset KEY', then "
            "synth with credentials)",
        )


# The private ranges AWS documents for VPCs (RFC 1918, and RFC 6598's shared space). Python's
# is_private would also admit loopback, link-local and documentation ranges, which a VPC cannot use.
VPC_RANGES = tuple(
    ipaddress.IPv4Network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


def _vpc_cidr_problems(cidr: str) -> Iterator[str]:
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError as error:
        yield _problem("vpc_cidr", cidr, f"{error}; allowed: an IPv4 network such as '10.42.0.0/16'")
        return
    if not 16 <= network.prefixlen <= 24 or not any(network.subnet_of(block) for block in VPC_RANGES):
        yield _problem(
            "vpc_cidr",
            cidr,
            f"allowed: a private IPv4 network from /16 to /24 within {', '.join(map(str, VPC_RANGES))}",
        )


def _instance_problems(s: StageSettings) -> Iterator[str]:
    known = catalog.hosting_instance_types()
    if s.instance_type not in known:
        close = difflib.get_close_matches(s.instance_type, known, n=3, cutoff=0.8)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        yield _problem(
            "instance_type",
            s.instance_type,
            f"not a SageMaker real-time instance type; {hint}allowed: the {len(known)} types in "
            "stacks/data/instance_types.json",
        )
        return
    instance = catalog.InstanceType.parse(s.instance_type)
    if s.profile in PROFILES and not s.serving.fits(instance):
        fitting = [name for name, profile in PROFILES.items() if profile.fits(instance)]
        hint = f", or profile={fitting[0]!r}" if fitting else ""
        yield _problem(
            "instance_type",
            s.instance_type,
            f"the {s.profile} profile serves {s.serving.families}; allowed: one of those{hint}",
        )
    if instance.is_burstable and s.autoscaling.enabled:
        yield _problem(
            "instance_type",
            s.instance_type,
            "burstable (ml.t*) instances cannot be autoscaled; "
            "allowed: a non-burstable type, or autoscaling.enabled=False",
        )
    if not instance.has_local_nvme and not s.kms_encryption:
        yield _problem(
            "kms_encryption",
            s.kms_encryption,
            f"{s.instance_type} stores the model on an EBS volume, which must be encrypted with the stack's "
            "customer-managed key; allowed: True",
        )
    if instance.has_local_nvme and s.kms_encryption:
        yield _problem(
            "kms_encryption",
            s.kms_encryption,
            f"{s.instance_type} has local NVMe storage, which SageMaker encrypts in hardware and for which it "
            "rejects KmsKeyId; allowed: False for this type, or a type without local storage such as ml.c5.xlarge",
        )


def _count_problem(setting: str, value: int, low: int) -> str | None:
    if value < low:
        return _problem(setting, value, f"allowed: {low} or more")
    if value > MAX_INSTANCES:
        return _problem(setting, value, f"allowed: at most {MAX_INSTANCES} (the kit's bound on instance counts)")
    return None


def _capacity_problems(s: StageSettings) -> Iterator[str]:
    scaling = s.autoscaling
    too_many = _count_problem("initial_instance_count", s.initial_instance_count, 1)
    if too_many is not None:
        yield too_many
    if s.high_availability and s.initial_instance_count < 2:
        yield _problem(
            "initial_instance_count",
            s.initial_instance_count,
            "high_availability needs instances in 2 AZs; allowed: 2 or more, or high_availability=False",
        )
    if not 0 < scaling.safety_factor <= 1:
        yield _problem("autoscaling.safety_factor", scaling.safety_factor, "allowed: greater than 0 and at most 1")
    max_rps = scaling.max_rps_per_instance
    if max_rps is not None and not 0 < max_rps <= MAX_RPS_PER_INSTANCE:
        source = f" (measured, {MEASUREMENTS_FILE.name})" if max_rps_is_measured(s) else ""
        yield _problem(
            "autoscaling.max_rps_per_instance",
            max_rps,
            f"allowed: greater than 0, at most {MAX_RPS_PER_INSTANCE:.0f}{source}",
        )
    if not scaling.enabled:
        if scaling.concurrency_target_per_instance is not None:
            yield _problem(
                "autoscaling.concurrency_target_per_instance",
                scaling.concurrency_target_per_instance,
                "the policy needs the scalable target; allowed: None or autoscaling.enabled=True",
            )
        return
    for name in ("min_capacity", "max_capacity"):
        problem = _count_problem(f"autoscaling.{name}", getattr(scaling, name), 1)
        if problem is not None:
            yield problem
    if s.high_availability and scaling.min_capacity < 2:
        yield _problem(
            "autoscaling.min_capacity",
            scaling.min_capacity,
            "high_availability needs instances in 2 AZs; allowed: 2 or more, or high_availability=False",
        )
    if scaling.max_capacity < scaling.min_capacity:
        yield _problem(
            "autoscaling.max_capacity",
            scaling.max_capacity,
            f"allowed: at least autoscaling.min_capacity ({scaling.min_capacity})",
        )
    elif not scaling.min_capacity <= s.initial_instance_count <= scaling.max_capacity:
        yield _problem(
            "initial_instance_count",
            s.initial_instance_count,
            "allowed: within [autoscaling.min_capacity, autoscaling.max_capacity] = "
            f"[{scaling.min_capacity}, {scaling.max_capacity}]",
        )
    for name in ("scale_in_cooldown_seconds", "scale_out_cooldown_seconds"):
        value = getattr(scaling, name)
        if not 0 <= value <= MAX_COOLDOWN_SECONDS:
            yield _problem(
                f"autoscaling.{name}", value, f"allowed: 0 to {MAX_COOLDOWN_SECONDS} (the kit's bound: one day)"
            )
    target = scaling.concurrency_target_per_instance
    if target is not None and not 0 < target <= MAX_RPS_PER_INSTANCE:
        yield _problem(
            "autoscaling.concurrency_target_per_instance",
            target,
            f"allowed: greater than 0, at most {MAX_RPS_PER_INSTANCE:.0f}, or None",
        )


_SCHEDULED_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}", re.ASCII)
_CRON = re.compile(r"cron\((?P<fields>[^()]*)\)", re.ASCII)
_CRON_HINT = "allowed: 'cron(minutes hours day-of-month month day-of-week year)' such as 'cron(0 17 * * ? *)'"
# (field, lowest, highest, names standing for lowest, lowest + 1, ...)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day-of-week", 1, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
    ("year", 1970, 2199, ()),
)


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if _DIGITS.fullmatch(text):
        return int(text)
    return names.index(text.upper()) + low if text.isascii() and text.upper() in names else None


def _cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not an Application Auto Scaling cron expression, or None if it is one."""
    match = _CRON.fullmatch(cron)
    if match is None:
        return "not of the form cron(...)"
    parts = match["fields"].split(" ")
    if len(parts) != len(_CRON_FIELDS):
        return f"{len(parts)} fields instead of 6"
    for text, (field_name, low, high, names) in zip(parts, _CRON_FIELDS, strict=True):
        if text == "?":
            if field_name not in ("day-of-month", "day-of-week"):
                return f"'?' is only for day-of-month or day-of-week, not {field_name}"
            continue
        if field_name == "day-of-month" and re.fullmatch(r"L|LW|([1-9]|[12][0-9]|3[01])W", text):
            continue
        if field_name == "day-of-week" and re.fullmatch(r"[1-7]L|[1-7]#[1-5]", text):
            continue
        for item in text.split(","):
            base, slash, step = item.partition("/")
            if slash and not (_DIGITS.fullmatch(step) and int(step) >= 1):
                return f"{field_name} {text!r} has a bad increment"
            if base == "*":
                continue
            values = [_cron_value(bound, low, names) for bound in base.split("-")]
            if len(values) > 2 or any(value is None or not low <= value <= high for value in values):
                return f"{field_name} {text!r} is not within {low}-{high}"
    if (parts[2] == "?") == (parts[4] == "?"):
        return "exactly one of day-of-month and day-of-week must be '?'"
    return None


def _schedule_problems(s: StageSettings) -> Iterator[str]:
    """The time zone, the scheduled actions and the latency step policy of autoscaling."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    scaling = s.autoscaling
    try:
        ZoneInfo(scaling.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        yield _problem(
            "autoscaling.time_zone",
            scaling.time_zone,
            "allowed: an IANA time zone name such as 'UTC' or 'America/New_York'",
        )
    if not scaling.enabled:
        if scaling.scheduled:
            yield _problem(
                "autoscaling.scheduled",
                scaling.scheduled,
                "scheduled actions need the scalable target; allowed: () or autoscaling.enabled=True",
            )
        if scaling.latency_step_scaling:
            yield _problem(
                "autoscaling.latency_step_scaling",
                scaling.latency_step_scaling,
                "the policy needs the scalable target; allowed: False or autoscaling.enabled=True",
            )
        return
    seen: dict[str, int] = {}
    for index, action in enumerate(scaling.scheduled):
        yield from _scheduled_action_problems(s, f"autoscaling.scheduled[{index}]", action, seen, index)


def _scheduled_action_problems(
    s: StageSettings, prefix: str, action: object, seen: dict[str, int], index: int
) -> Iterator[str]:
    scaling = s.autoscaling
    assert isinstance(action, ScheduledCapacity)  # the type check ran first
    if not _SCHEDULED_NAME.fullmatch(action.name):
        yield _problem(
            f"{prefix}.name",
            action.name,
            "allowed: letters, digits, '-' and '_', starting with a letter, at most 64 characters",
        )
    elif action.name in seen:
        yield _problem(
            f"{prefix}.name",
            action.name,
            f"already used by autoscaling.scheduled[{seen[action.name]}]; allowed: a name used once in the stage",
        )
    else:
        seen[action.name] = index
    reason = _cron_problem(action.cron)
    if reason is not None:
        yield _problem(f"{prefix}.cron", action.cron, f"{reason}; {_CRON_HINT}")
    low, high = action.min_capacity, action.max_capacity
    for name, value in (("min_capacity", low), ("max_capacity", high)):
        if value is not None and value > MAX_INSTANCES:
            yield _problem(
                f"{prefix}.{name}", value, f"allowed: at most {MAX_INSTANCES} (the kit's bound on instance counts)"
            )
            return
    if low is None and high is None:
        yield _problem(f"{prefix}.min_capacity", low, "allowed: a min_capacity, a max_capacity or both")
    if low is not None:
        if s.high_availability and low < 2:
            yield _problem(
                f"{prefix}.min_capacity",
                low,
                "high_availability needs instances in 2 AZs; allowed: 2 or more, or high_availability=False",
            )
        elif low < 1:
            yield _problem(f"{prefix}.min_capacity", low, "allowed: 1 or more")
        elif high is not None and low > high:
            yield _problem(f"{prefix}.min_capacity", low, f"allowed: at most this action's max_capacity ({high})")
        elif high is None and low > scaling.max_capacity:
            yield _problem(
                f"{prefix}.min_capacity",
                low,
                f"the action keeps the maximum at autoscaling.max_capacity; allowed: at most "
                f"{scaling.max_capacity}, or set this action's max_capacity",
            )
    if high is not None:
        if high < 1:
            yield _problem(f"{prefix}.max_capacity", high, "allowed: 1 or more")
        elif low is None and high < scaling.min_capacity:
            yield _problem(
                f"{prefix}.max_capacity",
                high,
                f"the action keeps the minimum at autoscaling.min_capacity; allowed: at least "
                f"{scaling.min_capacity}, or set this action's min_capacity",
            )


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _artifact_path_problem(setting: str, path: str) -> str | None:
    """A path the user wrote that cannot name an artifact file (an empty one would mean the sample)."""
    if not path.strip():
        return _problem(setting, path, "allowed: a path to a model .tar.gz in this repository, or None")
    return None


def _artifact_problems(s: StageSettings) -> Iterator[str]:
    if s.profile not in PROFILES:
        return
    if s.model_artifact is not None:
        problem = _artifact_path_problem("model_artifact", s.model_artifact)
        if problem is not None:
            yield problem + " for the profile's artifact"
            return
    try:
        artifact = s.artifact
    except ArtifactError as error:
        yield _problem("model_artifact", s.artifact_file, f"the artifact {error}")
        return
    yield from _fit_problems(s, "model_artifact", s.artifact_file, artifact)


def inspect_profile_artifact(profile: Profile, path: Path) -> ModelArtifact:
    """The artifact, checked for the layout the profile's container reads."""
    return inspect_artifact(path, root_file_first=profile.name == "cpu")


def _fit_problems(s: StageSettings, setting: str, path: str, artifact: ModelArtifact) -> Iterator[str]:
    """Why the profile's container cannot serve this (otherwise sound) artifact."""
    manifest = artifact.manifest
    features = manifest["features"]
    if (
        not features
        or not all(isinstance(name, str) and name for name in features)
        or len(set(features)) != len(features)
    ):
        yield _problem(
            setting, path, "its manifest's features must be unique non-empty names; package it with make package"
        )
    version = s.container_version
    if version not in s.serving.versions():
        return  # image_tag is reported on its own; the artifact is not wrong for an image that does not exist
    if s.profile == "cpu":
        runtime = catalog.xgboost_image_table(version)["xgboost_version"]
        if _major_minor(runtime) != _major_minor(artifact.xgboost_version):
            # XGBoost models saved by one minor version can load but predict differently in another
            # (base_score encoding changed in 2.x/3.x), so the container must run the training version.
            yield _problem(
                "image_tag",
                version,
                f"it runs XGBoost {runtime} but the model was saved with XGBoost {artifact.xgboost_version}; "
                "allowed: a tag whose XGBoost matches the model's, or retrain with that version",
            )
    elif s.profile == "gpu":
        triton = manifest.get("triton", {})
        if triton.get("backend") != "fil" or triton.get("model_name") != TRITON_MODEL_NAME:
            yield _problem(
                setting,
                path,
                "the gpu profile serves a Triton FIL model repository; allowed: make triton-model's output",
            )
        elif triton.get("image_version") != version:
            yield _problem(
                setting, path, f"it was built for Triton {triton.get('image_version')}, not {version}; rebuild it"
            )
    elif s.profile == "inferentia":
        neo = manifest.get("neo", {})
        if neo.get("target_device") != "ml_inf1" or neo.get("framework") != "PYTORCH":
            yield _problem(
                setting,
                path,
                "the inferentia profile compiles a traced PyTorch model for ml_inf1 with Neo (XGBoost cannot be "
                "compiled for Inferentia); allowed: a compiled-ready artifact from make inf1-model",
            )
        elif neo.get("framework_version") != version:
            yield _problem(
                setting, path, f"it targets Neo PyTorch {neo.get('framework_version')}, not {version}; rebuild it"
            )


def _monitoring_problems(s: StageSettings) -> Iterator[str]:
    if not 0 < s.latency_slo_ms <= 60_000:
        yield _problem(
            "latency_slo_ms", s.latency_slo_ms, "allowed: greater than 0, at most 60000 (the invoke timeout)"
        )
    if not 0 < s.error_rate_alarm < 1:
        yield _problem("error_rate_alarm", s.error_rate_alarm, "allowed: a share between 0 and 1, such as 0.01")
    # CloudWatch evaluates at most one day of one-minute periods.
    if not 1 <= s.max_capacity_alarm_minutes <= 1440:
        yield _problem("max_capacity_alarm_minutes", s.max_capacity_alarm_minutes, "allowed: 1 to 1440")


TRAFFIC_SHIFTING = ("CANARY", "LINEAR", "ALL_AT_ONCE")
# SageMaker's bounds: canary size at most 50% of the fleet, linear steps 10-50%.
_STEP_PERCENT = {"CANARY": (1, 50), "LINEAR": (10, 50), "ALL_AT_ONCE": (1, 100)}
# The rollback alarms evaluate two one-minute datapoints; a shorter bake could shift before they can fire.
MIN_BAKE_WITH_ROLLBACK_SECONDS = 120


def rollout_steps(rollout: RolloutSettings) -> int:
    """Traffic-shifting steps, each followed by a baking period of wait_interval_seconds."""
    if rollout.traffic_shifting == "LINEAR":
        return -(-100 // rollout.step_percent)
    return 2 if rollout.traffic_shifting == "CANARY" else 1


def _rollout_problems(rollout: RolloutSettings) -> Iterator[str]:
    if rollout.traffic_shifting not in TRAFFIC_SHIFTING:
        yield _problem(
            "rollout.traffic_shifting", rollout.traffic_shifting, f"allowed: one of {list(TRAFFIC_SHIFTING)}"
        )
        return
    low, high = _STEP_PERCENT[rollout.traffic_shifting]
    if not low <= rollout.step_percent <= high:
        yield _problem(
            "rollout.step_percent",
            rollout.step_percent,
            f"a {rollout.traffic_shifting} step is a share of the variant's capacity; allowed: {low} to {high}",
        )
        return
    low_wait = MIN_BAKE_WITH_ROLLBACK_SECONDS if rollout.auto_rollback else WAIT_RANGE[0]
    waits_ok = True
    if not low_wait <= rollout.wait_interval_seconds <= WAIT_RANGE[1]:
        why = " (the rollback alarms need two one-minute datapoints per step)" if rollout.auto_rollback else ""
        yield _problem(
            "rollout.wait_interval_seconds",
            rollout.wait_interval_seconds,
            f"allowed: {low_wait} to {WAIT_RANGE[1]}{why}",
        )
        waits_ok = False
    if not WAIT_RANGE[0] <= rollout.termination_wait_seconds <= WAIT_RANGE[1]:
        yield _problem(
            "rollout.termination_wait_seconds",
            rollout.termination_wait_seconds,
            f"allowed: {WAIT_RANGE[0]} to {WAIT_RANGE[1]}",
        )
        waits_ok = False
    low, high = EXECUTION_TIMEOUT_RANGE
    timeout = rollout.max_execution_timeout_seconds
    waiting = rollout_steps(rollout) * rollout.wait_interval_seconds + rollout.termination_wait_seconds
    how = (
        f"the rollout waits {waiting} s ({rollout_steps(rollout)} bakes of wait_interval_seconds plus "
        "termination_wait_seconds)"
    )
    if not low <= timeout <= high:
        yield _problem("rollout.max_execution_timeout_seconds", timeout, f"allowed: {low} to {high}")
    elif not waits_ok:
        return  # the waiting is already reported as out of range
    elif waiting >= high:
        yield _problem(
            "rollout.wait_interval_seconds",
            rollout.wait_interval_seconds,
            f"{how}, and SageMaker stops a rollout after at most {high} s; allowed: shorter bakes or termination "
            f"wait, so that the waiting stays under {high}",
        )
    elif timeout <= waiting:
        yield _problem(
            "rollout.max_execution_timeout_seconds",
            timeout,
            f"{how}; allowed: more than {waiting}, at most {high}",
        )


def _data_capture_problems(capture: DataCaptureSettings) -> Iterator[str]:
    if not 1 <= capture.sampling_percent <= 100:
        yield _problem("data_capture.sampling_percent", capture.sampling_percent, "allowed: 1 to 100")
    if not 1 <= capture.retention_days <= 3650:
        yield _problem("data_capture.retention_days", capture.retention_days, "allowed: 1 to 3650")


def _client_probe_problems(s: StageSettings) -> Iterator[str]:
    probe = s.client_probe
    if not 1 <= probe.burst_size <= PROBE_MAX_BURST:
        yield _problem("client_probe.burst_size", probe.burst_size, f"allowed: 1 to {PROBE_MAX_BURST}")
    if not 1 <= probe.schedule_minutes <= PROBE_MAX_SCHEDULE_MINUTES:
        yield _problem(
            "client_probe.schedule_minutes", probe.schedule_minutes, f"allowed: 1 to {PROBE_MAX_SCHEDULE_MINUTES}"
        )
    elif 1 <= probe.burst_size <= PROBE_MAX_BURST:
        window = window_minutes(probe.burst_size, probe.schedule_minutes, "p99")
        if window > MAX_WINDOW_MINUTES:
            yield _problem(
                "client_probe.burst_size",
                probe.burst_size,
                f"the client-seen p99 alarm needs {min_samples('p99')} probe calls per window (CloudWatch's "
                f"low-sample rule), which {probe.burst_size} calls every {probe.schedule_minutes} min take "
                f"{window} min to gather; allowed: a burst_size and schedule_minutes that gather them within "
                f"{MAX_WINDOW_MINUTES} min (a day): burst_size of at least "
                f"{-(-min_samples('p99') // (MAX_WINDOW_MINUTES // probe.schedule_minutes))} with schedule_minutes="
                f"{probe.schedule_minutes}",
            )
    if probe.enabled and not s.client_azs:
        yield _problem(
            "client_probe.enabled",
            probe.enabled,
            "the probe runs in each client AZ's subnet; allowed: True only with client_azs set",
        )
    if probe.enabled and s.profile in PROFILES:
        try:
            sample = str(s.artifact.manifest.get("sample_payload", ""))
        except ArtifactError:
            return  # model_artifact's own problem says why
        if not sample or len(sample) > PROBE_MAX_SAMPLE_CHARS:
            yield _problem(
                "client_probe.enabled",
                probe.enabled,
                f"the probe sends the manifest's sample_payload ({len(sample)} characters) in its function's "
                f"environment, which Lambda caps at 4 KB; allowed: True with a sample_payload of 1 to "
                f"{PROBE_MAX_SAMPLE_CHARS} characters",
            )


def _shadow_problems(s: StageSettings) -> Iterator[str]:
    shadow = s.shadow
    if shadow is None:
        return
    if not 1 <= shadow.sampling_percent <= 100:
        yield _problem("shadow.sampling_percent", shadow.sampling_percent, "allowed: 1 to 100")
    count = _count_problem("shadow.instance_count", shadow.instance_count, 1)
    if count is not None:
        yield count
    instance_type = shadow.instance_type or s.instance_type
    if shadow.instance_type is not None:
        known = catalog.hosting_instance_types()
        if instance_type not in known:
            yield _problem(
                "shadow.instance_type", instance_type, "allowed: a type in stacks/data/instance_types.json, or None"
            )
            return
        if s.instance_type in known:
            main = catalog.InstanceType.parse(s.instance_type)
            candidate = catalog.InstanceType.parse(instance_type)
            if candidate.has_local_nvme != main.has_local_nvme:
                yield _problem(
                    "shadow.instance_type",
                    instance_type,
                    "the endpoint config's KmsKeyId covers every variant, so the shadow needs the same kind of "
                    f"storage as {s.instance_type}; allowed: a type {'with' if main.has_local_nvme else 'without'} "
                    "local NVMe storage, or None",
                )
    if s.profile not in PROFILES:
        return
    if s.serving.compiled:
        yield _problem(
            "shadow",
            shadow,
            "the inferentia profile compiles its one artifact with Neo during the deploy; allowed: None",
        )
        return
    listed = shadow.instance_type is not None and instance_type in catalog.hosting_instance_types()
    if listed and not s.serving.fits(catalog.InstanceType.parse(instance_type)):
        yield _problem("shadow.instance_type", instance_type, f"the {s.profile} profile serves {s.serving.families}")
    problem = _artifact_path_problem("shadow.model_artifact", shadow.model_artifact)
    if problem is not None:
        yield problem
        return
    try:
        artifact = inspect_profile_artifact(s.serving, REPO_ROOT / shadow.model_artifact)
    except ArtifactError as error:
        yield _problem("shadow.model_artifact", shadow.model_artifact, f"the artifact {error}")
        return
    yield from _fit_problems(s, "shadow.model_artifact", shadow.model_artifact, artifact)
