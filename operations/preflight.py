"""Before a first deploy: read, with the deployer's credentials, what decides whether the deploy can succeed, and
print one line per check with its figures, or what is wrong and the fix.

    make preflight STAGE=dev                                    # synthesizes the stage, then runs this
    python scripts/preflight.py --stage dev [--assembly cdk.out]

Checks: the credentials; SageMaker's endpoint instance quotas (per type and account-wide) against every shard's
largest fleet plus one shard's update (blue/green: a second fleet; rolling: a batch) plus other endpoints' use;
Lambda's unreserved concurrency; an existing VPC's SageMaker Runtime endpoint; the CDK bootstrap version the
--assembly requires; the region's container image. Lines start PASS, WARN (not checked, e.g. a missing
permission, named) or FAIL (`fix:` says how). Exit 1 if a check fails, 2 for a wrong argument or stage, else 0.
Read-only; docs/first-deploy.md#preflight shows the lines.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError  # noqa: E402
from botocore.exceptions import ConnectionError as BotoConnectionError  # noqa: E402

# The endpoint-instance quotas' names and the rollout's surge: one module for this check and the capacity plan.
from capacity.quotas import ACCOUNT_WIDE_QUOTA as ACCOUNT_WIDE_QUOTA  # noqa: E402  (tests read it here)
from capacity.quotas import BLUE_GREEN, fleet_need, instance_type_quota  # noqa: E402
from capacity.quotas import QUOTA_SERVICE as QUOTA_SERVICE  # noqa: E402
from cliutil import OneLineParser, UsageError, aws_session, one_line  # noqa: E402
from stacks.github_ci_settings import BOOTSTRAP_QUALIFIER  # noqa: E402
from stacks.settings import SettingsError, StageSettings  # noqa: E402
from stacks.stages import STAGES, load_stage  # noqa: E402

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
# "You can reserve up to the Unreserved account concurrency value minus 100": the rest stays for functions
# without a reservation. https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
LAMBDA_MIN_UNRESERVED = 100
DEFAULT_BOOTSTRAP_PARAMETER = f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version"
# Error codes AWS answers a read the caller's policies do not allow with (EC2 says UnauthorizedOperation).
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"})
# VPC endpoint states in which an endpoint no longer holds its private DNS name.
GONE = frozenset({"deleting", "deleted", "failed", "rejected", "expired"})
COUNT_PERMISSIONS = "sagemaker:ListEndpoints, sagemaker:DescribeEndpoint and sagemaker:DescribeEndpointConfig"
QUOTA_PERMISSIONS = "servicequotas:ListServiceQuotas and servicequotas:ListAWSDefaultServiceQuotas"
# The boto3 service name of each client the checks read through.
SERVICES = dict(sts="sts", quotas="service-quotas", sagemaker="sagemaker", lambda_="lambda", ec2="ec2", ssm="ssm")


@dataclass(frozen=True)
class Result:
    """One check's outcome: its line is `<STATUS>  <check>: <text>`."""

    status: str
    check: str
    text: str

    @property
    def line(self) -> str:
        return f"{self.status}  {self.check}: {self.text}"


@dataclass(frozen=True)
class Clients:
    """The boto3 clients the checks read through (tests pass Stubber-wrapped ones)."""

    sts: Any
    quotas: Any
    sagemaker: Any
    lambda_: Any
    ec2: Any
    ssm: Any

    @classmethod
    def of(cls, session: Any, region: str) -> Clients:
        return cls(**{field: session.client(service, region_name=region) for field, service in SERVICES.items()})


@dataclass(frozen=True)
class Assembly:
    """What the synthesized stack asks of the account: the bootstrap version and its functions."""

    required_bootstrap: int
    bootstrap_parameter: str
    functions: int
    # ReservedConcurrentExecutions of each function that sets one.
    reserved: tuple[int, ...]


class ReadError(Exception):
    """An AWS read that did not answer; names the IAM action and AWS's error code."""

    def __init__(self, action: str, error: Exception) -> None:
        self.action = action
        self.code = str(error.response["Error"]["Code"]) if isinstance(error, ClientError) else type(error).__name__
        super().__init__(f"{self.code} on {action}")

    @property
    def denied(self) -> bool:
        return self.code in DENIED


def _fail(check: str, wrong: str, fix: str) -> Result:
    return Result(FAIL, check, f"{wrong}; fix: {fix}")


def _warn(check: str, why: str, fix: str) -> Result:
    return Result(WARN, check, f"{why}; fix: {fix}")


def _stage_function(settings: StageSettings) -> str:
    return f"{getattr(STAGES.get(settings.name), '__name__', 'the stage function')}() in stacks/stages.py"


def _allow(failed: ReadError | None, permissions: str) -> str:
    """The fix for a read that failed: the missing permission, or (throttling, network) another try."""
    return f"allow {permissions}" if failed is None or failed.denied else "run the preflight again"


def _read(action: str, call: Callable[..., Any], **params: Any) -> Any:
    try:
        return call(**params)
    except (ClientError, BotoCoreError) as error:
        raise ReadError(action, error) from error


def _pages(client: Any, operation: str, action: str, **params: Any) -> Iterator[Any]:
    try:
        yield from client.get_paginator(operation).paginate(**params)
    except (ClientError, BotoCoreError) as error:
        raise ReadError(action, error) from error


# --- reading the cloud assembly ------------------------------------------------------------------------------


def read_assembly(folder: Path, stack_name: str) -> Assembly:
    """The stack's bootstrap requirement and functions, from a cloud assembly `cdk synth` wrote; UsageError if
    the folder holds no assembly of that stack."""
    flag = f"--assembly {folder}"
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{flag}: no readable manifest.json ({one_line(error)}); allowed: the folder `cdk synth` writes "
            f"(make synth STAGE=NAME writes cdk.out)"
        ) from None
    artifacts: dict[str, Any] = manifest.get("artifacts") or {}
    stack = artifacts.get(stack_name) or {}
    if stack.get("type") != "aws:cloudformation:stack":
        held = sorted(name for name, item in artifacts.items() if item.get("type") == "aws:cloudformation:stack")
        raise UsageError(f"{flag} holds no stack {stack_name} (it holds {held}); allowed: the assembly of this stage")
    properties: dict[str, Any] = stack.get("properties") or {}
    # The cloud assembly schema: a stack and each asset manifest it depends on name the bootstrap version they
    # need and the SSM parameter that holds the deployed one (requiresBootstrapStackVersion,
    # bootstrapStackVersionSsmParameter).
    # https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.cloud_assembly_schema.AssetManifestOptions.html
    needing = [properties] + [
        (artifacts.get(name) or {}).get("properties") or {} for name in stack.get("dependencies") or []
    ]
    versions = [
        int(item["requiresBootstrapStackVersion"]) for item in needing if "requiresBootstrapStackVersion" in item
    ]
    try:
        template = json.loads((folder / str(properties["templateFile"])).read_text())
    except (KeyError, OSError, ValueError) as error:
        raise UsageError(f"{flag}: the template of {stack_name} is not readable ({one_line(error)})") from None
    functions = [
        resource.get("Properties") or {}
        for resource in (template.get("Resources") or {}).values()
        if resource.get("Type") == "AWS::Lambda::Function"
    ]
    return Assembly(
        required_bootstrap=max(versions, default=1),
        bootstrap_parameter=str(properties.get("bootstrapStackVersionSsmParameter", DEFAULT_BOOTSTRAP_PARAMETER)),
        functions=len(functions),
        reserved=tuple(
            item["ReservedConcurrentExecutions"]
            for item in functions
            if isinstance(item.get("ReservedConcurrentExecutions"), int)
        ),
    )


# --- 1. credentials ------------------------------------------------------------------------------------------


def check_credentials(settings: StageSettings, sts: Any, region: str, region_source: str) -> tuple[Result, str]:
    """The caller and its account; FAIL without credentials or in another account than the stage's."""
    check = "credentials"
    try:
        # No permission is needed for GetCallerIdentity, and an explicit deny does not stop it.
        # https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
        identity = sts.get_caller_identity()
    except NoCredentialsError:
        where = "no AWS credentials found (environment, shared files, SSO or instance role)"
        fix = "sign in for the stage's account (aws sso login, or AWS_PROFILE=NAME) and run make preflight"
        return _fail(check, where, f"{fix} STAGE={settings.name} again"), ""
    except ClientError as error:
        code = error.response["Error"]["Code"]
        return _fail(check, f"STS refused the credentials ({code})", "renew them (aws sso login, or a new session)"), ""
    except (BotoConnectionError, HTTPClientError) as error:
        return _fail(check, f"STS did not answer ({one_line(error)})", "check the network path to STS"), ""
    except BotoCoreError as error:  # expired SSO token, a profile that cannot be loaded, ...
        wrong = f"the AWS configuration gave no usable credentials ({one_line(error)})"
        return _fail(check, wrong, "sign in again (aws sso login, or AWS_PROFILE=NAME)"), ""
    account, arn = str(identity["Account"]), str(identity["Arn"])
    if settings.account is not None and account != settings.account:
        wrong = f"{arn} is in account {account}, stage {settings.name} deploys to {settings.account}"
        fix = f"use credentials for account {settings.account} (AWS_PROFILE=NAME, or aws sso login)"
        return _fail(check, wrong, fix), account
    whose = "the stage's" if settings.account else f"stage {settings.name} names none: it deploys to this one"
    return Result(PASS, check, f"{arn}, account {account} ({whose}), region {region} ({region_source})"), account


# --- 2 and 3. endpoint instance quotas -----------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """Instances a stage's fleet can take on one quota: every shard at what the settings allow, plus one shard's
    update beside it (capacity/quotas.py: a blue/green update runs a whole new fleet, a rolling one a batch)."""

    parts: tuple[tuple[str, int], ...]  # (setting, instances) of one shard
    shards: int = 1
    rollout: tuple[str, float | None, float | None] = (BLUE_GREEN, None, None)  # strategy, batch %, rollback %

    @property
    def instances(self) -> int:
        return fleet_need(sum(count for _, count in self.parts), self.shards, *self.rollout)

    @property
    def text(self) -> str:
        inner = " + ".join(f"{setting} {count}" for setting, count in self.parts)
        inner = f"({inner})" if len(self.parts) > 1 else inner
        if self.shards == 1 and self.rollout[0] == BLUE_GREEN:
            return f"needed {self.instances} (2 x {inner}: a blue/green update runs the new fleet beside the old)"
        surge = self.instances - self.shards * sum(count for _, count in self.parts)
        how = "a blue/green update's new fleet" if self.rollout[0] == BLUE_GREEN else "a rolling update's batch"
        fleet = f"{self.shards} shards x {inner}" if self.shards > 1 else inner
        return f"needed {self.instances} ({fleet} + {surge}: {how}, one shard at a time)"

    @property
    def settings(self) -> str:
        return " or ".join(dict.fromkeys(setting for setting, _ in self.parts))


def stage_needs(settings: StageSettings) -> dict[str, Need]:
    """Per instance type: the most instances the production variant runs, plus the shadow variant's."""
    scaling = settings.autoscaling
    most = (
        ("autoscaling.max_capacity", scaling.max_capacity)
        if scaling.enabled
        else ("initial_instance_count", settings.initial_instance_count)
    )
    parts: dict[str, list[tuple[str, int]]] = {settings.instance_type: [most]}
    shadow = settings.shadow
    if shadow is not None:
        parts.setdefault(shadow.instance_type or settings.instance_type, []).append(
            ("shadow.instance_count", shadow.instance_count)
        )
    rollout = settings.rollout
    how = (rollout.strategy, float(rollout.rolling_batch_percent), rollout.rolling_rollback_batch_percent)
    return {instance_type: Need(tuple(items), settings.shards, how) for instance_type, items in parts.items()}


def instances_elsewhere(sagemaker: Any, own_endpoints: tuple[str, ...]) -> Counter[str]:
    """Instances per type that the account's other endpoints run in the region (the stage's own endpoints, every
    shard, are part of the need, not of the use)."""
    used: Counter[str] = Counter()
    for page in _pages(sagemaker, "list_endpoints", "sagemaker:ListEndpoints"):
        for summary in page.get("Endpoints", []):
            name = summary["EndpointName"]
            if name in own_endpoints:
                continue
            try:
                endpoint = _read("sagemaker:DescribeEndpoint", sagemaker.describe_endpoint, EndpointName=name)
            except ReadError as failed:
                if failed.code == "ValidationException":  # deleted since it was listed
                    continue
                raise
            config = _read(
                "sagemaker:DescribeEndpointConfig",
                sagemaker.describe_endpoint_config,
                EndpointConfigName=endpoint["EndpointConfigName"],
            )
            types = {
                variant["VariantName"]: variant.get("InstanceType")
                for variant in [*config.get("ProductionVariants", []), *config.get("ShadowProductionVariants", [])]
            }
            for variant in [*endpoint.get("ProductionVariants", []), *endpoint.get("ShadowProductionVariants", [])]:
                instance_type = types.get(variant["VariantName"])
                if instance_type:  # serverless variants run no instances of a type
                    used[instance_type] += max(
                        variant.get("CurrentInstanceCount") or 0, variant.get("DesiredInstanceCount") or 0
                    )
    return used


@dataclass(frozen=True)
class Quota:
    value: int
    code: str
    source: str  # "applied" or "AWS default"


def read_quotas(quotas: Any, names: list[str]) -> dict[str, Quota]:
    """SageMaker quotas by name: the applied value, else AWS's default."""
    wanted = {name.lower(): name for name in names}
    found: dict[str, Quota] = {}
    # ListServiceQuotas answers applied values only; a quota without one is left out, and its value is AWS's
    # default. https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html
    # https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListAWSDefaultServiceQuotas.html
    lists = (
        ("list_service_quotas", "servicequotas:ListServiceQuotas", "applied"),
        ("list_aws_default_service_quotas", "servicequotas:ListAWSDefaultServiceQuotas", "AWS default"),
    )
    for operation, action, source in lists:
        if len(found) == len(wanted):
            break
        for page in _pages(quotas, operation, action, ServiceCode=QUOTA_SERVICE):
            for quota in page.get("Quotas", []):
                name = wanted.get(str(quota.get("QuotaName", "")).lower())
                if name is not None and name not in found and "Value" in quota:
                    found[name] = Quota(int(quota["Value"]), str(quota.get("QuotaCode", "")), source)
    return found


def quota_result(
    check: str,
    name: str,
    need: Need,
    *,
    quota: Quota | None,
    quota_failure: ReadError | None,
    elsewhere: int | None,
    count_failure: ReadError | None,
    region: str,
) -> Result:
    """Needed, in use elsewhere, quota and headroom of one quota; FAIL when the need does not fit."""
    if quota is None:
        compare = f"compare '{name}' in the Service Quotas console with {need.instances} plus what other endpoints use"
        if quota_failure is not None:
            return _warn(
                check, f"not checked ({quota_failure})", f"{_allow(quota_failure, QUOTA_PERMISSIONS)}, or {compare}"
            )
        return _warn(check, f"Service Quotas lists no quota named '{name}' in {region}", compare)
    total = need.instances + (elsewhere or 0)
    fix = (
        f"request '{name}' of at least {total} (aws service-quotas request-service-quota-increase --service-code "
        f"{QUOTA_SERVICE} --quota-code {quota.code} --desired-value {total} --region {region}), or lower "
        f"{need.settings}"
    )
    of_quota = f"quota {quota.value} ({quota.source})"
    if elsewhere is None:
        counted = f"{need.text}, {of_quota}, in use elsewhere not counted ({count_failure})"
        if total > quota.value:
            return _fail(check, counted, fix)
        return _warn(check, counted, f"{_allow(count_failure, COUNT_PERMISSIONS)} to count other endpoints' instances")
    figures = f"{need.text}, in use elsewhere {elsewhere}, {of_quota}, headroom {quota.value - total}"
    return _fail(check, figures, fix) if total > quota.value else Result(PASS, check, figures)


def check_quotas(settings: StageSettings, clients: Clients, region: str) -> list[Result]:
    """One line per instance type the stage runs, then the account-wide line."""
    needs = stage_needs(settings)
    first = next(iter(needs.values()))
    everything = Need(tuple(part for need in needs.values() for part in need.parts), first.shards, first.rollout)
    names = {instance_type: instance_type_quota(instance_type) for instance_type in needs}
    used: Counter[str] | None = None
    count_failure = quota_failure = None
    try:
        used = instances_elsewhere(clients.sagemaker, settings.endpoint_names)
    except ReadError as failed:
        count_failure = failed
    quotas: dict[str, Quota] = {}
    try:
        quotas = read_quotas(clients.quotas, [*names.values(), ACCOUNT_WIDE_QUOTA])
    except ReadError as failed:
        quota_failure = failed
    results = [
        quota_result(
            f"instance quota {instance_type}",
            names[instance_type],
            need,
            quota=quotas.get(names[instance_type]),
            quota_failure=quota_failure,
            elsewhere=None if used is None else used[instance_type],
            count_failure=count_failure,
            region=region,
        )
        for instance_type, need in needs.items()
    ]
    results.append(
        quota_result(
            "instances across endpoints",
            ACCOUNT_WIDE_QUOTA,
            everything,
            quota=quotas.get(ACCOUNT_WIDE_QUOTA),
            quota_failure=quota_failure,
            elsewhere=None if used is None else sum(used.values()),
            count_failure=count_failure,
            region=region,
        )
    )
    return results


# --- 4. Lambda concurrency -----------------------------------------------------------------------------------


def estimated_functions(settings: StageSettings) -> int:
    """The stack's functions by the settings: the ENI cleanup (stacks/teardown.py), the runtime endpoint's zonal
    DNS names (stacks/zonal_dns.py), the Neo compile of a compiled profile (stacks/compilation.py), CDK's
    default-security-group handler of a VPC the stack creates (stacks/network.py), one client probe per client AZ
    (stacks/client_probe.py; an environment-agnostic stage uses two AZs). tests/test_preflight.py holds this to
    the synthesized dev stack."""
    probes = (len(settings.client_azs) or 2) if settings.client_probe.enabled else 0
    return 2 + int(settings.serving.compiled) + int(settings.vpc_id is None) + probes


def check_lambda(settings: StageSettings, lambda_: Any, assembly: Assembly | None) -> Result:
    """FAIL if the account's unreserved concurrency cannot run the stack's functions at once, or would fall
    below Lambda's minimum once the stack's reservations are made."""
    check = "lambda concurrency"
    if assembly is not None:
        functions, reserved, counted = assembly.functions, assembly.reserved, ""
    else:
        functions, reserved = estimated_functions(settings), ()
        counted = " (estimated from the settings: no --assembly)"
    try:
        limits = _read("lambda:GetAccountSettings", lambda_.get_account_settings)["AccountLimit"]
    except ReadError as failed:
        fix = (
            f"{_allow(failed, 'lambda:GetAccountSettings')}, or read the account's unreserved concurrency in the "
            f"Lambda console (the stack's {functions} functions run at once)"
        )
        return _warn(check, f"not checked ({failed})", fix)
    total, unreserved = int(limits["ConcurrentExecutions"]), int(limits["UnreservedConcurrentExecutions"])
    pooled = functions - len(reserved)
    figures = (
        f"account {total}, unreserved {unreserved}; the stack's {functions} functions{counted} may all run at once"
    )
    figures += f", {len(reserved)} of them reserving {sum(reserved)}" if reserved else ", none reserves concurrency"
    quota_fix = "request a higher Lambda quota 'Concurrent executions' in Service Quotas"
    if reserved and unreserved - sum(reserved) < LAMBDA_MIN_UNRESERVED:
        wrong = (
            f"{figures}: a reservation may not leave less than {LAMBDA_MIN_UNRESERVED} unreserved, so the deploy "
            'fails ("decreases account\'s UnreservedConcurrentExecution below its minimum value")'
        )
        fix = (
            f"{quota_fix} (unreserved at least {LAMBDA_MIN_UNRESERVED + sum(reserved)}), or drop the functions' "
            "ReservedConcurrentExecutions"
        )
        return _fail(check, wrong, fix)
    if unreserved - sum(reserved) < pooled:
        wrong = f"{figures}: fewer unreserved than functions, so they throttle"
        return _fail(check, wrong, f"{quota_fix} (unreserved at least {pooled + sum(reserved)})")
    return Result(PASS, check, figures)


# --- 5. the runtime endpoint of an existing VPC --------------------------------------------------------------


def _use_it(settings: StageSettings, endpoint: dict[str, Any]) -> str:
    groups = [group["GroupId"] for group in endpoint.get("Groups", [])]
    others = f" (its other groups: {', '.join(groups[1:])})" if len(groups) > 1 else ""
    return (
        f"runtime_endpoint=ExistingRuntimeEndpoint(vpc_endpoint_id='{endpoint['VpcEndpointId']}', "
        f"security_group_id='{groups[0] if groups else 'sg-…'}') in {_stage_function(settings)}{others}"
    )


def zonal_azs(endpoint: dict[str, Any], azs: tuple[str, ...]) -> list[str]:
    """Those of ``azs`` the interface endpoint has a zonal DNS name in: `vpce-…-<az>.<service>…`, the first label
    ending in the AZ. https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html
    """
    first_labels = [str(entry.get("DnsName", "")).split(".")[0] for entry in endpoint.get("DnsEntries", [])]
    return [az for az in azs if any(label.endswith(f"-{az}") for label in first_labels)]


def check_runtime_endpoint(settings: StageSettings, ec2: Any, region: str) -> Result:
    """A stage that creates its endpoint needs a VPC without one holding the private DNS name; a stage that uses
    an existing one needs it available, with the given security group and a zonal name in every client AZ."""
    check = "runtime endpoint"
    vpc_id = settings.vpc_id
    service = f"com.amazonaws.{region}.sagemaker.runtime"
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "service-name", "Values": [service]}]
    try:
        found = [
            endpoint
            for page in _pages(ec2, "describe_vpc_endpoints", "ec2:DescribeVpcEndpoints", Filters=filters)
            for endpoint in page.get("VpcEndpoints", [])
        ]
    except ReadError as failed:
        fix = f"{_allow(failed, 'ec2:DescribeVpcEndpoints')}, or list {service} endpoints of {vpc_id} in the console"
        return _warn(check, f"not checked ({failed})", fix)
    existing = settings.runtime_endpoint
    if existing is None:
        # With private DNS, an interface endpoint associates a private hosted zone for the service's default name
        # with the VPC; a VPC takes one such zone per name, so a second endpoint with private DNS for the same
        # service is refused ("private-dns-enabled cannot be set because there is already a conflicting DNS
        # domain"). https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html
        # https://docs.aws.amazon.com/Route53/latest/APIReference/API_AssociateVPCWithHostedZone.html
        holding = [e for e in found if e.get("PrivateDnsEnabled") and str(e.get("State", "")).lower() not in GONE]
        if holding:
            wrong = (
                f"VPC {vpc_id} already has SageMaker Runtime endpoint {holding[0]['VpcEndpointId']} with private "
                "DNS, so the stack's own would be refused (conflicting DNS domain)"
            )
            return _fail(check, wrong, f"use it: {_use_it(settings, holding[0])}")
        return Result(
            PASS, check, f"VPC {vpc_id} has no SageMaker Runtime endpoint with private DNS: the stack creates one"
        )
    matching = [e for e in found if e.get("VpcEndpointId") == existing.vpc_endpoint_id]
    if not matching:
        listed = ", ".join(e["VpcEndpointId"] for e in found) or "none"
        fix = _use_it(settings, found[0]) if found else "create one, or set runtime_endpoint=None"
        wrong = f"{existing.vpc_endpoint_id} is not a SageMaker Runtime endpoint of VPC {vpc_id} (there: {listed})"
        return _fail(check, wrong, fix)
    endpoint = matching[0]
    problems: list[str] = []
    fixes: list[str] = []
    state = str(endpoint.get("State", "")).lower()
    if state != "available":
        problems.append(f"it is {state or 'in no state'}, not available")
        fixes.append(
            f"wait for it or repair it (aws ec2 describe-vpc-endpoints --vpc-endpoint-ids {existing.vpc_endpoint_id})"
        )
    groups = [group["GroupId"] for group in endpoint.get("Groups", [])]
    if existing.security_group_id not in groups:
        problems.append(f"it does not carry {existing.security_group_id} (its groups: {', '.join(groups) or 'none'})")
        fixes.append(
            f"set runtime_endpoint.security_group_id='{groups[0] if groups else 'sg-…'}' in {_stage_function(settings)}"
        )
    zonal = zonal_azs(endpoint, settings.client_azs)
    missing = [az for az in settings.client_azs if az not in zonal]
    if missing:
        problems.append(f"it has no zonal DNS name in {', '.join(missing)} (its subnets miss that AZ)")
        fixes.append(
            f"add a subnet in {', '.join(missing)} to it (EC2 ModifyVpcEndpoint, AddSubnetIds), "
            "or drop those client_azs"
        )
    if problems:
        return _fail(check, f"{existing.vpc_endpoint_id} in {vpc_id}: {', '.join(problems)}", ", and ".join(fixes))
    return Result(
        PASS,
        check,
        f"{existing.vpc_endpoint_id} in {vpc_id} is available, carries {existing.security_group_id}, zonal DNS names "
        f"in {', '.join(settings.client_azs)}",
    )


# --- 6. CDK bootstrap ----------------------------------------------------------------------------------------


def check_bootstrap(settings: StageSettings, ssm: Any, account: str, region: str, assembly: Assembly | None) -> Result:
    """The deployed bootstrap version (its SSM parameter) against the one the synthesized stack requires."""
    check = "cdk bootstrap"
    environment = f"aws://{account}/{region}"
    if assembly is None:
        fix = (
            f"make preflight STAGE={settings.name} (synthesizes first), or make synth STAGE={settings.name} and pass "
            "--assembly cdk.out"
        )
        return _warn(check, "not checked: no cloud assembly to read the required version from", fix)
    parameter = assembly.bootstrap_parameter
    # `cdk bootstrap` records its template's version in this SSM parameter, and `cdk deploy` refuses an older one
    # than the assembly requires ("SSM parameter ... not found. Has the environment been bootstrapped?").
    # https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping.html
    # https://docs.aws.amazon.com/cdk/v2/guide/ref-cli-cmd-bootstrap.html
    try:
        value = _read("ssm:GetParameter", ssm.get_parameter, Name=parameter)["Parameter"]["Value"]
    except ReadError as failed:
        if failed.code == "ParameterNotFound":
            wrong = f"{environment} is not bootstrapped (no SSM parameter {parameter})"
            return _fail(check, wrong, f"npx cdk bootstrap {environment}")
        fix = f"{_allow(failed, f'ssm:GetParameter on {parameter}')}, or run npx cdk bootstrap {environment}"
        return _warn(check, f"not checked ({failed})", f"{fix} (it only upgrades)")
    try:
        deployed = int(value)
    except ValueError:
        deployed = 0
    required = assembly.required_bootstrap
    figures = f"version {value} in {environment} ({parameter}), the stack requires {required}"
    if deployed < required:
        return _fail(check, figures, f"npx cdk bootstrap {environment} (upgrades the CDKToolkit stack)")
    return Result(PASS, check, figures)


# --- 7. the container image ----------------------------------------------------------------------------------


def check_image(settings: StageSettings, region: str) -> Result:
    """The stage's image URI in the region, from the kit's committed tables (offline).

    Proves that SageMaker publishes the pinned image version in that region (the tables come from the SageMaker
    SDK: scripts/generate_tables.py), not that the deployer can read it: SageMaker pulls its prebuilt images with
    its own credentials, not the caller's, and AWS documents no cross-account ECR read of its registries for
    customers. https://docs.aws.amazon.com/sagemaker/latest/dg-ecr-paths/sagemaker-algo-docker-registry-paths.html
    """
    check = "container image"
    profile, version = settings.serving, settings.container_version
    found = profile.registry(version).image(region)
    if found is None:
        regions = profile.registry(version).regions
        wrong = (
            f"SageMaker publishes no {profile.image_label} {version} image in {region} (the kit's tables, stacks/data/)"
        )
        fix = (
            f"deploy stage {settings.name} to one of the {len(regions)} regions that have it, or set image_tag to a "
            "version published there"
        )
        return _fail(check, wrong, fix)
    _, uri = found
    return Result(PASS, check, f"{uri} ({profile.image_label} {version}; the kit's table, not looked up in ECR)")


# --- all checks ----------------------------------------------------------------------------------------------


def preflight(
    settings: StageSettings,
    clients: Clients,
    *,
    region: str,
    region_source: str = "the stage's",
    assembly: Assembly | None = None,
) -> list[Result]:
    """Every check, in order; only the credentials line when the credentials fail (the rest would read nothing,
    or another account)."""
    credentials, account = check_credentials(settings, clients.sts, region, region_source)
    if credentials.status == FAIL:
        return [credentials]
    results = [credentials, *check_quotas(settings, clients, region), check_lambda(settings, clients.lambda_, assembly)]
    if settings.vpc_id is not None:
        results.append(check_runtime_endpoint(settings, clients.ec2, region))
    results.append(check_bootstrap(settings, clients.ssm, account, region, assembly))
    results.append(check_image(settings, region))
    return results


def main(argv: list[str] | None = None, session_factory: Callable[[str | None], Any] = aws_session) -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0], prog="scripts/preflight.py")
    parser.add_argument("--stage", required=True)
    parser.add_argument("--assembly", help="a cloud assembly of the stage (make synth writes cdk.out)")
    try:
        args = parser.parse_args(argv)
        try:
            settings = load_stage(args.stage)
        except SettingsError as error:
            raise UsageError("; ".join(error.problems)) from None
        assembly = read_assembly(Path(args.assembly), settings.stack_name) if args.assembly else None
        session = session_factory(settings.region)
        region, source = settings.region, "the stage's"
        if region is None:
            region = session.region_name
            source = f"from the AWS configuration: stage {settings.name} is environment-agnostic"
        if region is None:
            raise UsageError(
                f"region=None: stage {settings.name} is environment-agnostic and the AWS configuration names no "
                "region; allowed: AWS_REGION=REGION, or a profile with a region"
            )
        clients = Clients.of(session, region)
    except UsageError as error:
        print(f"preflight: {one_line(error)}", file=sys.stderr)
        return 2
    except BotoCoreError as error:  # AWS_PROFILE naming no profile, a malformed config file, ...
        print(f"preflight: the AWS configuration: {one_line(error)}", file=sys.stderr)
        return 2
    try:
        results = preflight(settings, clients, region=region, region_source=source, assembly=assembly)
    except Exception as error:  # one line for CI logs, whatever broke
        print(f"preflight failed: {one_line(error)}", file=sys.stderr)
        return 1
    for result in results:
        print(result.line)
    return 1 if any(result.status == FAIL for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
