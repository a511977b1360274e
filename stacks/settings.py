"""The typed, validated settings of one stage (environment).

Every field is documented in the README's settings table. A stage that breaks a rule fails here, at
synth, with one line per problem naming the setting, the value and what is allowed, before anything
reaches CloudFormation.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from stacks import catalog
from stacks.artifact import ArtifactError, ModelArtifact, inspect_artifact

REPO_ROOT = Path(__file__).resolve().parents[1]

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
# SageMaker's bounds for ContainerStartupHealthCheckTimeoutInSeconds and ModelDataDownloadTimeoutInSeconds.
TIMEOUT_RANGE = (60, 3600)

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_ACCOUNT = re.compile(r"^\d{12}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")


class SettingsError(ValueError):
    """One or more settings of a stage are wrong; the message lists every problem."""

    def __init__(self, stage: str, problems: list[str]) -> None:
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
    # Measured on one instance by a load test; the target tracking value follows from it.
    max_rps_per_instance: float = 1000.0
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
        return self.max_rps_per_instance * self.safety_factor * 60


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
    vpc_cidr: str = "10.42.0.0/16"
    # Networks, besides the exported client security group, that may call the runtime endpoint.
    client_cidrs: tuple[str, ...] = ()
    instance_type: str = "ml.c5.xlarge"
    initial_instance_count: int = 2
    high_availability: bool = True
    image_tag: str = "3.2-0"
    model_artifact: str = "model_artifacts/model.tar.gz"
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

    def __post_init__(self) -> None:
        problems = list(_type_problems(self)) or list(_rule_problems(self))
        if problems:
            raise SettingsError(self.name, problems)

    @property
    def artifact_path(self) -> Path:
        return REPO_ROOT / self.model_artifact

    @cached_property
    def artifact(self) -> ModelArtifact:
        return inspect_artifact(self.artifact_path)

    @property
    def stack_name(self) -> str:
        return f"RtbInference-{self.name}"

    @property
    def environment_agnostic(self) -> bool:
        return self.region is None


def _problem(setting: str, value: object, allowed: str) -> str:
    return f"{setting}={value!r} is invalid: {allowed}"


def _walk(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted setting name, value, declared type) for every field, nested ones included."""
    for item in fields(obj):
        value = getattr(obj, item.name)
        name = f"{prefix}{item.name}"
        if is_dataclass(value):
            yield from _walk(value, f"{name}.")
        else:
            yield name, value, item.type


_TYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "tuple[str, ...]": (tuple,),
}


def _type_problems(settings: StageSettings) -> Iterator[str]:
    """Wrong types first: a string where a number belongs would make the rules below meaningless."""
    for name, value, declared in _walk(settings):
        declared_text = str(declared)
        optional = declared_text.endswith(" | None")
        base = declared_text.removesuffix(" | None")
        if value is None and optional:
            continue
        expected = _TYPE_CHECKS.get(base)
        if expected is None:
            continue
        wrong = not isinstance(value, expected) or (base != "bool" and isinstance(value, bool))
        if base == "tuple[str, ...]" and not wrong:
            wrong = not all(isinstance(item, str) for item in value)
        if wrong:
            yield _problem(name, value, f"expected {declared_text}")


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
    if s.log_retention_days not in LOG_RETENTION_DAYS:
        yield _problem("log_retention_days", s.log_retention_days, f"allowed: one of {list(LOG_RETENTION_DAYS)}")


def _identity_problems(s: StageSettings) -> Iterator[str]:
    if not _STAGE_NAME.match(s.name):
        yield _problem("name", s.name, "allowed: lowercase letters, digits and '-', starting with a letter")
    if s.account is not None and not _ACCOUNT.match(s.account):
        yield _problem("account", s.account, "allowed: a 12-digit AWS account id, or None")
    if s.image_tag not in catalog.xgboost_image_tags():
        yield _problem("image_tag", s.image_tag, f"allowed: one of {list(catalog.xgboost_image_tags())}")
        return
    if s.region is None:
        return
    if not _REGION.match(s.region):
        yield _problem("region", s.region, "allowed: an AWS region name such as 'us-east-1', or None")
    elif catalog.xgboost_image(s.image_tag, s.region) is None:
        regions = sorted(catalog.xgboost_image_table(s.image_tag)["regions"])
        yield _problem(
            "region",
            s.region,
            f"SageMaker publishes no XGBoost {s.image_tag} image there; allowed: one of {regions}",
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
    elif _REGION.match(s.region):
        if len(s.client_azs) < 2:
            yield _problem("client_azs", s.client_azs, "allowed: at least 2 Availability Zones (high availability)")
        if len(set(s.client_azs)) != len(s.client_azs):
            yield _problem("client_azs", s.client_azs, "allowed: each Availability Zone once")
        zone = re.compile(rf"^{re.escape(s.region)}[a-z]$")
        for az in s.client_azs:
            if not zone.match(az):
                yield _problem(
                    "client_azs", az, f"allowed: Availability Zones of region {s.region} such as '{s.region}a'"
                )
    if s.vpc_id is not None:
        if not _VPC_ID.match(s.vpc_id):
            yield _problem("vpc_id", s.vpc_id, "allowed: a VPC id such as 'vpc-0123456789abcdef0', or None")
        if s.account is None or s.region is None:
            yield _problem(
                "vpc_id", s.vpc_id, "an existing VPC is looked up per account and region; set account and region"
            )
    else:
        yield from _vpc_cidr_problems(s.vpc_cidr)
    for cidr in s.client_cidrs:
        try:
            network = ipaddress.ip_network(cidr)
        except ValueError:
            yield _problem("client_cidrs", cidr, "allowed: IPv4 or IPv6 networks such as '10.0.0.0/16'")
            continue
        if network.prefixlen == 0 or not network.is_private:
            yield _problem("client_cidrs", cidr, "allowed: private networks only (no public path to the endpoint)")


def _vpc_cidr_problems(cidr: str) -> Iterator[str]:
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError:
        yield _problem("vpc_cidr", cidr, "allowed: an IPv4 network such as '10.42.0.0/16'")
        return
    if not 16 <= network.prefixlen <= 24 or not network.is_private:
        yield _problem("vpc_cidr", cidr, "allowed: a private IPv4 network from /16 to /24")


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
    if not instance.is_x86_cpu:
        yield _problem(
            "instance_type",
            s.instance_type,
            "the built-in XGBoost container serves x86 CPU instances; allowed: ml.c5, ml.c6i, ml.m5, ml.r5 "
            "and other x86 CPU families",
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


def _capacity_problems(s: StageSettings) -> Iterator[str]:
    scaling = s.autoscaling
    if s.initial_instance_count < 1:
        yield _problem("initial_instance_count", s.initial_instance_count, "allowed: 1 or more")
    if s.high_availability and s.initial_instance_count < 2:
        yield _problem(
            "initial_instance_count",
            s.initial_instance_count,
            "high_availability needs instances in 2 AZs; allowed: 2 or more, or high_availability=False",
        )
    if not 0 < scaling.safety_factor <= 1:
        yield _problem("autoscaling.safety_factor", scaling.safety_factor, "allowed: greater than 0 and at most 1")
    if scaling.max_rps_per_instance <= 0:
        yield _problem("autoscaling.max_rps_per_instance", scaling.max_rps_per_instance, "allowed: greater than 0")
    if not scaling.enabled:
        return
    if scaling.min_capacity < 1:
        yield _problem("autoscaling.min_capacity", scaling.min_capacity, "allowed: 1 or more")
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
        if value < 0:
            yield _problem(f"autoscaling.{name}", value, "allowed: 0 or more")
    target = scaling.concurrency_target_per_instance
    if target is not None and target <= 0:
        yield _problem("autoscaling.concurrency_target_per_instance", target, "allowed: greater than 0, or None")


_SCHEDULED_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
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
    if text.isdigit():
        return int(text)
    return names.index(text.upper()) + low if text.upper() in names else None


def _cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not an Application Auto Scaling cron expression, or None if it is one."""
    match = _CRON.match(cron)
    if match is None:
        return "not of the form cron(...)"
    parts = match["fields"].split()
    if len(parts) != len(_CRON_FIELDS):
        return f"{len(parts)} fields instead of 6"
    for text, (field_name, low, high, names) in zip(parts, _CRON_FIELDS, strict=True):
        if text == "?":
            if field_name not in ("day-of-month", "day-of-week"):
                return f"'?' is only for day-of-month or day-of-week, not {field_name}"
            continue
        if field_name == "day-of-month" and re.fullmatch(r"L|LW|([1-9]|[12]\d|3[01])W", text):
            continue
        if field_name == "day-of-week" and re.fullmatch(r"[1-7]L|[1-7]#[1-5]", text):
            continue
        for item in text.split(","):
            base, slash, step = item.partition("/")
            if slash and not (step.isdigit() and int(step) >= 1):
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
    if not isinstance(action, ScheduledCapacity):
        yield _problem(prefix, action, "expected ScheduledCapacity")
        return
    wrong_type = False
    for name, expected in (("name", "str"), ("cron", "str"), ("min_capacity", "int"), ("max_capacity", "int")):
        value = getattr(action, name)
        if expected == "int" and value is None:
            continue
        if not isinstance(value, str if expected == "str" else int) or isinstance(value, bool):
            optional = " | None" if expected == "int" else ""
            yield _problem(f"{prefix}.{name}", value, f"expected {expected}{optional}")
            wrong_type = True
    if wrong_type:
        return
    if not _SCHEDULED_NAME.match(action.name):
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


def _artifact_problems(s: StageSettings) -> Iterator[str]:
    try:
        artifact = s.artifact
    except ArtifactError as error:
        yield _problem("model_artifact", s.model_artifact, f"the artifact {error}")
        return
    if artifact.feature_count != 7:
        yield _problem(
            "model_artifact", s.model_artifact, f"the model takes {artifact.feature_count} features; allowed: 7"
        )
    if s.image_tag not in catalog.xgboost_image_tags():
        return
    runtime = catalog.xgboost_image_table(s.image_tag)["xgboost_version"]
    if _major_minor(runtime) != _major_minor(artifact.xgboost_version):
        # XGBoost models saved by one minor version can load but predict differently in another
        # (base_score encoding changed in 2.x/3.x), so the container must run the training version.
        yield _problem(
            "image_tag",
            s.image_tag,
            f"it runs XGBoost {runtime} but the model was saved with XGBoost {artifact.xgboost_version}; "
            "allowed: a tag whose XGBoost matches the model's, or retrain with that version",
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
