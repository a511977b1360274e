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
    yield from _artifact_problems(s)
    if not TIMEOUT_RANGE[0] <= s.container_startup_timeout_seconds <= TIMEOUT_RANGE[1]:
        yield _problem("container_startup_timeout_seconds", s.container_startup_timeout_seconds, "allowed: 60 to 3600")
    if not TIMEOUT_RANGE[0] <= s.model_download_timeout_seconds <= TIMEOUT_RANGE[1]:
        yield _problem("model_download_timeout_seconds", s.model_download_timeout_seconds, "allowed: 60 to 3600")
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
