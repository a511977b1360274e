"""The latency the ad servers see: a probe function in each client AZ, on the clients' own path.

Each function runs in one client AZ's subnet with the client security group and the caller policy, so it
reaches SageMaker exactly as an ad server there does: its AZ's zonal DNS name of the runtime interface endpoint
(chosen by the client package's runtime_endpoint_url), HTTPS, SigV4, the stage's profile codec. Every
``schedule_minutes`` it sends ``burst_size`` invocations of the model's sample row and prints one CloudWatch
embedded-metric-format line (handlers/client_probe.py): the metrics reach CloudWatch through the function's own
log group, so the probe needs no network path besides the one it measures. The alarms and the dashboard row are in
monitoring.py (``client_path_metric``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

import jsii
from aws_cdk import (
    Acknowledgment,
    BundlingOptions,
    CfnResource,
    DockerImage,
    Duration,
    ILocalBundling,
    Stack,
    Validations,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.compliance import checkov_skip, nag_arn
from stacks.handler_code import (
    NO_RESERVED_CONCURRENCY,
    acknowledge_no_reserved_concurrency,
    retained_log_group,
    write_logs,
)
from stacks.handlers.zonal_dns import az_attribute
from stacks.settings import StageSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "RtbInference/ClientPath"
# The zip: the handler and the kit's client package (path in the zip: path in the repository); nothing else.
CLIENT_PACKAGE = REPO_ROOT / "client" / "rtb_client"
PROBE_FILES = {
    "stacks/__init__.py": "stacks/__init__.py",
    "stacks/handlers/__init__.py": "stacks/handlers/__init__.py",
    "stacks/handlers/client_probe.py": "stacks/handlers/client_probe.py",
    **{
        f"rtb_client/{path.name}": f"client/rtb_client/{path.name}"
        for path in sorted(CLIENT_PACKAGE.glob("*.py"), key=lambda path: path.name)
    },
}
# A run that outlasts this is cut off and shows as a missing datapoint (the missing-data alarm): a run ends
# before the next one is due.
SECONDS_PER_SCHEDULED_MINUTE = 50
# Lambda's minimum MaximumEventAgeInSeconds (botocore's model: 60 to 21600): an event that waited longer in
# Lambda's queue (throttled, say) is dropped. Below the schedule period from 2 minutes on, equal to it at 1.
MAX_EVENT_AGE_SECONDS = 60
# Lambda's documented resource for DeleteNetworkInterface when no interface ID is known: every resource.
ALL_EC2_RESOURCES = "arn:aws:ec2:{region}:{account}:*/*"

PLAIN_CONFIGURATION = (
    "the variables are run configuration, no secret: the endpoint's name and zonal DNS names, the profile, the "
    "model's sample row, the burst size, the SLO, the metric namespace, the AZ and its subnet's CIDR, all in this "
    "template and its outputs already; Lambda encrypts environment variables at rest with an AWS managed key in any "
    "case (Lambda developer guide, data protection: encryption at rest)"
)

SCHEDULED_NOT_QUEUED = (
    "EventBridge invokes it every run; a failed run is not worth redelivering later (a stale measurement), "
    "so there is no dead-letter queue: a run that fails or is cut off publishes no datapoint, and the "
    "missing-data alarm tells on-call"
)


@jsii.implements(ILocalBundling)
class _ProbeFiles:
    """Lays the zip out as Lambda imports it: the client package at the top, beside ``stacks``. A copy in
    this process at synth: no Docker, and the same files give the same asset hash."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: Any) -> bool:
        for target, source in PROBE_FILES.items():
            destination = Path(output_dir) / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO_ROOT / source, destination)
        return True


def probe_code() -> lambda_.Code:
    """Standard library, botocore and the kit's client package; the asset hash is of the source files."""
    sources = sorted(PROBE_FILES.values())
    folders = sorted({str(Path(source).parent) for source in sources} - {"."})
    return lambda_.Code.from_asset(
        str(REPO_ROOT),
        exclude=["*", ".*", *(f"!{path}" for path in folders + sources)],
        # Never run: the local copy always succeeds; the option only needs an image to name.
        bundling=BundlingOptions(image=DockerImage.from_registry("scratch"), local=_ProbeFiles()),
    )


def az_id(az: str) -> str:
    """A construct-id suffix from an AZ name: us-east-1a -> UsEast1a (the zonal names' attribute names too)."""
    return az_attribute(az)


class ClientProbes(Construct):
    """One scheduled probe function per client AZ, in that AZ's subnet, as a client of the runtime endpoint."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        endpoint_name: str,
        subnets: list[ec2.ISubnet],
        client_security_group: ec2.ISecurityGroup,
        zonal_dns_names: str,
        caller_policy: iam.IManagedPolicy,
        vpc: ec2.IVpc,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        probe = settings.client_probe
        manifest = settings.artifact.manifest
        output = manifest.get("output") or {"kind": "probability", "columns": 1}
        environment = {
            "ENDPOINT_NAME": endpoint_name,
            "PROFILE": settings.profile,
            "SAMPLE_ROW": str(manifest["sample_payload"]),
            "OUTPUT_KIND": str(output["kind"]),
            "OUTPUT_COLUMNS": str(output["columns"]),
            "BURST_SIZE": str(probe.burst_size),
            "LATENCY_SLO_MS": f"{settings.latency_slo_ms:g}",
            "METRIC_NAMESPACE": NAMESPACE,
            # {"<az>": "<zonal name>"}: each probe connects as an ad server in its AZ does (rtb_client).
            "ZONAL_DNS_NAMES": zonal_dns_names,
        }
        stack = Stack.of(self)
        self.functions: dict[str, lambda_.Function] = {}
        for subnet in subnets:
            az = subnet.availability_zone
            suffix = az_id(az)
            log_group = retained_log_group(
                self, f"Logs{suffix}", encryption_key=encryption_key, retention_days=settings.log_retention_days
            )
            role = iam.Role(
                self,
                f"Role{suffix}",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"Client probe in {az}: invoke {endpoint_name} through the runtime endpoint",
                managed_policies=[caller_policy],
            )
            policy = iam.ManagedPolicy(
                self,
                f"Policy{suffix}",
                roles=[role],
                statements=[
                    write_logs(log_group),
                    # Lambda places the function's network interface with the function's role: in this AZ's
                    # subnet, with the client security group.
                    iam.PolicyStatement(
                        sid="PlaceItsInterfaceInItsSubnet",
                        actions=["ec2:CreateNetworkInterface"],
                        resources=[
                            stack.format_arn(service="ec2", resource="subnet", resource_name=subnet.subnet_id),
                            stack.format_arn(
                                service="ec2",
                                resource="security-group",
                                resource_name=client_security_group.security_group_id,
                            ),
                            stack.format_arn(service="ec2", resource="network-interface", resource_name="*"),
                        ],
                    ),
                    # In the form Lambda documents, with no condition: "If you don't specify a resource ID for
                    # DeleteNetworkInterface in the execution role, your function may not be able to access the
                    # VPC. Either specify a unique resource ID, or include all resource IDs" (the example is
                    # arn:aws:ec2:<region>:<account>:*/*). A network-interface/* ARN with an ec2:Vpc condition
                    # was refused at function creation for others (hashicorp/terraform-provider-aws#20698).
                    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-permissions
                    iam.PolicyStatement(
                        sid="ManageItsInterfaces",
                        actions=[
                            "ec2:DeleteNetworkInterface",
                            "ec2:AssignPrivateIpAddresses",
                            "ec2:UnassignPrivateIpAddresses",
                        ],
                        resources=[ALL_EC2_RESOURCES.format(region=stack.region, account=stack.account)],
                    ),
                    iam.PolicyStatement(
                        sid="DescribeInterfaces",
                        actions=["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
                        # Describe calls take no resource ARN.
                        resources=["*"],
                    ),
                ],
            )
            function = lambda_.Function(
                self,
                f"Function{suffix}",
                runtime=lambda_.Runtime.PYTHON_3_14,
                handler="stacks.handlers.client_probe.handler",
                code=probe_code(),
                role=role,
                timeout=Duration.seconds(SECONDS_PER_SCHEDULED_MINUTE * probe.schedule_minutes),
                memory_size=256,
                vpc=vpc,
                vpc_subnets=ec2.SubnetSelection(subnets=[subnet]),
                security_groups=[client_security_group],
                # The runtime endpoint's interface in this AZ sits in this subnet: a connection outside its CIDR
                # went to another AZ's interface.
                environment={**environment, "PROBE_AZ": az, "ZONAL_CIDR": subnet.ipv4_cidr_block},
                log_group=log_group,
                logging_format=lambda_.LoggingFormat.TEXT,
                # EventBridge invokes it asynchronously, so Lambda's own retries and event queue apply whatever the
                # rule's retry policy says (by default two retries, events kept up to 6 hours:
                # https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html). A retried or
                # late run is a stale measurement: no retries, and an event older than Lambda's minimum age is
                # dropped (the next scheduled run measures instead).
                retry_attempts=0,
                max_event_age=Duration.seconds(MAX_EVENT_AGE_SECONDS),
                # No reserved concurrency: a reservation must leave the account's minimum unreserved concurrency,
                # and a new account's total is often 10, so any reservation can fail the deploy ("decreases
                # account's UnreservedConcurrentExecution below its minimum value";
                # https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html). Runs stay one at a
                # time without it: each ends before the next is due, none is retried, and one that starts late (at
                # most MAX_EVENT_AGE_SECONDS) adds only one burst to that minute's measurement.
                description=f"RTB inference kit: client-path probe of {endpoint_name} in {az}",
            )
            Validations.of(policy).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                    reason="ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets have no resource-level "
                    "permissions (IAM service authorization reference)",
                ),
                Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{nag_arn(stack, 'ec2', 'network-interface/*')}]",
                    reason="Lambda creates the function's network interface, so its id is unknown; creation is "
                    "limited to this AZ's subnet and the client security group",
                ),
                Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{nag_arn(stack, 'ec2', '*/*')}]",
                    reason="Lambda's documented form for a VPC function's role: DeleteNetworkInterface on a unique "
                    "resource ID or on all resource IDs (arn:aws:ec2:<region>:<account>:*/*), else the function may "
                    "not reach the VPC; Lambda names the interfaces it creates, so no ID is known in advance",
                ),
            )
            # Lambda checks the interface permissions when it creates the function: the policy comes first. The
            # role's own dependency is already implied by the Role property (cfn-lint W3005), so it is not restated.
            cast(CfnResource, function.node.default_child).add_override(
                "DependsOn", [stack.get_logical_id(cast(iam.CfnManagedPolicy, policy.node.default_child))]
            )
            events.Rule(
                self,
                f"Schedule{suffix}",
                description=f"Client probe of {endpoint_name} in {az}",
                schedule=events.Schedule.rate(Duration.minutes(probe.schedule_minutes)),
                # A missed run is a missing datapoint, not a late one.
                targets=[targets.LambdaFunction(function, retry_attempts=0)],
            )
            acknowledge_no_reserved_concurrency(function)
            checkov_skip(function, "CKV_AWS_115", NO_RESERVED_CONCURRENCY)
            checkov_skip(function, "CKV_AWS_116", SCHEDULED_NOT_QUEUED)
            checkov_skip(function, "CKV_AWS_173", PLAIN_CONFIGURATION)
            Validations.of(function).acknowledge(
                *(
                    Acknowledgment(id=f"{pack}::{pack}-LambdaDLQ", reason=SCHEDULED_NOT_QUEUED)
                    for pack in ("NIST.800.53.R5", "HIPAA.Security")
                ),
            )
            self.functions[az] = function
