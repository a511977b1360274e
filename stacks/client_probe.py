"""The latency the ad servers see: a probe function in each client AZ, on the clients' own path.

Each function runs in one client AZ's subnet with the client security group and the caller policy, so it
reaches SageMaker exactly as an ad server there does: the runtime interface endpoint's private DNS name,
HTTPS, SigV4, the stage's profile codec. Every ``schedule_minutes`` it sends ``burst_size`` invocations of the
model's sample row and prints one CloudWatch embedded-metric-format line (handlers/client_probe.py): the
metrics reach CloudWatch through the function's own log group, so the probe needs no network path besides
the one it measures. The alarms and the dashboard row are in monitoring.py (``client_path_metric``).
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

from stacks.compliance import nag_arn
from stacks.handler_code import retained_log_group, write_logs
from stacks.settings import StageSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "RtbInference/ClientPath"
# The zip: the handler and the kit's client package (path in the zip: path in the repository); nothing else.
PROBE_FILES = {
    "stacks/__init__.py": "stacks/__init__.py",
    "stacks/handlers/__init__.py": "stacks/handlers/__init__.py",
    "stacks/handlers/client_probe.py": "stacks/handlers/client_probe.py",
    "rtb_client/__init__.py": "client/rtb_client/__init__.py",
}
# A run that outlasts this is cut off and shows as a missing datapoint (the missing-data alarm), not as a
# second run piling onto the first: the function has one slot (reserved concurrency 1).
SECONDS_PER_SCHEDULED_MINUTE = 50

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
    """A construct-id suffix from an AZ name: us-east-1a -> UsEast1a."""
    return "".join(part[:1].upper() + part[1:] for part in az.split("-"))


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
                    # Lambda places the function's network interface with the function's role: in this
                    # AZ's subnet, with the client security group, and manages only interfaces in this VPC.
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
                    iam.PolicyStatement(
                        sid="ManageItsInterfacesInThisVpc",
                        actions=[
                            "ec2:DeleteNetworkInterface",
                            "ec2:AssignPrivateIpAddresses",
                            "ec2:UnassignPrivateIpAddresses",
                        ],
                        resources=[stack.format_arn(service="ec2", resource="network-interface", resource_name="*")],
                        conditions={
                            "ArnEquals": {
                                "ec2:Vpc": stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id)
                            }
                        },
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
                # The runtime endpoint's interface in this AZ sits in this subnet: an answer or a connection
                # outside its CIDR went to another AZ's interface.
                environment={**environment, "PROBE_AZ": az, "ZONAL_CIDR": subnet.ipv4_cidr_block},
                log_group=log_group,
                logging_format=lambda_.LoggingFormat.TEXT,
                reserved_concurrent_executions=1,
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
                    "limited to this AZ's subnet and the client security group, the other calls to this VPC",
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
            Validations.of(function).acknowledge(
                *(
                    Acknowledgment(id=f"{pack}::{pack}-LambdaDLQ", reason=SCHEDULED_NOT_QUEUED)
                    for pack in ("NIST.800.53.R5", "HIPAA.Security")
                ),
            )
            self.functions[az] = function
