"""scripts/preflight.py against stubbed AWS accounts (botocore's Stubber: no account, no network): every check
passes on a healthy account for every stage, each failing check fails alone with its exact line and fix, missing
credentials and missing permissions give one line each, and docs/first-deploy.md shows what the runs print."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.credentials import CredentialResolver
from botocore.stub import Stubber

from cliutil import UsageError
from operations.preflight import (
    ACCOUNT_WIDE_QUOTA,
    DEFAULT_BOOTSTRAP_PARAMETER,
    FAIL,
    PASS,
    SERVICES,
    WARN,
    Assembly,
    Clients,
    Result,
    estimated_functions,
    main,
    preflight,
    read_assembly,
    stage_needs,
)
from stacks.settings import ExistingRuntimeEndpoint, StageSettings
from stacks.stages import STAGES, load_stage

from .conftest import REPO_ROOT, Synthesized

ACCOUNT = "123456789012"
CREATED = datetime(2026, 12, 1, tzinfo=UTC)
VPCE, VPCE_SG, OTHER_SG = "vpce-0123456789abcdef0", "sg-0123456789abcdef0", "sg-0fedcba9876543210"
FIRST_DEPLOY = REPO_ROOT / "docs" / "first-deploy.md"


@dataclass(frozen=True)
class FakeAccount:
    """What a stubbed account answers. Quotas by name; other endpoints as (name, ((type, instances), ...))."""

    region: str = "us-east-1"
    caller_account: str = ACCOUNT
    applied: dict[str, int] = field(default_factory=dict)
    defaults: dict[str, int] = field(default_factory=dict)
    endpoints: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    lambda_limits: tuple[int, int] = (1000, 1000)
    vpc_endpoints: tuple[dict[str, Any], ...] = ()
    bootstrap: str | None = "30"
    # IAM actions the account answers with AccessDenied.
    denied: frozenset[str] = frozenset()

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.caller_account}:role/deployer"


def runtime_endpoint(
    *,
    vpce: str = VPCE,
    private_dns: bool = True,
    state: str = "available",
    groups: tuple[str, ...] = (VPCE_SG,),
    azs: tuple[str, ...],
) -> dict[str, Any]:
    """A SageMaker Runtime interface endpoint as DescribeVpcEndpoints lists it (regional, zonal and private names)."""
    suffix = "runtime.sagemaker.us-east-1.vpce.amazonaws.com"
    names = [f"{vpce}-5fkvb3je.{suffix}", *(f"{vpce}-5fkvb3je-{az}.{suffix}" for az in azs)]
    if private_dns:
        names.append("runtime.sagemaker.us-east-1.amazonaws.com")
    return {
        "VpcEndpointId": vpce,
        "VpcEndpointType": "Interface",
        "ServiceName": "com.amazonaws.us-east-1.sagemaker.runtime",
        "State": state,
        "PrivateDnsEnabled": private_dns,
        "Groups": [{"GroupId": group, "GroupName": group} for group in groups],
        "DnsEntries": [{"DnsName": name, "HostedZoneId": "Z7HUB22UULQXV"} for name in names],
    }


def _tens(value: int) -> int:
    return -(-value // 10) * 10


def healthy_account(settings: StageSettings, region: str = "us-east-1") -> FakeAccount:
    """Room for the stage beside two other endpoints: one on the stage's type, one on ml.m5.large."""
    others = (("fraud-scoring", ((settings.instance_type, 2),)), ("search-ranking", (("ml.m5.large", 1),)))
    needs = {instance_type: need.instances for instance_type, need in stage_needs(settings).items()}
    applied = {f"{kind} for endpoint usage": _tens(need + 12) for kind, need in needs.items()}
    vpc_endpoints: tuple[dict[str, Any], ...] = ()
    existing = settings.runtime_endpoint
    if existing is not None:
        found = runtime_endpoint(
            vpce=existing.vpc_endpoint_id, groups=(existing.security_group_id,), azs=settings.client_azs
        )
        vpc_endpoints = (found,)
    return FakeAccount(
        region=region,
        caller_account=settings.account or ACCOUNT,  # credentials for the account the stage names, if it names one
        applied=applied,
        defaults={ACCOUNT_WIDE_QUOTA: _tens(sum(needs.values()) + 13)},
        endpoints=others,
        vpc_endpoints=vpc_endpoints,
    )


# --- stubbing the account: the calls in the order the checks make them -----------------------------------------


def _session(region: str) -> Any:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)


def _denied(stub: Stubber, method: str, action: str, fake: FakeAccount) -> bool:
    if action not in fake.denied:
        return False
    code = "UnauthorizedOperation" if action.startswith("ec2:") else "AccessDeniedException"
    stub.add_client_error(method, service_error_code=code, service_message=f"not authorized to perform: {action}")
    return True


def _stub_sagemaker(stub: Stubber, fake: FakeAccount, own: tuple[str, ...]) -> None:
    listed = [*((name, ()) for name in own), *fake.endpoints]
    pages = [listed[:1], listed[1:]]
    for index, page in enumerate(pages):
        if _denied(stub, "list_endpoints", "sagemaker:ListEndpoints", fake):
            return
        response: dict[str, Any] = {
            "Endpoints": [
                {
                    "EndpointName": name,
                    "EndpointArn": f"arn:aws:sagemaker:{fake.region}:{ACCOUNT}:endpoint/{name.lower()}",
                    "CreationTime": CREATED,
                    "LastModifiedTime": CREATED,
                    "EndpointStatus": "InService",
                }
                for name, _ in page
            ]
        }
        if index + 1 < len(pages):
            response["NextToken"] = f"endpoints-{index + 1}"
        stub.add_response("list_endpoints", response, {"NextToken": f"endpoints-{index}"} if index else {})
        for name, variants in page:
            if name in own:  # the stage's own shards: never described
                continue
            if _denied(stub, "describe_endpoint", "sagemaker:DescribeEndpoint", fake):
                return
            names = [f"Variant{number}" for number in range(len(variants))]
            stub.add_response(
                "describe_endpoint",
                {
                    "EndpointName": name,
                    "EndpointArn": f"arn:aws:sagemaker:{fake.region}:{ACCOUNT}:endpoint/{name}",
                    "EndpointConfigName": f"{name}-config",
                    "ProductionVariants": [
                        {"VariantName": variant, "CurrentInstanceCount": count, "DesiredInstanceCount": count}
                        for variant, (_, count) in zip(names, variants, strict=True)
                    ],
                    "EndpointStatus": "InService",
                    "CreationTime": CREATED,
                    "LastModifiedTime": CREATED,
                },
                {"EndpointName": name},
            )
            if _denied(stub, "describe_endpoint_config", "sagemaker:DescribeEndpointConfig", fake):
                return
            stub.add_response(
                "describe_endpoint_config",
                {
                    "EndpointConfigName": f"{name}-config",
                    "EndpointConfigArn": f"arn:aws:sagemaker:{fake.region}:{ACCOUNT}:endpoint-config/{name}-config",
                    "ProductionVariants": [
                        {"VariantName": variant, "ModelName": "model", "InstanceType": kind, "InitialInstanceCount": n}
                        for variant, (kind, n) in zip(names, variants, strict=True)
                    ],
                    "CreationTime": CREATED,
                },
                {"EndpointConfigName": f"{name}-config"},
            )


def _quota(name: str, value: int) -> dict[str, Any]:
    return {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": "L-EXAMPLE", "Value": float(value)}


def _stub_quotas(stub: Stubber, fake: FakeAccount, wanted: list[str]) -> None:
    if _denied(stub, "list_service_quotas", "servicequotas:ListServiceQuotas", fake):
        return
    unrelated = _quota("Number of endpoints", 100)
    stub.add_response(
        "list_service_quotas", {"Quotas": [unrelated], "NextToken": "quotas-1"}, {"ServiceCode": "sagemaker"}
    )
    applied = [_quota(name, value) for name, value in fake.applied.items()]
    stub.add_response("list_service_quotas", {"Quotas": applied}, {"ServiceCode": "sagemaker", "NextToken": "quotas-1"})
    if all(name in fake.applied for name in wanted):
        return
    if _denied(stub, "list_aws_default_service_quotas", "servicequotas:ListAWSDefaultServiceQuotas", fake):
        return
    defaults = [unrelated, *(_quota(name, value) for name, value in fake.defaults.items())]
    stub.add_response("list_aws_default_service_quotas", {"Quotas": defaults}, {"ServiceCode": "sagemaker"})


def stub_account(
    fake: FakeAccount, settings: StageSettings, assembly: Assembly | None, session: Any = None
) -> tuple[Clients, list[Stubber]]:
    """Clients whose every call is answered from ``fake``, queued in the order the checks call them."""
    clients = Clients.of(session or _session(fake.region), fake.region)
    stubs = {name: Stubber(getattr(clients, name)) for name in SERVICES}
    stubs["sts"].add_response(
        "get_caller_identity", {"Account": fake.caller_account, "Arn": fake.arn, "UserId": "AROAEXAMPLE:deployer"}, {}
    )
    if settings.account is None or settings.account == fake.caller_account:
        _stub_sagemaker(stubs["sagemaker"], fake, settings.endpoint_names)
        wanted = [f"{kind} for endpoint usage" for kind in stage_needs(settings)] + [ACCOUNT_WIDE_QUOTA]
        _stub_quotas(stubs["quotas"], fake, wanted)
        if not _denied(stubs["lambda_"], "get_account_settings", "lambda:GetAccountSettings", fake):
            total, unreserved = fake.lambda_limits
            limits = {"ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved}
            stubs["lambda_"].add_response("get_account_settings", {"AccountLimit": limits}, {})
        if settings.vpc_id is not None and not _denied(
            stubs["ec2"], "describe_vpc_endpoints", "ec2:DescribeVpcEndpoints", fake
        ):
            filters = [
                {"Name": "vpc-id", "Values": [settings.vpc_id]},
                {"Name": "service-name", "Values": [f"com.amazonaws.{fake.region}.sagemaker.runtime"]},
            ]
            stubs["ec2"].add_response(
                "describe_vpc_endpoints", {"VpcEndpoints": list(fake.vpc_endpoints)}, {"Filters": filters}
            )
        if assembly is not None and not _denied(stubs["ssm"], "get_parameter", "ssm:GetParameter", fake):
            name = assembly.bootstrap_parameter
            if fake.bootstrap is None:
                stubs["ssm"].add_client_error("get_parameter", service_error_code="ParameterNotFound")
            else:
                parameter = {"Name": name, "Type": "String", "Value": fake.bootstrap, "Version": 1}
                stubs["ssm"].add_response("get_parameter", {"Parameter": parameter}, {"Name": name})
    for stub in stubs.values():
        stub.activate()
    return clients, list(stubs.values())


def assembly_of(settings: StageSettings, *, reserved: tuple[int, ...] = ()) -> Assembly:
    return Assembly(
        required_bootstrap=6,
        bootstrap_parameter=DEFAULT_BOOTSTRAP_PARAMETER,
        functions=estimated_functions(settings),
        reserved=reserved,
    )


def run(
    fake: FakeAccount, settings: StageSettings, assembly: Assembly | None = None, *, from_config: bool = False
) -> list[Result]:
    """The checks against ``fake``; every queued answer must have been asked for."""
    clients, stubs = stub_account(fake, settings, assembly)
    source = f"from the AWS configuration: stage {settings.name} is environment-agnostic" if from_config else None
    results = preflight(settings, clients, region=fake.region, region_source=source or "the stage's", assembly=assembly)
    for stub in stubs:
        stub.assert_no_pending_responses()
    return results


def write_assembly(folder: Path, settings: StageSettings, *, functions: int, reserved: tuple[int, ...] = ()) -> Path:
    """A cloud assembly as `cdk synth` writes it, cut to what the preflight reads."""
    folder.mkdir(parents=True, exist_ok=True)
    needs = {"requiresBootstrapStackVersion": 6, "bootstrapStackVersionSsmParameter": DEFAULT_BOOTSTRAP_PARAMETER}
    stack = settings.stack_name
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            f"{stack}.assets": {"type": "cdk:asset-manifest", "properties": {"file": f"{stack}.assets.json", **needs}},
            stack: {
                "type": "aws:cloudformation:stack",
                "properties": {"templateFile": f"{stack}.template.json", **needs},
                "dependencies": [f"{stack}.assets"],
            },
        },
    }
    resources: dict[str, Any] = {
        f"Function{index}": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "index.handler"}}
        for index in range(functions)
    }
    for index, count in enumerate(reserved):
        resources[f"Function{index}"]["Properties"]["ReservedConcurrentExecutions"] = count
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / f"{stack}.template.json").write_text(json.dumps({"Resources": resources}))
    return folder


class FakeSession:
    """What main() asks of a boto3 session: its region and clients (here, the stubbed ones)."""

    def __init__(self, clients: Clients, region_name: str | None) -> None:
        self.clients, self.region_name = clients, region_name

    def client(self, service: str, region_name: str | None = None) -> Any:
        field_name = {boto: name for name, boto in SERVICES.items()}[service]
        return getattr(self.clients, field_name)


def _not_passing(results: list[Result]) -> list[str]:
    return [result.line for result in results if result.status != PASS]


# --- the documented runs (docs/first-deploy.md shows each one's lines) -----------------------------------------


def _dev() -> StageSettings:
    return load_stage("dev")


def _shared_vpc(**changes: Any) -> StageSettings:
    return dataclasses.replace(load_stage("shared-vpc"), **changes)


def _passing() -> list[Result]:
    settings = _dev()
    return run(healthy_account(settings), settings, assembly_of(settings))


def _credentials() -> list[Result]:
    settings = _shared_vpc()
    fake = dataclasses.replace(healthy_account(settings), caller_account="210987654321")
    return run(fake, settings, assembly_of(settings))


def _instance_quota() -> list[Result]:
    settings = _dev()
    fake = dataclasses.replace(
        healthy_account(settings), applied={}, defaults={"ml.c5.xlarge for endpoint usage": 0, ACCOUNT_WIDE_QUOTA: 20}
    )
    return run(fake, settings, assembly_of(settings))


def _instances_across_endpoints() -> list[Result]:
    settings = _dev()
    fake = dataclasses.replace(
        healthy_account(settings),
        endpoints=(("search-ranking", (("ml.m5.large", 15),)),),
        defaults={ACCOUNT_WIDE_QUOTA: 20},
    )
    return run(fake, settings, assembly_of(settings))


def _lambda_concurrency() -> list[Result]:
    settings = _dev()
    fake = dataclasses.replace(healthy_account(settings), lambda_limits=(10, 1))
    return run(fake, settings, assembly_of(settings))


def _runtime_endpoint_conflict() -> list[Result]:
    settings = _shared_vpc(runtime_endpoint=None)
    fake = dataclasses.replace(healthy_account(settings), vpc_endpoints=(runtime_endpoint(azs=settings.client_azs),))
    return run(fake, settings, assembly_of(settings))


def _runtime_endpoint_existing() -> list[Result]:
    settings = _shared_vpc(runtime_endpoint=ExistingRuntimeEndpoint(vpc_endpoint_id=VPCE, security_group_id=VPCE_SG))
    found = runtime_endpoint(groups=(OTHER_SG,), azs=settings.client_azs[:1])
    return run(dataclasses.replace(healthy_account(settings), vpc_endpoints=(found,)), settings, assembly_of(settings))


def _not_bootstrapped() -> list[Result]:
    settings = _dev()
    return run(dataclasses.replace(healthy_account(settings), bootstrap=None), settings, assembly_of(settings))


def _old_bootstrap() -> list[Result]:
    settings = _dev()
    return run(dataclasses.replace(healthy_account(settings), bootstrap="5"), settings, assembly_of(settings))


def _container_image() -> list[Result]:
    settings = load_stage("portable")
    fake = healthy_account(settings, region="mx-central-1")
    return run(fake, settings, assembly_of(settings), from_config=True)


def _missing_permission() -> list[Result]:
    settings = _dev()
    fake = dataclasses.replace(healthy_account(settings), denied=frozenset({"servicequotas:ListServiceQuotas"}))
    return run(fake, settings, assembly_of(settings))


DOCUMENTED: dict[str, Callable[[], list[Result]]] = {
    "passing": _passing,
    "credentials": _credentials,
    "instance-quota": _instance_quota,
    "instances-across-endpoints": _instances_across_endpoints,
    "lambda-concurrency": _lambda_concurrency,
    "runtime-endpoint-conflict": _runtime_endpoint_conflict,
    "runtime-endpoint-existing": _runtime_endpoint_existing,
    "not-bootstrapped": _not_bootstrapped,
    "old-bootstrap": _old_bootstrap,
    "container-image": _container_image,
    "missing-permission": _missing_permission,
}

NEEDED_8 = "needed 8 (2 x autoscaling.max_capacity 4: a blue/green update runs the new fleet beside the old)"
BOOTSTRAP = "version 30 in aws://123456789012/us-east-1 (/cdk-bootstrap/hnb659fds/version), the stack requires 6"
IMAGE = (
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0 (XGBoost 3.2-0; the kit's table, "
    "not looked up in ECR)"
)


def test_a_healthy_account_passes_every_check_of_dev() -> None:
    assert [result.line for result in _passing()] == [
        "PASS  credentials: arn:aws:iam::123456789012:role/deployer, account 123456789012 (stage dev names none: "
        "it deploys to this one), region us-east-1 (the stage's)",
        f"PASS  instance quota ml.c5.xlarge: {NEEDED_8}, in use elsewhere 2, quota 20 (applied), headroom 10",
        f"PASS  instances across endpoints: {NEEDED_8}, in use elsewhere 3, quota 30 (AWS default), headroom 19",
        "PASS  lambda concurrency: account 1000, unreserved 1000; the stack's 3 functions may all run at once, "
        "none reserves concurrency",
        f"PASS  cdk bootstrap: {BOOTSTRAP}",
        f"PASS  container image: {IMAGE}",
    ]


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_stage_passes_on_a_healthy_account_and_exits_0(
    stage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_stage(stage)
    fake = healthy_account(settings)
    assembly = write_assembly(tmp_path / "cdk.out", settings, functions=estimated_functions(settings))
    clients, stubs = stub_account(fake, settings, read_assembly(assembly, settings.stack_name))
    code = main(["--stage", stage, "--assembly", str(assembly)], lambda region: FakeSession(clients, "us-east-1"))
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), out
    lines = out.splitlines()
    assert all(line.startswith("PASS  ") for line in lines), out
    checks = [line.split(":")[0].removeprefix("PASS  ") for line in lines]
    runtime = ["runtime endpoint"] if settings.vpc_id else []
    quota_lines = [f"instance quota {kind}" for kind in stage_needs(settings)]
    expected = ["credentials", *quota_lines, "instances across endpoints", "lambda concurrency", *runtime]
    assert checks == [*expected, "cdk bootstrap", "container image"]
    for stub in stubs:
        stub.assert_no_pending_responses()


def test_a_stage_using_an_existing_runtime_endpoint_in_order_passes() -> None:
    settings = _shared_vpc(runtime_endpoint=ExistingRuntimeEndpoint(vpc_endpoint_id=VPCE, security_group_id=VPCE_SG))
    results = run(healthy_account(settings), settings, assembly_of(settings))
    assert _not_passing(results) == []
    assert (
        f"PASS  runtime endpoint: {VPCE} in vpc-0a1b2c3d4e5f67890 is available, carries {VPCE_SG}, zonal DNS names "
        "in us-east-1a, us-east-1b"
    ) in [result.line for result in results]


# --- each failing check, alone ---------------------------------------------------------------------------------


FIX_USE_IT = (
    f"runtime_endpoint=ExistingRuntimeEndpoint(vpc_endpoint_id='{VPCE}', security_group_id='{VPCE_SG}') in "
    "shared_vpc() in stacks/stages.py"
)
FAILING: dict[str, list[str]] = {
    "credentials": [
        "FAIL  credentials: arn:aws:iam::210987654321:role/deployer is in account 210987654321, stage shared-vpc "
        "deploys to 123456789012; fix: use credentials for account 123456789012 (AWS_PROFILE=NAME, or aws sso login)"
    ],
    "instance-quota": [
        f"FAIL  instance quota ml.c5.xlarge: {NEEDED_8}, in use elsewhere 2, quota 0 (AWS default), headroom -10; fix: "
        "request 'ml.c5.xlarge for endpoint usage' of at least 10 (aws service-quotas request-service-quota-increase "
        "--service-code sagemaker --quota-code L-EXAMPLE --desired-value 10 --region us-east-1), or lower "
        "autoscaling.max_capacity"
    ],
    "instances-across-endpoints": [
        f"FAIL  instances across endpoints: {NEEDED_8}, in use elsewhere 15, quota 20 (AWS default), headroom -3; fix: "
        "request 'Number of instances across active endpoints' of at least 23 (aws service-quotas "
        "request-service-quota-increase --service-code sagemaker --quota-code L-EXAMPLE --desired-value 23 --region "
        "us-east-1), or lower autoscaling.max_capacity"
    ],
    "lambda-concurrency": [
        "FAIL  lambda concurrency: account 10, unreserved 1; the stack's 3 functions may all run at once, none "
        "reserves concurrency: fewer unreserved than functions, so they throttle; fix: request a higher Lambda quota "
        "'Concurrent executions' in Service Quotas (unreserved at least 3)"
    ],
    "runtime-endpoint-conflict": [
        f"FAIL  runtime endpoint: VPC vpc-0a1b2c3d4e5f67890 already has SageMaker Runtime endpoint {VPCE} with private "
        f"DNS, so the stack's own would be refused (conflicting DNS domain); fix: use it: {FIX_USE_IT}"
    ],
    "runtime-endpoint-existing": [
        f"FAIL  runtime endpoint: {VPCE} in vpc-0a1b2c3d4e5f67890: it does not carry {VPCE_SG} (its groups: "
        f"{OTHER_SG}), it has no zonal DNS name in us-east-1b (its subnets miss that AZ); fix: set "
        f"runtime_endpoint.security_group_id='{OTHER_SG}' in shared_vpc() in stacks/stages.py, and add a subnet "
        "in us-east-1b to it (EC2 ModifyVpcEndpoint, AddSubnetIds), or drop those client_azs"
    ],
    "not-bootstrapped": [
        "FAIL  cdk bootstrap: aws://123456789012/us-east-1 is not bootstrapped (no SSM parameter "
        "/cdk-bootstrap/hnb659fds/version); fix: npx cdk bootstrap aws://123456789012/us-east-1"
    ],
    "old-bootstrap": [
        "FAIL  cdk bootstrap: version 5 in aws://123456789012/us-east-1 (/cdk-bootstrap/hnb659fds/version), the stack "
        "requires 6; fix: npx cdk bootstrap aws://123456789012/us-east-1 (upgrades the CDKToolkit stack)"
    ],
    "container-image": [
        "FAIL  container image: SageMaker publishes no XGBoost 3.2-0 image in mx-central-1 (the kit's tables, "
        "stacks/data/); fix: deploy stage portable to one of the 37 regions that have it, or set image_tag to a "
        "version published there"
    ],
}


@pytest.mark.parametrize("name", sorted(FAILING))
def test_each_failing_check_fails_alone_with_its_fix(name: str) -> None:
    assert _not_passing(DOCUMENTED[name]()) == FAILING[name]


def test_a_runtime_endpoint_that_is_elsewhere_or_not_available_fails() -> None:
    settings = _shared_vpc(runtime_endpoint=ExistingRuntimeEndpoint(vpc_endpoint_id=VPCE, security_group_id=VPCE_SG))
    other = runtime_endpoint(vpce="vpce-0aaaaaaaaaaaaaaaa", azs=settings.client_azs)
    missing = run(dataclasses.replace(healthy_account(settings), vpc_endpoints=(other,)), settings)
    assert _not_passing(missing) == [
        f"FAIL  runtime endpoint: {VPCE} is not a SageMaker Runtime endpoint of VPC vpc-0a1b2c3d4e5f67890 (there: "
        "vpce-0aaaaaaaaaaaaaaaa); fix: runtime_endpoint=ExistingRuntimeEndpoint("
        f"vpc_endpoint_id='vpce-0aaaaaaaaaaaaaaaa', security_group_id='{VPCE_SG}') in shared_vpc() in stacks/stages.py",
        "WARN  cdk bootstrap: not checked: no cloud assembly to read the required version from; fix: make preflight "
        "STAGE=shared-vpc (synthesizes first), or make synth STAGE=shared-vpc and pass --assembly cdk.out",
    ]
    pending = runtime_endpoint(state="pendingAcceptance", azs=settings.client_azs)
    results = run(
        dataclasses.replace(healthy_account(settings), vpc_endpoints=(pending,)), settings, assembly_of(settings)
    )
    assert _not_passing(results) == [
        f"FAIL  runtime endpoint: {VPCE} in vpc-0a1b2c3d4e5f67890: it is pendingacceptance, not available; fix: wait "
        f"for it or repair it (aws ec2 describe-vpc-endpoints --vpc-endpoint-ids {VPCE})"
    ]


def test_a_throttled_read_warns_and_asks_for_another_run() -> None:
    settings = _dev()
    clients, stubs = stub_account(dataclasses.replace(healthy_account(settings), denied=frozenset()), settings, None)
    lambda_ = Stubber(clients.lambda_)
    lambda_.add_client_error(
        "get_account_settings", service_error_code="TooManyRequestsException", http_status_code=429
    )
    stubs[list(SERVICES).index("lambda_")].deactivate()
    with lambda_:
        results = {result.check: result for result in preflight(settings, clients, region="us-east-1")}
    assert results["lambda concurrency"].line == (
        "WARN  lambda concurrency: not checked (TooManyRequestsException on lambda:GetAccountSettings); fix: run the "
        "preflight again, or read the account's unreserved concurrency in the Lambda console (the stack's 3 functions "
        "run at once)"
    )


def test_an_environment_agnostic_stage_takes_the_region_from_the_configuration() -> None:
    (credentials, *_) = _container_image()
    assert credentials.line.endswith(
        "region mx-central-1 (from the AWS configuration: stage portable is environment-agnostic)"
    )


def test_a_shadow_on_its_own_type_is_checked_on_that_types_quota() -> None:
    from stacks.settings import ShadowSettings

    shadow = ShadowSettings(model_artifact="model_artifacts/model.tar.gz", instance_type="ml.m5.xlarge")
    settings = dataclasses.replace(_dev(), shadow=shadow)
    results = run(healthy_account(settings), settings, assembly_of(settings))
    lines = {result.check: result.text for result in results}
    assert lines["instance quota ml.m5.xlarge"].startswith(
        "needed 2 (2 x shadow.instance_count 1: a blue/green update runs the new fleet beside the old), in use "
        "elsewhere 0"
    )
    assert lines["instances across endpoints"].startswith(
        "needed 10 (2 x (autoscaling.max_capacity 4 + shadow.instance_count 1): a blue/green update"
    )


def test_a_sharded_stage_needs_every_shard_and_one_shards_update() -> None:
    """3 shards of at most 4 instances: blue/green needs 3 x 4 and a second fleet of 4, rolling batches of 25% one
    instance more; the stage's own shards count in the need, never as other endpoints' use."""
    blue_green = dataclasses.replace(_dev(), shards=3)
    lines = {result.check: result.text for result in run(healthy_account(blue_green), blue_green)}
    assert lines["instance quota ml.c5.xlarge"].startswith(
        "needed 16 (3 shards x autoscaling.max_capacity 4 + 4: a blue/green update's new fleet, one shard at a time), "
        "in use elsewhere 2,"
    )
    rolling = dataclasses.replace(
        blue_green, rollout=dataclasses.replace(blue_green.rollout, strategy="rolling", rolling_batch_percent=25)
    )
    lines = {result.check: result.text for result in run(healthy_account(rolling), rolling)}
    assert lines["instance quota ml.c5.xlarge"].startswith(
        "needed 13 (3 shards x autoscaling.max_capacity 4 + 1: a rolling update's batch, one shard at a time)"
    )
    assert stage_needs(rolling)["ml.c5.xlarge"].instances == 13


def test_a_reservation_below_lambdas_minimum_unreserved_fails() -> None:
    settings = _dev()
    fake = dataclasses.replace(healthy_account(settings), lambda_limits=(50, 50))
    results = run(fake, settings, assembly_of(settings, reserved=(1,)))
    assert _not_passing(results) == [
        "FAIL  lambda concurrency: account 50, unreserved 50; the stack's 3 functions may all run at once, 1 of them "
        'reserving 1: a reservation may not leave less than 100 unreserved, so the deploy fails ("decreases '
        "account's UnreservedConcurrentExecution below its minimum value\"); fix: request a higher Lambda quota "
        "'Concurrent executions' in Service Quotas (unreserved at least 101), or drop the functions' "
        "ReservedConcurrentExecutions"
    ]


def test_without_an_assembly_the_bootstrap_check_is_skipped_and_functions_estimated() -> None:
    settings = load_stage("prod")
    results = run(healthy_account(settings), settings, None)
    lines = {result.check: result for result in results}
    assert lines["cdk bootstrap"].line == (
        "WARN  cdk bootstrap: not checked: no cloud assembly to read the required version from; fix: make preflight "
        "STAGE=prod (synthesizes first), or make synth STAGE=prod and pass --assembly cdk.out"
    )
    # ENI cleanup, zonal DNS names, the new VPC's default-security-group handler, one client probe per client AZ (3).
    assert "the stack's 6 functions (estimated from the settings: no --assembly)" in lines["lambda concurrency"].text


# --- missing credentials, missing permissions, bad input --------------------------------------------------------


def _no_credentials_session(region: str | None) -> Any:
    """A session that finds no credentials anywhere (and so never sends a request)."""
    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver(providers=[]))
    return boto3.Session(botocore_session=core, region_name=region)


def test_missing_credentials_give_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stage", "dev"], _no_credentials_session) == 1
    out, err = capsys.readouterr()
    assert (out, err) == (
        "FAIL  credentials: no AWS credentials found (environment, shared files, SSO or instance role); fix: sign "
        "in for the stage's account (aws sso login, or AWS_PROFILE=NAME) and run make preflight STAGE=dev again\n",
        "",
    )


def test_refused_credentials_give_one_line() -> None:
    settings = _dev()
    clients = Clients.of(_session("us-east-1"), "us-east-1")
    with Stubber(clients.sts) as sts:
        sts.add_client_error("get_caller_identity", service_error_code="ExpiredToken", http_status_code=403)
        results = preflight(settings, clients, region="us-east-1")
    assert [result.line for result in results] == [
        "FAIL  credentials: STS refused the credentials (ExpiredToken); fix: renew them (aws sso login, or a new "
        "session)"
    ]


PERMISSIONS = {
    "servicequotas:ListServiceQuotas": "dev",
    "servicequotas:ListAWSDefaultServiceQuotas": "dev",
    "sagemaker:ListEndpoints": "dev",
    "sagemaker:DescribeEndpoint": "dev",
    "sagemaker:DescribeEndpointConfig": "dev",
    "lambda:GetAccountSettings": "dev",
    "ec2:DescribeVpcEndpoints": "shared-vpc",
    "ssm:GetParameter": "dev",
}


@pytest.mark.parametrize("action", sorted(PERMISSIONS))
def test_access_denied_on_a_read_warns_naming_the_permission(action: str) -> None:
    settings = load_stage(PERMISSIONS[action])
    fake = dataclasses.replace(healthy_account(settings), denied=frozenset({action}))
    if action == "servicequotas:ListAWSDefaultServiceQuotas":
        fake = dataclasses.replace(fake, applied={})  # the default list is read only for quotas without a value
    results = run(fake, settings, assembly_of(settings))
    warned = [result for result in results if result.status != PASS]
    assert warned and all(result.status == WARN for result in warned), [r.line for r in results]
    for result in warned:
        assert f"on {action})" in result.text and "fix: allow " in result.text, result.line


def test_a_quota_too_small_fails_even_when_the_other_endpoints_cannot_be_counted() -> None:
    settings = _dev()
    fake = dataclasses.replace(
        healthy_account(settings),
        applied={"ml.c5.xlarge for endpoint usage": 4},
        denied=frozenset({"sagemaker:ListEndpoints"}),
    )
    (line,) = [result.line for result in run(fake, settings, assembly_of(settings)) if result.status == FAIL]
    assert line.startswith(
        f"FAIL  instance quota ml.c5.xlarge: {NEEDED_8}, quota 4 (applied), in use elsewhere not counted "
        "(AccessDeniedException on sagemaker:ListEndpoints); fix: request 'ml.c5.xlarge for endpoint usage' of at "
        "least 8"
    )


def _main_lines(
    argv: list[str], capsys: pytest.CaptureFixture[str], region: str | None = "us-east-1"
) -> tuple[int, str]:
    def no_clients(region_name: str | None) -> Any:
        return FakeSession(Clients(*(None for _ in SERVICES)), region)

    code = main(argv, no_clients)
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, (out, err)
    return code, err.strip()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "preflight: the following arguments are required: --stage"),
        (["--stage", "nope"], "preflight: stage='nope' is not defined; allowed: one of"),
        (["--stage", "dev", "--assembly", "/no/such/folder"], "preflight: --assembly /no/such/folder: no readable"),
        (["--stage", "dev", "--planted"], "preflight: unrecognized arguments: --planted"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = _main_lines(argv, capsys)
    assert code == 2 and line.startswith(expected), line


def test_an_environment_agnostic_stage_without_a_configured_region_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _main_lines(["--stage", "portable"], capsys, region=None) == (
        2,
        "preflight: region=None: stage portable is environment-agnostic and the AWS configuration names no region; "
        "allowed: AWS_REGION=REGION, or a profile with a region",
    )


def test_a_profile_that_does_not_exist_gives_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "deployer")
    assert main(["--stage", "dev"]) == 2
    assert capsys.readouterr() == (
        "",
        "preflight: the AWS configuration: The config profile (deployer) could not be found\n",
    )


def test_an_assembly_of_another_stage_is_refused(tmp_path: Path) -> None:
    write_assembly(tmp_path, load_stage("prod"), functions=1)
    with pytest.raises(UsageError, match=re.escape(f"--assembly {tmp_path} holds no stack RtbInference-dev")):
        read_assembly(tmp_path, "RtbInference-dev")


def test_the_assembly_cdk_synth_writes_is_read(dev: Synthesized) -> None:
    assembly = read_assembly(dev.outdir, dev.settings.stack_name)
    functions = dev.of_type("AWS::Lambda::Function")
    reserved = [
        item["Properties"]["ReservedConcurrentExecutions"]
        for item in functions.values()
        if "ReservedConcurrentExecutions" in item["Properties"]
    ]
    assert assembly == Assembly(
        required_bootstrap=6,
        bootstrap_parameter="/cdk-bootstrap/hnb659fds/version",
        functions=len(functions),
        reserved=tuple(reserved),
    )
    assert assembly.functions == estimated_functions(dev.settings)


# --- the documentation ----------------------------------------------------------------------------------------

_EXAMPLE = re.compile(r"<!-- preflight: (?P<name>[a-z-]+) -->\n```text\n(?P<body>.*?)```", re.DOTALL)


def documented_examples(text: str) -> Iterator[tuple[str, str]]:
    for match in _EXAMPLE.finditer(text):
        yield match["name"], match["body"]


@pytest.mark.slow
def test_the_documented_preflight_output_is_what_the_runs_print() -> None:
    examples = dict(documented_examples(FIRST_DEPLOY.read_text()))
    assert sorted(examples) == sorted(DOCUMENTED)
    for name, body in examples.items():
        results = DOCUMENTED[name]()
        shown = [result.line for result in results] if name == "passing" else _not_passing(results)
        assert body == "".join(f"{line}\n" for line in shown), name
