"""Deploy rehearsal: each stage's synthesized template, created in moto's in-process CloudFormation.

Offline (no network, no Docker, no real AWS): fake credentials, moto's default account, and the stage's region
(an environment-agnostic stage: ``make rehearse``'s default, us-east-1). Every stage in STAGES is rehearsed,
and a copy of dev in eu-west-1 built here, so the region handling is tested outside us-east-1 too. The
rehearsal bootstraps like ``cdk bootstrap`` would for what the template needs (the bootstrap-version SSM
parameter, the assets bucket and the file assets), creates the stack, then reads back what moto built
through the EC2, SageMaker and CloudFormation APIs. Each stage runs in its own ``mock_aws`` context and
leaves a plain-data snapshot behind, so the tests only read.

What the rehearsal changes, and why:

- ``Custom::*`` resources are removed, with the provider function and role that only they reference.
  moto runs Lambda-backed custom resources by invoking the function, which needs Docker. The one this
  template has, ``Custom::VpcRestrictDefaultSG`` (it strips the rules of the VPC's default security
  group), is covered by template assertions instead
  (tests/test_network.py::test_default_security_group_is_stripped_of_rules).
- Outputs that read ``DnsEntries`` of a VPC endpoint are removed: moto's VPC endpoint has no
  ``Fn::GetAtt`` support, and one output it cannot evaluate makes ``DescribeStacks`` return no outputs
  at all.
- The attributes of ``Custom::RuntimeZonalDnsNames`` (the runtime endpoint's zonal DNS names, read by the
  outputs and the client probes) become stand-in text: the resource is removed like every custom resource, and
  ``make rehearse`` runs its real handler against moto's endpoint instead.
- In the ``shared-vpc`` stage, the ids of the looked-up VPC (cdk.context.json), and of the existing runtime
  endpoint and its security group, are replaced with the ids of identical ones created in moto first;
  ``SUBSTITUTED_ID`` is that mapping's shape.

What moto does not rehearse, so template assertions cover it (tests/test_network.py,
tests/test_model_endpoint.py, tests/test_autoscaling.py): it skips ``AWS::EC2::SecurityGroupEgress``
and Application Auto Scaling resources (it warns, and the stack still reaches CREATE_COMPLETE; those
warnings are filtered here, nothing else), it always stores ``EnableNetworkIsolation`` as false and
``EnableDnsHostnames`` not at all, and it runs no model. It also keeps CloudFormation's subnet/route-table
associations out of ``DescribeRouteTables`` and fails ``DescribeKey`` on CloudFormation keys; the
rehearsal reads those another way (see ``Rehearsal.route_table_of`` and ``read_back``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devtools.rehearsal.cdk_cli import DEFAULT_REGION
from devtools.rehearsal.moto_server import KNOWN_SKIPPED_APP, recording_endpoint_creations
from devtools.rehearsal.verify import endpoint_chain
from stacks.settings import StageSettings
from stacks.stages import STAGES, load_stage

from .conftest import Synthesized, synthesize

# Subprocesses, moto, checkov or the SageMaker SDK: make test runs it, make test-quick leaves it out.
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
MOTO_DEFAULT_ACCOUNT = "123456789012"
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
# A stage outside us-east-1, as a user would add one to stacks/stages.py: dev, copied to this region.
OTHER_REGION = "eu-west-1"
REQUIRED_OUTPUTS = ("EndpointName", "RuntimeVpcEndpointId", "ClientSecurityGroupId")

# moto's CloudFormation skips these types with a UserWarning; the stack still completes. One list for
# both rehearsals: `make rehearse` fails on any skipped type outside it.
MOTO_SKIPPED_TYPES = tuple(sorted(KNOWN_SKIPPED_APP))
# (resource type, attribute) pairs moto's Fn::GetAtt cannot resolve.
MOTO_UNRESOLVABLE_ATTRIBUTES = frozenset({("AWS::EC2::VPCEndpoint", "DnsEntries")})
# Every EC2 id, as a lookup writes it into a template; used to prove the substitution missed none.
EC2_ID = re.compile(r"\b(?:vpc|subnet|rtb|sg|igw|nat|pl|vpce|eni)-[0-9a-f]{8,17}\b")
# A lookup id -> the id moto gave the same object, e.g. {"subnet-0b000000000000000": "subnet-6274c1bc..."}.
SUBSTITUTED_ID = dict[str, str]


# --- template surgery ------------------------------------------------------------------------------


def references(node: Any) -> set[str]:
    """Logical ids that ``node`` names through Ref, Fn::GetAtt or Fn::Sub (pseudo parameters excluded)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text, local = (value, {}) if isinstance(value, str) else (value[0], value[1])
                names = {name.split(".")[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                found |= names - set(local)
                found |= references(local)
            else:
                found |= references(value)
    return {name for name in found if not name.startswith("AWS::")}


def resource_references(resource: Mapping[str, Any]) -> set[str]:
    depends_on = resource.get("DependsOn", [])
    return references(resource) | set([depends_on] if isinstance(depends_on, str) else depends_on)


def without_custom_resources(template: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The template minus ``Custom::*`` resources and whatever only they (transitively) reference.

    Only Ref and GetAtt count as use: a custom resource that DependsOn a subnet only orders itself
    before it, and the subnet stays. DependsOn entries naming removed resources are dropped.
    Returns the new template and the removed logical ids with their types.
    """
    resources: dict[str, Any] = template["Resources"]
    removed = {key for key, value in resources.items() if value["Type"].startswith("Custom::")}
    output_refs = references(template.get("Outputs", {}))
    while True:
        referrers: dict[str, set[str]] = {key: set() for key in resources}
        for key, value in resources.items():
            for name in references(value) & referrers.keys():
                referrers[name].add(key)
        only_theirs = {
            key
            for key, by in referrers.items()
            if key not in removed and key not in output_refs and by and by <= removed
        }
        if not only_theirs:
            break
        removed |= only_theirs
    kept = {key: _without_depends_on(value, removed) for key, value in resources.items() if key not in removed}
    return {**template, "Resources": kept}, {key: resources[key]["Type"] for key in sorted(removed)}


def _without_depends_on(resource: Mapping[str, Any], removed: set[str]) -> dict[str, Any]:
    depends_on = resource.get("DependsOn")
    if depends_on is None:
        return dict(resource)
    names = [depends_on] if isinstance(depends_on, str) else list(depends_on)
    remaining = [name for name in names if name not in removed]
    trimmed = {key: value for key, value in resource.items() if key != "DependsOn"}
    return {**trimmed, "DependsOn": remaining} if remaining else trimmed


def with_the_traced_model_for_the_compiled_one(template: Mapping[str, Any]) -> dict[str, Any]:
    """moto has no Neo: the model reads the traced archive where it would read Neo's output. The compile
    itself is tested against botocore's service model in tests/test_neo_compile.py."""
    resources = template["Resources"]
    text = json.dumps(template)
    for key, resource in resources.items():
        if resource["Type"] == "Custom::NeoCompilation":
            compiled = json.dumps({"Fn::GetAtt": [key, "ModelArtifact"]})
            text = text.replace(compiled, json.dumps(resource["Properties"]["InputS3Uri"]))
    result: dict[str, Any] = json.loads(text)
    return result


def with_stand_ins_for_custom_attributes(template: Mapping[str, Any]) -> dict[str, Any]:
    """Every Fn::GetAtt of a custom resource (other than Neo's, see above) as the text
    ``stand-in:<logical id>.<attribute>``: no handler runs here, so nothing would answer them."""
    resources = template["Resources"]

    def replaced(node: Any) -> Any:
        if isinstance(node, list):
            return [replaced(item) for item in node]
        if not isinstance(node, dict):
            return node
        get_att = node.get("Fn::GetAtt")
        if (
            isinstance(get_att, list)
            and str(resources.get(get_att[0], {}).get("Type", "")).startswith("Custom::")
            and resources[get_att[0]]["Type"] != "Custom::NeoCompilation"
        ):
            return f"stand-in:{get_att[0]}.{get_att[1]}"
        return {key: replaced(value) for key, value in node.items()}

    result: dict[str, Any] = replaced(dict(template))
    return result


def without_unresolvable_outputs(template: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The template minus outputs that read an attribute moto cannot resolve; and their names."""
    resources = template["Resources"]

    def unresolvable(node: Any) -> bool:
        if isinstance(node, list):
            return any(unresolvable(item) for item in node)
        if not isinstance(node, dict):
            return False
        get_att = node.get("Fn::GetAtt")
        if (
            isinstance(get_att, list)
            and get_att[0] in resources
            and (resources[get_att[0]]["Type"], get_att[1]) in MOTO_UNRESOLVABLE_ATTRIBUTES
        ):
            return True
        return any(unresolvable(value) for value in node.values())

    outputs: dict[str, Any] = template.get("Outputs", {})
    dropped = sorted(name for name, output in outputs.items() if unresolvable(output))
    kept = {name: output for name, output in outputs.items() if name not in dropped}
    return {**template, "Outputs": kept}, dropped


def substitute_ids(template: Mapping[str, Any], substitutions: SUBSTITUTED_ID) -> dict[str, Any]:
    """Replace every occurrence (also inside ARNs) of each key of ``substitutions`` with its value."""
    text = json.dumps(template)
    for old, new in substitutions.items():
        text = text.replace(old, new)
    result: dict[str, Any] = json.loads(text)
    return result


# --- the rehearsal ---------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Rehearsal:
    """What moto built for one stage, read back through the AWS APIs once the stack was created."""

    stack_name: str
    region: str
    status: str
    failure: str
    dropped_outputs: list[str]
    substitutions: SUBSTITUTED_ID
    submitted_template: dict[str, Any]
    deployed_template: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, str] = field(default_factory=dict)
    vpcs: list[dict[str, Any]] = field(default_factory=list)
    subnets: list[dict[str, Any]] = field(default_factory=list)
    route_tables: list[dict[str, Any]] = field(default_factory=list)
    internet_gateways: list[dict[str, Any]] = field(default_factory=list)
    nat_gateways: list[dict[str, Any]] = field(default_factory=list)
    vpc_endpoints: list[dict[str, Any]] = field(default_factory=list)
    security_groups: list[dict[str, Any]] = field(default_factory=list)
    kms_key_arns: list[str] = field(default_factory=list)
    s3_objects: list[str] = field(default_factory=list)
    endpoint: dict[str, Any] = field(default_factory=dict)
    endpoint_config: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    # Every SageMaker endpoint of the stack (each shard's) by logical id, and the names moto created, in order.
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_endpoints: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # pytest prints fixtures in tracebacks; the snapshot is too long to help
        return f"Rehearsal({self.stack_name!r}, status={self.status!r})"

    def require_complete(self) -> Rehearsal:
        assert self.status == "CREATE_COMPLETE", self.failure
        return self

    def deployed_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Logical id -> resource, for the resources of ``resource_type`` in the template moto deployed."""
        resources: dict[str, dict[str, Any]] = self.deployed_template["Resources"]
        return {key: value for key, value in resources.items() if value["Type"] == resource_type}

    def physical_id(self, resource_type: str) -> str:
        """The physical id of the one resource of ``resource_type`` in the deployed template."""
        keys = list(self.deployed_of_type(resource_type))
        assert len(keys) == 1, f"expected one {resource_type} in the deployed template, found {keys}"
        return self.physical_ids[keys[0]]

    def endpoints_of(self, vpc_id: str, service_name: str) -> list[dict[str, Any]]:
        return [e for e in self.vpc_endpoints if e["VpcId"] == vpc_id and e["ServiceName"] == service_name]

    @property
    def runtime_service(self) -> str:
        return f"com.amazonaws.{self.region}.sagemaker.runtime"

    @property
    def s3_service(self) -> str:
        return f"com.amazonaws.{self.region}.s3"

    def runtime_endpoint(self, vpc_id: str) -> dict[str, Any]:
        found = self.endpoints_of(vpc_id, self.runtime_service)
        assert len(found) == 1, f"expected one {self.runtime_service} endpoint in {vpc_id}, found {found}"
        return found[0]

    def s3_gateway(self, vpc_id: str) -> dict[str, Any]:
        found = self.endpoints_of(vpc_id, self.s3_service)
        assert len(found) == 1, f"expected one {self.s3_service} endpoint in {vpc_id}, found {found}"
        return found[0]

    def route_table_of(self, subnet_ids: list[str]) -> dict[str, str]:
        """subnet id -> route table id, from EC2 and from the stack's SubnetRouteTableAssociations.

        moto keeps associations made by CloudFormation out of DescribeRouteTables, so the stack's
        association resources are read through their physical ids as well.
        """
        pairs = {
            (association["SubnetId"], table["RouteTableId"])
            for table in self.route_tables
            for association in table.get("Associations", [])
            if "SubnetId" in association
        }
        for resource in self.deployed_template["Resources"].values():
            if resource["Type"] == "AWS::EC2::SubnetRouteTableAssociation":
                props = resource["Properties"]
                subnet, table = (self.physical_ids[props[key]["Ref"]] for key in ("SubnetId", "RouteTableId"))
                pairs.add((subnet, table))
        tables = {subnet: sorted(table for s, table in pairs if s == subnet) for subnet in subnet_ids}
        assert all(len(found) == 1 for found in tables.values()), f"expected one route table per subnet: {tables}"
        return {subnet: found[0] for subnet, found in tables.items()}


@contextmanager
def fake_aws_environment(account: str, region: str = DEFAULT_REGION) -> Iterator[None]:
    """Fake credentials in ``region``; no profile, config file, endpoint URL or moto server leaks in."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("AWS_", "MOTO_")) or name == "TEST_SERVER_MODE":
                patch.delenv(name)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "MOTO_ACCOUNT_ID": account,
        }.items():
            patch.setenv(name, value)
        yield


@contextmanager
def without_moto_skip_warnings() -> Iterator[None]:
    """Silence moto's "not supported" warning for MOTO_SKIPPED_TYPES only."""
    with warnings.catch_warnings():
        for resource_type in MOTO_SKIPPED_TYPES:
            warnings.filterwarnings(
                "ignore",
                message=rf"Tried to parse {re.escape(resource_type)} but it's not supported",
                category=UserWarning,
            )
        yield


def resolve_placeholders(text: str, account: str, region: str) -> str:
    resolved = text.replace("${AWS::AccountId}", account).replace("${AWS::Region}", region)
    assert "${" not in resolved, f"unresolved placeholder in {text!r}"
    return resolved


def upload_file_assets(session: Any, stage: Synthesized, account: str) -> None:
    """What ``cdk deploy`` publishes: each file asset of ``<stack>.assets.json`` at its objectKey, in the bucket
    the bootstrap makes in the session's region (outside us-east-1 S3 needs the region as LocationConstraint)."""
    region = session.region_name
    manifest = json.loads((stage.outdir / f"{stage.settings.stack_name}.assets.json").read_text())
    s3 = session.client("s3")
    buckets: set[str] = set()
    for asset in manifest["files"].values():
        source = stage.outdir / asset["source"]["path"]
        if asset["source"].get("packaging") == "zip" and source.is_dir():
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                for path in sorted(source.rglob("*")):
                    archive.write(path, path.relative_to(source).as_posix())
            body = buffer.getvalue()
        else:
            body = source.read_bytes()
        for destination in asset["destinations"].values():
            bucket = resolve_placeholders(destination["bucketName"], account, region)
            if bucket not in buckets:
                location = (
                    {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
                )
                s3.create_bucket(Bucket=bucket, **location)
                buckets.add(bucket)
            s3.put_object(Bucket=bucket, Key=destination["objectKey"], Body=body)


def create_stack(session: Any, stack_name: str, template: Mapping[str, Any]) -> tuple[str, str]:
    """Create the stack; return its status and, unless CREATE_COMPLETE, why not (with FAILED events)."""
    cloudformation = session.client("cloudformation")
    error = ""
    try:
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except ClientError as exc:
        # moto creates resources inside CreateStack: a rejected resource surfaces here, not as an event.
        error = str(exc)
    try:
        status = str(cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"])
    except Exception as exc:  # after a failed create, moto's DescribeStacks can raise its own exceptions
        status = f"unknown (DescribeStacks failed: {type(exc).__name__}: {exc})"
    if status == "CREATE_COMPLETE" and not error:
        return status, ""
    try:
        events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    except Exception as exc:  # as above: report what is known rather than hide the failure
        events = [
            {"LogicalResourceId": "(DescribeStackEvents)", "ResourceStatus": "FAILED", "ResourceStatusReason": exc}
        ]
    failed = [
        f"  {event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
        for event in events
        if str(event["ResourceStatus"]).endswith("FAILED")
    ]
    return status, "\n".join(
        [
            f"stack {stack_name} did not reach CREATE_COMPLETE (status: {status})",
            f"CreateStack error: {error or 'none'}",
            "FAILED stack events:",
            *(failed or ["  (none recorded)"]),
        ]
    )


def read_back(session: Any, stack_name: str) -> dict[str, Any]:
    """Everything the tests look at, through the same APIs a user would call."""
    cloudformation, ec2, s3, sagemaker = (session.client(name) for name in ("cloudformation", "ec2", "s3", "sagemaker"))
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    body = cloudformation.get_template(StackName=stack_name)["TemplateBody"]
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    state: dict[str, Any] = {
        "outputs": outputs,
        "deployed_template": json.loads(body) if isinstance(body, str) else json.loads(json.dumps(body)),
        # moto lists each resource it skipped as an entry without ids, and SecurityGroupIngress without a
        # physical id; neither is looked up by the tests.
        "physical_ids": {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in resources
            if "LogicalResourceId" in r and "PhysicalResourceId" in r
        },
        "vpcs": ec2.describe_vpcs()["Vpcs"],
        "subnets": ec2.describe_subnets()["Subnets"],
        "route_tables": ec2.describe_route_tables()["RouteTables"],
        "internet_gateways": ec2.describe_internet_gateways()["InternetGateways"],
        "nat_gateways": ec2.describe_nat_gateways()["NatGateways"],
        "vpc_endpoints": ec2.describe_vpc_endpoints()["VpcEndpoints"],
        "security_groups": ec2.describe_security_groups()["SecurityGroups"],
        # ListKeys, not DescribeKey: moto keeps a CloudFormation key's policy as an object, and
        # DescribeKey then fails parsing it as JSON text.
        "kms_key_arns": [
            key["KeyArn"]
            for key in session.client("kms").list_keys()["Keys"]
            if any(
                r.get("PhysicalResourceId") == key["KeyId"]
                for r in resources
                if r.get("ResourceType") == "AWS::KMS::Key"
            )
        ],
        "s3_objects": [
            f"s3://{bucket['Name']}/{item['Key']}"
            for bucket in s3.list_buckets()["Buckets"]
            for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", [])
        ],
    }
    if "EndpointName" in outputs:
        endpoint = sagemaker.describe_endpoint(EndpointName=outputs["EndpointName"])
        config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        variants = config["ProductionVariants"]
        assert len(variants) == 1, f"expected one production variant, found {variants}"
        state["endpoint"] = endpoint
        state["endpoint_config"] = config
        state["model"] = sagemaker.describe_model(ModelName=variants[0]["ModelName"])
    state["endpoints"] = {
        r["LogicalResourceId"]: sagemaker.describe_endpoint(EndpointName=r["PhysicalResourceId"].rsplit("/", 1)[-1])
        for r in resources
        if r.get("ResourceType") == "AWS::SageMaker::Endpoint"
    }
    return state


def rehearse(
    stage: Synthesized,
    *,
    prepare: Callable[[Any], SUBSTITUTED_ID] | None = None,
    edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Rehearsal:
    """Deploy ``stage`` in a fresh ``mock_aws``; ``prepare`` creates pre-existing resources first, ``edit`` changes
    the template moto gets."""
    settings = stage.settings
    account = settings.account or MOTO_DEFAULT_ACCOUNT
    region = settings.region or DEFAULT_REGION
    stand_ins = with_stand_ins_for_custom_attributes(with_the_traced_model_for_the_compiled_one(stage.template_json))
    template, _ = without_custom_resources(stand_ins)
    template, dropped = without_unresolvable_outputs(template)
    if edit is not None:
        template = edit(template)
    with fake_aws_environment(account, region), without_moto_skip_warnings(), mock_aws():
        session = boto3.session.Session(region_name=region)
        caller = session.client("sts").get_caller_identity()["Account"]
        assert caller == account, f"moto runs as account {caller}, the stage needs {account}"
        session.client("ssm").put_parameter(Name=BOOTSTRAP_VERSION_PARAMETER, Value="30", Type="String")
        upload_file_assets(session, stage, account)
        substitutions = prepare(session) if prepare else {}
        template = substitute_ids(template, substitutions)
        with recording_endpoint_creations() as created:
            status, failure = create_stack(session, settings.stack_name, template)
        common: dict[str, Any] = {
            "stack_name": settings.stack_name,
            "region": region,
            "status": status,
            "failure": failure,
            "dropped_outputs": dropped,
            "substitutions": substitutions,
            "submitted_template": template,
            "created_endpoints": list(created),
        }
        if failure:
            return Rehearsal(**common)
        return Rehearsal(**common, **read_back(session, settings.stack_name))


def lookup_of(vpc_id: str) -> dict[str, Any]:
    """The committed ``Vpc.from_lookup`` result for ``vpc_id`` in cdk.context.json."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.context.json").read_text())
    found: list[dict[str, Any]] = [
        value for key, value in context.items() if key.startswith("vpc-provider:") and value["vpcId"] == vpc_id
    ]
    assert len(found) == 1, f"expected one vpc-provider lookup of {vpc_id} in cdk.context.json, found {len(found)}"
    return found[0]


def recreate_existing_network(settings: StageSettings) -> Callable[[Any], SUBSTITUTED_ID]:
    """Build, in moto, what an existing-VPC stage finds: the looked-up VPC (``recreate_looked_up_vpc``) and, when
    the stage uses one, the existing runtime endpoint with private DNS in the client AZs' private subnets and its
    own security group."""
    assert settings.vpc_id is not None
    lookup = lookup_of(settings.vpc_id)
    vpc = recreate_looked_up_vpc(lookup)
    existing = settings.runtime_endpoint

    def prepare(session: Any) -> SUBSTITUTED_ID:
        ids = vpc(session)
        if existing is None:
            return ids
        ec2 = session.client("ec2")
        vpc_id = ids[settings.vpc_id or ""]
        group_id = ec2.create_security_group(
            GroupName="existing-runtime-endpoint", Description="the VPC owner's endpoint group", VpcId=vpc_id
        )["GroupId"]
        subnets = [ids[subnet["subnetId"]] for subnet in lookup_subnets(lookup, "Private", settings.client_azs)]
        endpoint_id = ec2.create_vpc_endpoint(
            VpcId=vpc_id,
            ServiceName=f"com.amazonaws.{settings.region}.sagemaker.runtime",
            VpcEndpointType="Interface",
            SubnetIds=subnets,
            SecurityGroupIds=[group_id],
            PrivateDnsEnabled=True,
        )["VpcEndpoint"]["VpcEndpointId"]
        return {**ids, existing.vpc_endpoint_id: endpoint_id, existing.security_group_id: group_id}

    return prepare


def recreate_looked_up_vpc(lookup: Mapping[str, Any]) -> Callable[[Any], SUBSTITUTED_ID]:
    """Build, in moto, a VPC laid out like ``lookup``: its CIDR, every subnet, a route table per subnet."""

    def prepare(session: Any) -> SUBSTITUTED_ID:
        ec2 = session.client("ec2")
        vpc_id = ec2.create_vpc(CidrBlock=lookup["vpcCidrBlock"])["Vpc"]["VpcId"]
        ids = {lookup["vpcId"]: vpc_id}
        for group in lookup["subnetGroups"]:
            for subnet in group["subnets"]:
                subnet_id = ec2.create_subnet(
                    VpcId=vpc_id, CidrBlock=subnet["cidr"], AvailabilityZone=subnet["availabilityZone"]
                )["Subnet"]["SubnetId"]
                table_id = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
                ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)
                ids[subnet["subnetId"]] = subnet_id
                ids[subnet["routeTableId"]] = table_id
        return ids

    return prepare


def lookup_subnets(lookup: Mapping[str, Any], group: str, azs: tuple[str, ...]) -> list[dict[str, Any]]:
    """The lookup's subnets of ``group`` in ``azs``, in the order of ``azs``."""
    (subnets,) = [g["subnets"] for g in lookup["subnetGroups"] if g["name"] == group]
    by_az = {subnet["availabilityZone"]: subnet for subnet in subnets}
    return [by_az[az] for az in azs]


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rehearsal_of() -> Callable[[Synthesized], Rehearsal]:
    """Rehearse a synthesized stage, at most once per module; a stage with an existing VPC gets a copy of it."""
    cache: dict[str, Rehearsal] = {}

    def get(stage: Synthesized) -> Rehearsal:
        name, vpc_id = stage.settings.name, stage.settings.vpc_id
        if name not in cache:
            cache[name] = rehearse(stage, prepare=recreate_existing_network(stage.settings) if vpc_id else None)
        return cache[name]

    return get


def in_other_region(settings: StageSettings) -> StageSettings:
    """``settings`` moved to OTHER_REGION, as a user copies a stage in stacks/stages.py."""
    return dataclasses.replace(
        settings,
        name=f"{settings.name}-{OTHER_REGION}",
        region=OTHER_REGION,
        client_azs=tuple(f"{OTHER_REGION}{az[-1]}" for az in settings.client_azs),
    )


@pytest.fixture(scope="module")
def other_region(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(in_other_region(load_stage("dev")), tmp_path_factory.mktemp(f"cdk-dev-{OTHER_REGION}"))


@pytest.fixture(params=[*sorted(STAGES), OTHER_REGION])
def each_stage(
    request: pytest.FixtureRequest, synth_stage: Callable[[str], Synthesized], other_region: Synthesized
) -> Synthesized:
    """Every stage stacks/stages.py defines, and dev copied to OTHER_REGION."""
    return other_region if request.param == OTHER_REGION else synth_stage(str(request.param))


@pytest.fixture(scope="module")
def dev_rehearsal(dev: Synthesized, rehearsal_of: Callable[[Synthesized], Rehearsal]) -> Rehearsal:
    return rehearsal_of(dev)


@pytest.fixture(scope="module")
def portable_rehearsal(portable: Synthesized, rehearsal_of: Callable[[Synthesized], Rehearsal]) -> Rehearsal:
    return rehearsal_of(portable)


@pytest.fixture(scope="module")
def shared_vpc_rehearsal(shared_vpc: Synthesized, rehearsal_of: Callable[[Synthesized], Rehearsal]) -> Rehearsal:
    assert shared_vpc.settings.vpc_id is not None
    return rehearsal_of(shared_vpc)


@pytest.fixture(scope="module")
def gpu_rehearsal(gpu: Synthesized, rehearsal_of: Callable[[Synthesized], Rehearsal]) -> Rehearsal:
    return rehearsal_of(gpu)


@pytest.fixture(scope="module")
def inferentia_rehearsal(inferentia: Synthesized, rehearsal_of: Callable[[Synthesized], Rehearsal]) -> Rehearsal:
    return rehearsal_of(inferentia)


def stack_vpc(rehearsal: Rehearsal) -> dict[str, Any]:
    vpc_id = rehearsal.physical_id("AWS::EC2::VPC")
    (vpc,) = [vpc for vpc in rehearsal.vpcs if vpc["VpcId"] == vpc_id]
    return vpc


def vpc_of(stage: Synthesized, rehearsal: Rehearsal) -> str:
    """The id of the stage's VPC in moto: the stack's own, or the copy of the looked-up one."""
    vpc_id = stage.settings.vpc_id
    return rehearsal.substitutions[vpc_id] if vpc_id else str(stack_vpc(rehearsal)["VpcId"])


def subnet_ids_in(rehearsal: Rehearsal, vpc_id: str) -> list[str]:
    return sorted(subnet["SubnetId"] for subnet in rehearsal.subnets if subnet["VpcId"] == vpc_id)


# --- the rehearsal's own guards --------------------------------------------------------------------


def test_only_custom_resources_and_their_own_provider_are_removed(any_stage: Synthesized) -> None:
    template, removed = without_custom_resources(
        with_stand_ins_for_custom_attributes(with_the_traced_model_for_the_compiled_one(any_stage.template_json))
    )
    custom = {key for key, kind in removed.items() if kind.startswith("Custom::")}
    providers = {key: kind for key, kind in removed.items() if key not in custom}
    # CDK's default-SG provider (new VPC only) is a function and its role; the kit's ENI cleanup and zonal-names
    # handlers are a function each (their roles, policies and log groups are also used by each other, so they
    # stay). Anything else: a silent gap.
    cdk_provider = ["AWS::IAM::Role", "AWS::Lambda::Function"] if any_stage.settings.vpc_id is None else []
    neo_compile = ["AWS::Lambda::Function"] if any_stage.settings.serving.compiled else []
    expected = [*cdk_provider, *neo_compile, "AWS::Lambda::Function", "AWS::Lambda::Function"]
    assert sorted(providers.values()) == sorted(expected), removed
    still_referenced = {
        (key, name)
        for key, resource in template["Resources"].items()
        for name in resource_references(resource) & removed.keys()
    } | {("Outputs", name) for name in references(template.get("Outputs", {})) & removed.keys()}
    assert not still_referenced, f"kept resources still reference removed ones: {sorted(still_referenced)}"
    functions = {key for key, kind in providers.items() if kind == "AWS::Lambda::Function"}
    for key in custom:
        service_token = any_stage.template_json["Resources"][key]["Properties"]["ServiceToken"]
        assert references(service_token) <= functions, f"{key} is served by {service_token}, which stays"


def test_rehearsal_ignores_the_callers_aws_profile_and_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://aws.example.invalid")
    with fake_aws_environment(MOTO_DEFAULT_ACCOUNT):
        session = boto3.session.Session(region_name=DEFAULT_REGION)
        assert session.get_credentials().access_key == "testing"
        assert session.client("sts").meta.endpoint_url == f"https://sts.{DEFAULT_REGION}.amazonaws.com"
    assert os.environ["AWS_PROFILE"] == "production", "the caller's environment comes back afterwards"


def test_a_rejected_resource_fails_the_rehearsal_with_its_reason() -> None:
    variant = {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.c5.huge"}
    template = {
        "Resources": {
            "Config": {"Type": "AWS::SageMaker::EndpointConfig", "Properties": {"ProductionVariants": [variant]}}
        }
    }
    with fake_aws_environment(MOTO_DEFAULT_ACCOUNT), mock_aws():
        status, failure = create_stack(boto3.session.Session(region_name=DEFAULT_REGION), "Rejected", template)
    assert status != "CREATE_COMPLETE"
    assert "ml.c5.huge" in failure and "FAILED stack events" in failure, failure


# --- every stage, in its region -----------------------------------------------------------------


def test_every_stage_deploys_in_its_region_with_that_regions_endpoints_and_image(
    each_stage: Synthesized, rehearsal_of: Callable[[Synthesized], Rehearsal]
) -> None:
    settings = each_stage.settings
    region = settings.region or DEFAULT_REGION
    rehearsal = rehearsal_of(each_stage).require_complete()
    assert rehearsal.region == region
    vpc_id = vpc_of(each_stage, rehearsal)
    endpoint = rehearsal.runtime_endpoint(vpc_id)  # com.amazonaws.<region>.sagemaker.runtime
    azs = {subnet["SubnetId"]: subnet["AvailabilityZone"] for subnet in rehearsal.subnets}
    endpoint_azs = sorted(azs[subnet] for subnet in endpoint["SubnetIds"])
    if settings.client_azs:
        assert endpoint_azs == sorted(settings.client_azs)
    assert endpoint_azs and all(az.startswith(region) for az in endpoint_azs), endpoint_azs
    # The image account differs per region (a CfnMapping in an environment-agnostic template).
    image = settings.serving.registry(settings.container_version).image(region)
    assert image is not None
    assert rehearsal.model["PrimaryContainer"]["Image"] == image[1]
    assert f".dkr.ecr.{region}." in image[1]
    model_data = rehearsal.model["PrimaryContainer"]["ModelDataUrl"]
    assert model_data in rehearsal.s3_objects
    account = settings.account or MOTO_DEFAULT_ACCOUNT  # the stage's own account, as rehearse() deploys it
    assert model_data.startswith(f"s3://cdk-hnb659fds-assets-{account}-{region}/"), model_data


# --- dev: a new VPC ------------------------------------------------------------------------------


def test_dev_stack_reaches_create_complete(dev_rehearsal: Rehearsal) -> None:
    dev_rehearsal.require_complete()


def test_dev_stack_publishes_the_outputs_clients_need(dev: Synthesized, dev_rehearsal: Rehearsal) -> None:
    outputs = dev_rehearsal.require_complete().outputs
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    assert not missing, f"missing outputs {missing}; moto returned {outputs}"
    # No output reads DnsEntries (moto cannot resolve it); the DNS names are the custom resource's stand-ins here.
    assert dev_rehearsal.dropped_outputs == []
    names_id, _ = dev.one("Custom::RuntimeZonalDnsNames")
    assert outputs["RuntimeZonalDnsNames"] == f"stand-in:{names_id}.Json"


def test_dev_vpc_has_the_configured_cidr(dev: Synthesized, dev_rehearsal: Rehearsal) -> None:
    vpc = stack_vpc(dev_rehearsal.require_complete())
    assert vpc["CidrBlock"] == dev.settings.vpc_cidr == "10.42.0.0/16"


def test_dev_has_one_private_subnet_in_each_client_az(dev: Synthesized, dev_rehearsal: Rehearsal) -> None:
    vpc_id = stack_vpc(dev_rehearsal.require_complete())["VpcId"]
    subnets = [subnet for subnet in dev_rehearsal.subnets if subnet["VpcId"] == vpc_id]
    assert sorted(subnet["AvailabilityZone"] for subnet in subnets) == sorted(dev.settings.client_azs)
    assert dev.settings.client_azs == ("us-east-1a", "us-east-1b")
    # moto creates CloudFormation subnets without reading MapPublicIpOnLaunch (it reports its default,
    # false, whatever the template says), so the template moto deployed is what can show it.
    deployed = dev_rehearsal.deployed_of_type("AWS::EC2::Subnet")
    assert sorted(dev_rehearsal.physical_ids[key] for key in deployed) == sorted(s["SubnetId"] for s in subnets)
    assert [subnet["Properties"].get("MapPublicIpOnLaunch") for subnet in deployed.values()] == [False, False]


def test_dev_vpc_has_no_path_to_the_internet(dev_rehearsal: Rehearsal) -> None:
    vpc_id = stack_vpc(dev_rehearsal.require_complete())["VpcId"]
    gateways = [
        gateway["InternetGatewayId"]
        for gateway in dev_rehearsal.internet_gateways
        if any(attachment["VpcId"] == vpc_id for attachment in gateway.get("Attachments", []))
    ]
    nats = [nat["NatGatewayId"] for nat in dev_rehearsal.nat_gateways if nat["VpcId"] == vpc_id]
    assert gateways == [] and nats == [], f"internet gateways {gateways}, NAT gateways {nats}"
    tables = set(dev_rehearsal.route_table_of(subnet_ids_in(dev_rehearsal, vpc_id)).values())
    default_routes = [
        (table["RouteTableId"], route)
        for table in dev_rehearsal.route_tables
        if table["RouteTableId"] in tables
        for route in table["Routes"]
        if route.get("DestinationCidrBlock") == "0.0.0.0/0" or route.get("DestinationIpv6CidrBlock") == "::/0"
    ]
    assert default_routes == []


def test_dev_runtime_endpoint_has_private_dns_in_the_client_az_subnets(dev_rehearsal: Rehearsal) -> None:
    vpc_id = stack_vpc(dev_rehearsal.require_complete())["VpcId"]
    endpoint = dev_rehearsal.runtime_endpoint(vpc_id)
    assert endpoint["VpcEndpointType"] == "Interface"
    assert endpoint["PrivateDnsEnabled"] is True
    assert sorted(endpoint["SubnetIds"]) == subnet_ids_in(dev_rehearsal, vpc_id)
    assert dev_rehearsal.outputs["RuntimeVpcEndpointId"] == endpoint["VpcEndpointId"]


def test_dev_client_security_group_is_the_one_the_runtime_endpoint_admits(dev_rehearsal: Rehearsal) -> None:
    vpc_id = stack_vpc(dev_rehearsal.require_complete())["VpcId"]
    client_group = dev_rehearsal.outputs["ClientSecurityGroupId"]
    groups = {group["GroupId"]: group for group in dev_rehearsal.security_groups}
    assert groups[client_group]["VpcId"] == vpc_id
    (endpoint_group,) = (group["GroupId"] for group in dev_rehearsal.runtime_endpoint(vpc_id)["Groups"])
    admitted = {
        (rule["FromPort"], rule["ToPort"], pair["GroupId"])
        for rule in groups[endpoint_group]["IpPermissions"]
        for pair in rule.get("UserIdGroupPairs", [])
    }
    assert admitted == {(443, 443, client_group)}


def test_dev_s3_gateway_serves_the_subnets_route_tables(dev_rehearsal: Rehearsal) -> None:
    vpc_id = stack_vpc(dev_rehearsal.require_complete())["VpcId"]
    gateway = dev_rehearsal.s3_gateway(vpc_id)
    tables = sorted(dev_rehearsal.route_table_of(subnet_ids_in(dev_rehearsal, vpc_id)).values())
    assert gateway["VpcEndpointType"] == "Gateway"
    assert sorted(gateway["RouteTableIds"]) == tables
    routed = sorted(
        table["RouteTableId"]
        for table in dev_rehearsal.route_tables
        if any(route.get("GatewayId") == gateway["VpcEndpointId"] for route in table["Routes"])
    )
    assert routed == tables


def test_dev_endpoint_is_in_service_with_the_stage_capacity_and_kms(dev: Synthesized, dev_rehearsal: Rehearsal) -> None:
    rehearsal = dev_rehearsal.require_complete()
    assert rehearsal.endpoint["EndpointStatus"] == "InService"
    assert rehearsal.endpoint["EndpointName"] == rehearsal.outputs["EndpointName"]
    (variant,) = rehearsal.endpoint_config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == (
        dev.settings.instance_type,
        dev.settings.initial_instance_count,
    )
    assert (dev.settings.instance_type, dev.settings.initial_instance_count) == ("ml.c5.xlarge", 2)
    assert rehearsal.endpoint_config.get("KmsKeyId") in rehearsal.kms_key_arns
    assert len(rehearsal.kms_key_arns) == 1


def test_dev_model_runs_in_the_runtime_endpoint_subnets_isolated(dev_rehearsal: Rehearsal) -> None:
    rehearsal = dev_rehearsal.require_complete()
    vpc_id = stack_vpc(rehearsal)["VpcId"]
    vpc_config = rehearsal.model["VpcConfig"]
    assert sorted(vpc_config["Subnets"]) == sorted(rehearsal.runtime_endpoint(vpc_id)["SubnetIds"])
    groups = {group["GroupId"]: group["VpcId"] for group in rehearsal.security_groups}
    assert [groups[group] for group in vpc_config["SecurityGroupIds"]] == [vpc_id]
    # moto stores EnableNetworkIsolation as false whatever it is given; the template it deployed says.
    ((model_key, model),) = rehearsal.deployed_of_type("AWS::SageMaker::Model").items()
    assert rehearsal.physical_ids[model_key].rsplit("/", 1)[-1] == rehearsal.model["ModelName"]
    assert model["Properties"]["EnableNetworkIsolation"] is True


def test_dev_model_data_is_the_uploaded_artifact(dev_rehearsal: Rehearsal) -> None:
    rehearsal = dev_rehearsal.require_complete()
    assert rehearsal.model["PrimaryContainer"]["ModelDataUrl"] in rehearsal.s3_objects


# --- portable: environment-agnostic ----------------------------------------------------------------


def test_portable_stack_reaches_create_complete(portable_rehearsal: Rehearsal) -> None:
    portable_rehearsal.require_complete()


def test_portable_model_image_resolves_to_the_deploy_region_registry(portable_rehearsal: Rehearsal) -> None:
    model = portable_rehearsal.require_complete().model
    assert portable_rehearsal.region == DEFAULT_REGION == "us-east-1"
    assert model["PrimaryContainer"]["Image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"
    assert model["PrimaryContainer"]["ModelDataUrl"] in portable_rehearsal.s3_objects


# --- shared-vpc: an existing VPC from a committed lookup -------------------------------------------


def test_shared_vpc_rehearsal_replaces_every_looked_up_id(
    shared_vpc: Synthesized, shared_vpc_rehearsal: Rehearsal
) -> None:
    original = json.dumps(shared_vpc.template_json)
    in_template = set(EC2_ID.findall(original))
    substitutions = shared_vpc_rehearsal.substitutions
    assert in_template, "the shared-vpc template names no looked-up ids; the substitution has nothing to prove"
    assert in_template <= substitutions.keys(), f"ids without a moto counterpart: {in_template - substitutions.keys()}"
    submitted = set(EC2_ID.findall(json.dumps(shared_vpc_rehearsal.submitted_template)))
    assert submitted == {substitutions[old] for old in in_template}


def test_shared_vpc_stack_reaches_create_complete(shared_vpc_rehearsal: Rehearsal) -> None:
    shared_vpc_rehearsal.require_complete()


def test_shared_vpc_endpoint_and_model_sit_in_the_client_az_private_subnets(
    shared_vpc: Synthesized, shared_vpc_rehearsal: Rehearsal
) -> None:
    rehearsal = shared_vpc_rehearsal.require_complete()
    settings = shared_vpc.settings
    assert settings.vpc_id is not None
    lookup = lookup_of(settings.vpc_id)
    vpc_id = rehearsal.substitutions[settings.vpc_id]
    private = lookup_subnets(lookup, "Private", settings.client_azs)
    expected = sorted(rehearsal.substitutions[subnet["subnetId"]] for subnet in private)
    endpoint = rehearsal.runtime_endpoint(vpc_id)  # the VPC's one runtime endpoint: the existing one
    assert sorted(endpoint["SubnetIds"]) == expected
    assert endpoint["PrivateDnsEnabled"] is True
    assert rehearsal.outputs["RuntimeVpcEndpointId"] == endpoint["VpcEndpointId"]
    assert sorted(rehearsal.model["VpcConfig"]["Subnets"]) == expected
    azs = {subnet["SubnetId"]: subnet["AvailabilityZone"] for subnet in rehearsal.subnets}
    assert sorted(azs[subnet] for subnet in expected) == sorted(settings.client_azs)


def test_shared_vpc_uses_the_existing_runtime_endpoint_and_admits_its_clients_there(
    shared_vpc: Synthesized, shared_vpc_rehearsal: Rehearsal
) -> None:
    rehearsal = shared_vpc_rehearsal.require_complete()
    existing = shared_vpc.settings.runtime_endpoint
    assert existing is not None
    endpoint_id = rehearsal.substitutions[existing.vpc_endpoint_id]
    assert rehearsal.outputs["RuntimeVpcEndpointId"] == endpoint_id
    assert rehearsal.deployed_of_type("AWS::EC2::VPCEndpoint") == {}  # the stack creates none
    client_group = rehearsal.outputs["ClientSecurityGroupId"]
    (group,) = [
        g for g in rehearsal.security_groups if g["GroupId"] == rehearsal.substitutions[existing.security_group_id]
    ]
    https = [rule for rule in group["IpPermissions"] if (rule.get("FromPort"), rule.get("ToPort")) == (443, 443)]
    sources = {pair["GroupId"] for rule in https for pair in rule.get("UserIdGroupPairs", [])}
    networks = {ip["CidrIp"] for rule in https for ip in rule.get("IpRanges", [])}
    assert client_group in sources
    assert networks == set(shared_vpc.settings.client_cidrs)


def test_shared_vpc_gets_no_s3_gateway_on_its_route_tables(
    shared_vpc: Synthesized, shared_vpc_rehearsal: Rehearsal
) -> None:
    """The kit leaves an existing VPC's routing alone (README: existing VPCs bring their own S3 path)."""
    rehearsal = shared_vpc_rehearsal.require_complete()
    settings = shared_vpc.settings
    assert settings.vpc_id is not None
    assert rehearsal.endpoints_of(rehearsal.substitutions[settings.vpc_id], rehearsal.s3_service) == []


def test_shared_vpc_endpoint_is_in_service(shared_vpc_rehearsal: Rehearsal) -> None:
    rehearsal = shared_vpc_rehearsal.require_complete()
    assert rehearsal.endpoint["EndpointStatus"] == "InService"


def test_gpu_stack_reaches_create_complete_with_triton_on_g4dn(gpu_rehearsal: Rehearsal) -> None:
    gpu_rehearsal.require_complete()
    (variant,) = gpu_rehearsal.endpoint_config["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    assert "KmsKeyId" not in gpu_rehearsal.endpoint_config
    container = gpu_rehearsal.model["PrimaryContainer"]
    assert "/sagemaker-tritonserver:" in container["Image"]
    assert container["Environment"] == {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "rtb-filter"}


# --- scale: shards created one after another ---------------------------------------------------------


def _sharded_stage(synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    """The first stage in STAGES with more than one shard (the shipped scale stage)."""
    sharded = [name for name in STAGES if load_stage(name).shards > 1]
    assert sharded, "a stage with shards rehearses the shard-by-shard order"
    return synth_stage(sharded[0])


def in_reverse(template: dict[str, Any]) -> dict[str, Any]:
    """The template with its resources listed last to first: what comes first in it is not what moto creates first."""
    return {**template, "Resources": dict(reversed(list(template["Resources"].items())))}


def without_the_chain(template: dict[str, Any]) -> dict[str, Any]:
    """The template without the endpoints' DependsOn on each other (their other dependencies kept)."""
    resources = template["Resources"]
    endpoints = {key for key, resource in resources.items() if resource["Type"] == "AWS::SageMaker::Endpoint"}
    return {
        **template,
        "Resources": {
            key: _without_depends_on(resource, endpoints) if key in endpoints else resource
            for key, resource in resources.items()
        },
    }


def _creation_order(rehearsal: Rehearsal) -> list[str]:
    """The logical ids of the stack's endpoints in the order moto created them."""
    by_name = {endpoint["EndpointName"]: key for key, endpoint in rehearsal.endpoints.items()}
    return [by_name[name] for name in rehearsal.created_endpoints if name in by_name]


def test_shards_are_created_one_after_another_in_their_dependency_order_not_the_templates(
    synth_stage: Callable[[str], Synthesized], rehearsal_of: Callable[[Synthesized], Rehearsal]
) -> None:
    """Shard k+1's endpoint waits for shard k's (DependsOn), so CloudFormation creates, updates and deletes them one at
    a time. moto's CloudFormation creates in dependency order: with the resources listed in reverse, the endpoints
    still come shard 0 first; without the chain, the reversed listing would put shard 2 first."""
    stage = _sharded_stage(synth_stage)
    names = {
        resource["Properties"]["EndpointName"]: key
        for key, resource in stage.of_type("AWS::SageMaker::Endpoint").items()
    }
    chain = endpoint_chain(stage.template_json)
    assert chain == [names[name] for name in stage.settings.endpoint_names]  # shard 0, 1, 2
    assert _creation_order(rehearsal_of(stage).require_complete()) == chain
    reversed_rehearsal = rehearse(stage, edit=in_reverse).require_complete()
    submitted = [key for key in reversed_rehearsal.submitted_template["Resources"] if key in chain]
    assert submitted == chain[::-1]
    assert _creation_order(reversed_rehearsal) == chain
    assert {endpoint["EndpointStatus"] for endpoint in reversed_rehearsal.endpoints.values()} == {"InService"}
    unchained = rehearse(stage, edit=lambda template: in_reverse(without_the_chain(template))).require_complete()
    assert _creation_order(unchained) == chain[::-1]


def test_inferentia_stack_reaches_create_complete_on_inf1(inferentia_rehearsal: Rehearsal) -> None:
    inferentia_rehearsal.require_complete()
    (variant,) = inferentia_rehearsal.endpoint_config["ProductionVariants"]
    assert variant["InstanceType"] == "ml.inf1.xlarge"
    container = inferentia_rehearsal.model["PrimaryContainer"]
    assert "/sagemaker-neo-pytorch:1.9-inf-py3" in container["Image"]
    # The traced archive stands in for Neo's output (see with_the_traced_model_for_the_compiled_one).
    assert container["ModelDataUrl"].endswith(".gz")
