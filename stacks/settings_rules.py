"""The bounds the settings are held to (SageMaker's, CloudWatch's, Lambda's and the kit's own; the rollout's
step sizes and the cron fields sit with their rules in stacks/settings_checks.py), and the rules on where a
stage runs and what it serves: its name, account and region, network, instance type, model artifacts, client
probe and shadow.

Each rule takes a StageSettings whose types stacks/settings_checks.py has already checked, and yields one
line per problem naming the setting, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from stacks import catalog
from stacks.artifact import ArtifactError, ModelArtifact, inspect_artifact
from stacks.profiles import PROFILES, TRITON_MODEL_NAME, Profile
from stacks.sample_counts import MAX_WINDOW_MINUTES, min_samples, window_minutes

if TYPE_CHECKING:
    from stacks.settings import StageSettings

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
# Endpoints (shards) a stage serves through, each with its own instance counts (up to MAX_INSTANCES). The kit's
# bound: 10 shards of 1,000 instances are 10,000 instances, a million requests a second at 100 per instance; a
# stage of 10 keeps its stack far inside CloudFormation's 500 resources and its rollback-alarm policy inside
# IAM's 6,144 characters (tests/test_shards.py synthesizes one to check).
MAX_SHARDS = 10
MAX_RPS_PER_INSTANCE = 1_000_000.0
# The documented MAX_RPS per instance for a stage that has no measurement on its instance type.
DEFAULT_MAX_RPS_PER_INSTANCE = 1000.0
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
CONTEXT_FILE = Path(__file__).resolve().parents[1] / "cdk.context.json"


def invalid(setting: str, value: object, allowed: str) -> str:
    """One problem's line: the setting, its value, and what is allowed."""
    return f"{setting}={value!r} is invalid: {allowed}"


def identity_problems(s: StageSettings) -> Iterator[str]:
    if not _STAGE_NAME.fullmatch(s.name):
        yield invalid("name", s.name, "allowed: lowercase ASCII letters, digits and '-', starting with a letter")
    elif len(s.name) > STAGE_NAME_MAX:
        yield invalid(
            "name", s.name, f"{len(s.name)} characters; allowed: at most {STAGE_NAME_MAX} (the stack is named after it)"
        )
    elif len(longest := s.shard_endpoint_name(s.shards - 1 if 1 <= s.shards <= MAX_SHARDS else 0)) > ENDPOINT_NAME_MAX:
        yield invalid(
            "name",
            s.name,
            f"the endpoint name {longest!r} would have {len(longest)} characters; "
            f"allowed: a name that keeps it within SageMaker's {ENDPOINT_NAME_MAX}",
        )
    if s.account is not None and not _ACCOUNT.fullmatch(s.account):
        yield invalid("account", s.account, "allowed: a 12-digit AWS account id, or None")
    if s.profile not in PROFILES:
        yield invalid("profile", s.profile, f"allowed: one of {list(PROFILES)}")
        return
    versions = s.serving.versions()
    if s.image_tag is not None and s.image_tag not in versions:
        yield invalid(
            "image_tag", s.image_tag, f"the {s.profile} profile's images: allowed: one of {list(versions)}, or None"
        )
        return
    if s.region is None:
        return
    if not _REGION.fullmatch(s.region):
        yield invalid("region", s.region, "allowed: an AWS region name such as 'us-east-1', or None")
    elif s.serving.registry(s.container_version).image(s.region) is None:
        regions = sorted(s.serving.registry(s.container_version).regions)
        yield invalid(
            "region",
            s.region,
            f"SageMaker publishes no {s.serving.image_label} {s.container_version} image there; "
            f"allowed: one of {regions}",
        )


def network_problems(s: StageSettings) -> Iterator[str]:
    if s.region is None:
        if s.client_azs:
            yield invalid(
                "client_azs",
                s.client_azs,
                "an environment-agnostic stage (region=None) uses the first two AZs of the deploy region; "
                "allowed: () or set region",
            )
    elif _REGION.fullmatch(s.region):
        if len(s.client_azs) < 2:
            yield invalid("client_azs", s.client_azs, "allowed: at least 2 Availability Zones (high availability)")
        if len(set(s.client_azs)) != len(s.client_azs):
            yield invalid("client_azs", s.client_azs, "allowed: each Availability Zone once")
        zone = re.compile(rf"{re.escape(s.region)}[a-z]", re.ASCII)
        for az in s.client_azs:
            if not zone.fullmatch(az):
                yield invalid(
                    "client_azs", az, f"allowed: Availability Zones of region {s.region} such as '{s.region}a'"
                )
    if s.vpc_id is not None:
        if s.vpc_cidr is not None:
            yield invalid(
                "vpc_cidr", s.vpc_cidr, "an existing VPC (vpc_id) keeps its own network; allowed: None with vpc_id"
            )
        if not _VPC_ID.fullmatch(s.vpc_id):
            yield invalid("vpc_id", s.vpc_id, "allowed: a VPC id such as 'vpc-0123456789abcdef0', or None")
        elif s.account is None or s.region is None:
            yield invalid(
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
            yield invalid("client_cidrs", cidr, "allowed: IPv4 or IPv6 networks such as '10.0.0.0/16'")
            continue
        if network.prefixlen == 0 or not network.is_private:
            yield invalid("client_cidrs", cidr, "allowed: private networks only (no public path to the endpoint)")


def _runtime_endpoint_problems(s: StageSettings) -> Iterator[str]:
    existing = s.runtime_endpoint
    if existing is None:
        return
    if s.vpc_id is None:
        yield invalid(
            "runtime_endpoint",
            existing,
            "the VPC the stage creates has no endpoint yet; allowed: None, or an existing VPC's endpoint with vpc_id",
        )
        return
    if not _VPC_ENDPOINT_ID.fullmatch(existing.vpc_endpoint_id):
        yield invalid(
            "runtime_endpoint.vpc_endpoint_id",
            existing.vpc_endpoint_id,
            "allowed: an interface endpoint id such as 'vpce-0123456789abcdef0'",
        )
    if not _SECURITY_GROUP_ID.fullmatch(existing.security_group_id):
        yield invalid(
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
        yield invalid(
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
        yield invalid("vpc_cidr", cidr, f"{error}; allowed: an IPv4 network such as '10.42.0.0/16'")
        return
    if not 16 <= network.prefixlen <= 24 or not any(network.subnet_of(block) for block in VPC_RANGES):
        yield invalid(
            "vpc_cidr",
            cidr,
            f"allowed: a private IPv4 network from /16 to /24 within {', '.join(map(str, VPC_RANGES))}",
        )


def instance_problems(s: StageSettings) -> Iterator[str]:
    known = catalog.hosting_instance_types()
    if s.instance_type not in known:
        close = difflib.get_close_matches(s.instance_type, known, n=3, cutoff=0.8)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        yield invalid(
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
        yield invalid(
            "instance_type",
            s.instance_type,
            f"the {s.profile} profile serves {s.serving.families}; allowed: one of those{hint}",
        )
    if instance.is_burstable and s.autoscaling.enabled:
        yield invalid(
            "instance_type",
            s.instance_type,
            "burstable (ml.t*) instances cannot be autoscaled; "
            "allowed: a non-burstable type, or autoscaling.enabled=False",
        )
    if not instance.has_local_nvme and not s.kms_encryption:
        yield invalid(
            "kms_encryption",
            s.kms_encryption,
            f"{s.instance_type} stores the model on an EBS volume, which must be encrypted with the stack's "
            "customer-managed key; allowed: True",
        )
    if instance.has_local_nvme and s.kms_encryption:
        yield invalid(
            "kms_encryption",
            s.kms_encryption,
            f"{s.instance_type} has local NVMe storage, which SageMaker encrypts in hardware and for which it "
            "rejects KmsKeyId; allowed: False for this type, or a type without local storage such as ml.c5.xlarge",
        )


def count_problem(setting: str, value: int, low: int) -> str | None:
    if value < low:
        return invalid(setting, value, f"allowed: {low} or more")
    if value > MAX_INSTANCES:
        return invalid(setting, value, f"allowed: at most {MAX_INSTANCES} (the kit's bound on instance counts)")
    return None


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _artifact_path_problem(setting: str, path: str) -> str | None:
    """A path the user wrote that cannot name an artifact file (an empty one would mean the sample)."""
    if not path.strip():
        return invalid(setting, path, "allowed: a path to a model .tar.gz in this repository, or None")
    return None


def artifact_problems(s: StageSettings) -> Iterator[str]:
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
        yield invalid("model_artifact", s.artifact_file, f"the artifact {error}")
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
        yield invalid(
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
            yield invalid(
                "image_tag",
                version,
                f"it runs XGBoost {runtime} but the model was saved with XGBoost {artifact.xgboost_version}; "
                "allowed: a tag whose XGBoost matches the model's, or retrain with that version",
            )
    elif s.profile == "gpu":
        triton = manifest.get("triton", {})
        if triton.get("backend") != "fil" or triton.get("model_name") != TRITON_MODEL_NAME:
            yield invalid(
                setting,
                path,
                "the gpu profile serves a Triton FIL model repository; allowed: make triton-model's output",
            )
        elif triton.get("image_version") != version:
            yield invalid(
                setting, path, f"it was built for Triton {triton.get('image_version')}, not {version}; rebuild it"
            )
    elif s.profile == "inferentia":
        neo = manifest.get("neo", {})
        if neo.get("target_device") != "ml_inf1" or neo.get("framework") != "PYTORCH":
            yield invalid(
                setting,
                path,
                "the inferentia profile compiles a traced PyTorch model for ml_inf1 with Neo (XGBoost cannot be "
                "compiled for Inferentia); allowed: a compiled-ready artifact from make inf1-model",
            )
        elif neo.get("framework_version") != version:
            yield invalid(
                setting, path, f"it targets Neo PyTorch {neo.get('framework_version')}, not {version}; rebuild it"
            )


def client_probe_problems(s: StageSettings) -> Iterator[str]:
    probe = s.client_probe
    if not 1 <= probe.burst_size <= PROBE_MAX_BURST:
        yield invalid("client_probe.burst_size", probe.burst_size, f"allowed: 1 to {PROBE_MAX_BURST}")
    if not 1 <= probe.schedule_minutes <= PROBE_MAX_SCHEDULE_MINUTES:
        yield invalid(
            "client_probe.schedule_minutes", probe.schedule_minutes, f"allowed: 1 to {PROBE_MAX_SCHEDULE_MINUTES}"
        )
    elif 1 <= probe.burst_size <= PROBE_MAX_BURST:
        window = window_minutes(probe.burst_size, probe.schedule_minutes, "p99")
        if window > MAX_WINDOW_MINUTES:
            yield invalid(
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
        yield invalid(
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
            yield invalid(
                "client_probe.enabled",
                probe.enabled,
                f"the probe sends the manifest's sample_payload ({len(sample)} characters) in its function's "
                f"environment, which Lambda caps at 4 KB; allowed: True with a sample_payload of 1 to "
                f"{PROBE_MAX_SAMPLE_CHARS} characters",
            )


def shadow_problems(s: StageSettings) -> Iterator[str]:
    shadow = s.shadow
    if shadow is None:
        return
    if not 1 <= shadow.sampling_percent <= 100:
        yield invalid("shadow.sampling_percent", shadow.sampling_percent, "allowed: 1 to 100")
    count = count_problem("shadow.instance_count", shadow.instance_count, 1)
    if count is not None:
        yield count
    instance_type = shadow.instance_type or s.instance_type
    if shadow.instance_type is not None:
        known = catalog.hosting_instance_types()
        if instance_type not in known:
            yield invalid(
                "shadow.instance_type", instance_type, "allowed: a type in stacks/data/instance_types.json, or None"
            )
            return
        if s.instance_type in known:
            main = catalog.InstanceType.parse(s.instance_type)
            candidate = catalog.InstanceType.parse(instance_type)
            if candidate.has_local_nvme != main.has_local_nvme:
                yield invalid(
                    "shadow.instance_type",
                    instance_type,
                    "the endpoint config's KmsKeyId covers every variant, so the shadow needs the same kind of "
                    f"storage as {s.instance_type}; allowed: a type {'with' if main.has_local_nvme else 'without'} "
                    "local NVMe storage, or None",
                )
    if s.profile not in PROFILES:
        return
    if s.serving.compiled:
        yield invalid(
            "shadow",
            shadow,
            "the inferentia profile compiles its one artifact with Neo during the deploy; allowed: None",
        )
        return
    listed = shadow.instance_type is not None and instance_type in catalog.hosting_instance_types()
    if listed and not s.serving.fits(catalog.InstanceType.parse(instance_type)):
        yield invalid("shadow.instance_type", instance_type, f"the {s.profile} profile serves {s.serving.families}")
    problem = _artifact_path_problem("shadow.model_artifact", shadow.model_artifact)
    if problem is not None:
        yield problem
        return
    try:
        artifact = inspect_profile_artifact(s.serving, REPO_ROOT / shadow.model_artifact)
    except ArtifactError as error:
        yield invalid("shadow.model_artifact", shadow.model_artifact, f"the artifact {error}")
        return
    yield from _fit_problems(s, "shadow.model_artifact", shadow.model_artifact, artifact)
