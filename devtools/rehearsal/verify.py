"""What the rehearsal reads back through moto's APIs: the bootstrap's version parameter after ``cdk bootstrap``,
and after ``cdk deploy`` what the stack built (the Summary the command prints), with the order in which moto's
CloudFormation created the endpoints of a stage with shards."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from devtools.rehearsal.base import FAKE_CREDENTIALS, HTTP_TIMEOUT_SECONDS, RehearsalError
from devtools.rehearsal.cdk_cli import BOOTSTRAP_VERSION_PARAMETER, Target
from devtools.rehearsal.stand_ins import Answer


def boto3_clients(endpoint_url: str, region: str) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    )
    config = Config(connect_timeout=HTTP_TIMEOUT_SECONDS, read_timeout=30, retries={"max_attempts": 2}, proxies={})
    return {
        service: session.client(service, endpoint_url=endpoint_url, config=config)
        for service in ("cloudformation", "sagemaker", "ec2", "ssm")
    }


def check_bootstrapped(ssm: Any, target: Target) -> None:
    """After ``cdk bootstrap``: its version parameter is where ``cdk deploy`` will read it, the stack's region."""
    try:
        ssm.get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise
        raise RehearsalError(
            f"cdk bootstrap left no {BOOTSTRAP_VERSION_PARAMETER} in {target.environment}, where cdk deploy "
            f"reads it (bootstrapped another region or qualifier?)"
        ) from None


@dataclass
class Summary:
    stack_status: str
    endpoint_name: str
    endpoint_status: str
    # Every shard's endpoint, in the order moto created them (shard 0 first when the DependsOn chain held).
    endpoint_order: list[str]
    model_image: str
    runtime_vpc_endpoint: str
    s3_vpc_endpoint: str
    default_security_group: str
    zonal_dns_names: str
    stand_in: list[Answer]
    skipped_types: list[str]


def one(items: list[Any], what: str) -> Any:
    if len(items) != 1:
        raise RehearsalError(f"expected exactly one {what}, found {len(items)}")
    return items[0]


def endpoint_chain(template: Mapping[str, Any]) -> list[str]:
    """The logical ids of the template's SageMaker endpoints in the order their DependsOn chain sets: the one that
    waits for no other endpoint first, then the one that waits for it, and so on. RehearsalError if they do not
    form one chain (a stage's shards are updated one after another: docs/safe-updates.md)."""
    resources = template.get("Resources", {})
    endpoints = [key for key, resource in resources.items() if resource.get("Type") == "AWS::SageMaker::Endpoint"]

    def waits_for(key: str) -> set[str]:
        depends_on = resources[key].get("DependsOn", [])
        return ({depends_on} if isinstance(depends_on, str) else set(depends_on)) & set(endpoints)

    broken = RehearsalError(f"the endpoints {endpoints} do not wait for each other in one DependsOn chain")
    chain = [key for key in endpoints if not waits_for(key)]
    if len(chain) != 1:
        raise broken
    while len(chain) < len(endpoints):
        following = [key for key in endpoints if waits_for(key) == {chain[-1]}]
        if len(following) != 1:
            raise broken
        chain.append(following[0])
    return chain


def check_endpoint_order(chain: list[str], physical_ids: Mapping[str, str], created: list[str]) -> list[str]:
    """The names of the chain's endpoints in the order moto created them; RehearsalError unless it is the chain's."""
    names = {logical_id: physical_ids[logical_id].rsplit("/", 1)[-1] for logical_id in chain}
    order = [name for name in created if name in names.values()]
    if order != [names[logical_id] for logical_id in chain]:
        by_name = {name: logical_id for logical_id, name in names.items()}
        raise RehearsalError(
            f"the endpoints were created in the order {[by_name.get(name, name) for name in order]}, not the "
            f"DependsOn chain's {chain}"
        )
    return order


def verify(
    clients: Mapping[str, Any],
    target: Target,
    template: Mapping[str, Any] | None = None,
    created: list[str] | None = None,
) -> Summary:
    """Read back through the APIs what moto built; RehearsalError on the first difference. With ``template`` and
    ``created`` (recording_endpoint_creations), the endpoints must have been created in their DependsOn chain's
    order."""
    name, runtime_service, s3_service = target.stack, target.runtime_service, target.s3_service
    cfn, sagemaker, ec2 = clients["cloudformation"], clients["sagemaker"], clients["ec2"]
    status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        raise RehearsalError(f"stack {name} is {status}, not CREATE_COMPLETE")
    physical: dict[str, list[str]] = {}
    logical: dict[str, str] = {}
    for resource in cfn.describe_stack_resources(StackName=name)["StackResources"]:
        if "ResourceType" in resource:  # moto lists each resource it skipped as an entry without type or id
            physical.setdefault(resource["ResourceType"], []).append(resource.get("PhysicalResourceId", ""))
            logical[resource["LogicalResourceId"]] = resource.get("PhysicalResourceId", "")

    endpoint_ids = physical.get("AWS::SageMaker::Endpoint", [])
    if not endpoint_ids:
        raise RehearsalError("expected an AWS::SageMaker::Endpoint in the stack, found none")
    images = set()
    for endpoint_id in endpoint_ids:  # every shard's
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_id.rsplit("/", 1)[-1])
        if endpoint["EndpointStatus"] != "InService":
            raise RehearsalError(f"SageMaker endpoint {endpoint['EndpointName']} is {endpoint['EndpointStatus']}")
        config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        variant = one(config["ProductionVariants"], f"production variant of {config['EndpointConfigName']}")
        images.add(sagemaker.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]["Image"])
    image = one(sorted(images), "container image across the shards")
    if image != target.image:
        raise RehearsalError(f"the model runs {image}, not {target.image}, the image published in {target.region}")
    order = [endpoint_id.rsplit("/", 1)[-1] for endpoint_id in endpoint_ids]
    if template is not None and created is not None:
        order = check_endpoint_order(endpoint_chain(template), logical, created)
    first = sagemaker.describe_endpoint(EndpointName=order[0])

    vpc_id = one(physical.get("AWS::EC2::VPC", []), "AWS::EC2::VPC in the stack")
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    endpoints = ec2.describe_vpc_endpoints(Filters=in_vpc)["VpcEndpoints"]
    runtime = one(
        [e for e in endpoints if e["ServiceName"] == runtime_service and e["VpcEndpointType"] == "Interface"],
        f"interface endpoint for {runtime_service}",
    )
    if not runtime.get("PrivateDnsEnabled"):
        raise RehearsalError(f"interface endpoint {runtime['VpcEndpointId']} has private DNS off")
    gateway = one(
        [e for e in endpoints if e["ServiceName"] == s3_service and e["VpcEndpointType"] == "Gateway"],
        f"gateway endpoint for {s3_service}",
    )
    stack_endpoints = set(physical.get("AWS::EC2::VPCEndpoint", []))
    if stack_endpoints != {runtime["VpcEndpointId"], gateway["VpcEndpointId"]}:
        raise RehearsalError(f"the stack's VPC endpoints {sorted(stack_endpoints)} are not the ones found")
    zonal = check_zonal_names(cfn.describe_stacks(StackName=name)["Stacks"][0], runtime, ec2)

    default_filter = [*in_vpc, {"Name": "group-name", "Values": ["default"]}]
    group = one(ec2.describe_security_groups(Filters=default_filter)["SecurityGroups"], "default security group")
    if group["IpPermissions"] or group["IpPermissionsEgress"]:
        raise RehearsalError(f"default security group {group['GroupId']} still has rules: the stand-in did not run")
    return Summary(
        stack_status=status,
        endpoint_name=first["EndpointName"],
        endpoint_status=first["EndpointStatus"],
        endpoint_order=order,
        model_image=image,
        runtime_vpc_endpoint=f"{runtime['VpcEndpointId']} (Interface, {runtime_service}, private DNS on)",
        s3_vpc_endpoint=f"{gateway['VpcEndpointId']} (Gateway, {s3_service})",
        default_security_group=f"{group['GroupId']}: no ingress, no egress rules",
        zonal_dns_names=zonal,
        stand_in=[],
        skipped_types=[],
    )


def check_zonal_names(stack: Mapping[str, Any], runtime: Mapping[str, Any], ec2: Any) -> str:
    """The stack's RuntimeZonalDnsNames output names, for each AZ of the runtime endpoint's subnets, that AZ's
    zonal name among the endpoint's DnsEntries; a summary line, or RehearsalError."""
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    if "RuntimeZonalDnsNames" not in outputs:
        raise RehearsalError(f"the stack has no RuntimeZonalDnsNames output (it has {sorted(outputs)})")
    published = json.loads(outputs["RuntimeZonalDnsNames"])
    subnets = ec2.describe_subnets(SubnetIds=runtime["SubnetIds"])["Subnets"]
    azs = sorted({subnet["AvailabilityZone"] for subnet in subnets})
    entries = {entry["DnsName"] for entry in runtime.get("DnsEntries", [])}
    wrong = {
        az: published.get(az)
        for az in azs
        if published.get(az) not in entries or not str(published[az]).split(".", 1)[0].endswith(f"-{az}")
    }
    if wrong or sorted(published) != azs:
        raise RehearsalError(f"RuntimeZonalDnsNames {published} does not name each AZ's zonal DNS entry of {azs}")
    return f"{', '.join(azs)}: each its AZ's entry of {runtime['VpcEndpointId']}"
