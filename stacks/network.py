"""The private network: a VPC (new or existing), its client-AZ subnets, flow logs and the S3 gateway."""

from __future__ import annotations

from typing import cast

from aws_cdk import CfnResource, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.compliance import checkov_skip
from stacks.handler_code import NO_RESERVED_CONCURRENCY, OUTSIDE_THE_VPC
from stacks.settings import StageSettings

# The id CDK gives the placeholder VPC it returns while a lookup is still missing from the context.
_LOOKUP_PLACEHOLDER_VPC_ID = "vpc-12345"


class InferenceNetwork(Construct):
    """The VPC and the one subnet per client AZ that the runtime endpoint and the model share."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StageSettings, encryption_key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.s3_endpoint: ec2.GatewayVpcEndpoint | None = None
        if settings.vpc_id is None:
            self.vpc: ec2.IVpc = self._new_vpc(settings, encryption_key)
            # One list, used by both the runtime endpoint and the model: same-AZ routing is the point.
            self.subnets = ec2.SubnetSelection(subnets=list(self.vpc.isolated_subnets))
            # Only in a VPC the kit owns: on an existing VPC's route tables, an endpoint that admits
            # nothing but the model artifact would cut off every other workload's S3 traffic.
            self.s3_endpoint = self.vpc.add_gateway_endpoint(
                "S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.subnets]
            )
        else:
            self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=settings.vpc_id)
            self.subnets = ec2.SubnetSelection(subnets=self._client_az_subnets(settings))

    def _new_vpc(self, settings: StageSettings, encryption_key: kms.IKey) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(settings.new_vpc_cidr),
            # The stack's availability_zones are the client AZs (or two AZs of the deploy region).
            max_azs=2 if settings.environment_agnostic else len(settings.client_azs),
            nat_gateways=0,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            restrict_default_security_group=True,
            subnet_configuration=[ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
        )
        _silence_cdk_provider_lint(Stack.of(self))
        log_group = logs.LogGroup(self, "FlowLogGroup", encryption_key=encryption_key)
        # RetentionDays is an enum of names; the setting is a number of days, validated in settings.
        cast(logs.CfnLogGroup, log_group.node.default_child).retention_in_days = settings.log_retention_days
        ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(vpc),
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group, self._flow_log_role(log_group)),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        return vpc

    def _flow_log_role(self, log_group: logs.ILogGroup) -> iam.IRole:
        """A role with a managed (not inline) policy that writes to this one log group."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "FlowLogRole",
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                # Confused-deputy guard: only flow logs of this account may assume it.
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description="VPC flow logs delivery to the encrypted log group",
        )
        iam.ManagedPolicy(
            self,
            "FlowLogPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[log_group.log_group_arn],
                )
            ],
        )
        # The flow log construct would add the same statement inline; the managed policy has it.
        return role.without_policy_updates()

    def _client_az_subnets(self, settings: StageSettings) -> list[ec2.ISubnet]:
        """One private subnet per client AZ, preferring isolated subnets to ones with a NAT route."""
        if self.vpc.vpc_id == _LOOKUP_PLACEHOLDER_VPC_ID:
            # No lookup in cdk.context.json yet: CDK records the missing context and the CLI looks
            # the VPC up (with credentials) and synthesizes again; judge the AZs on that pass.
            return list(self.vpc.private_subnets)
        private = [*self.vpc.isolated_subnets, *self.vpc.private_subnets]
        by_az: dict[str, ec2.ISubnet] = {}
        for subnet in private:
            by_az.setdefault(subnet.availability_zone, subnet)
        missing = [az for az in settings.client_azs if az not in by_az]
        if missing:
            raise ValueError(
                f"stage {settings.name!r}: client_azs={settings.client_azs!r} is invalid: VPC {settings.vpc_id} "
                f"has no private subnet in {missing}; allowed: AZs among {sorted(by_az)} (after a VPC change, "
                "refresh cdk.context.json: 'npx cdk context --reset KEY', then synth with credentials)"
            )
        return [by_az[az] for az in settings.client_azs]

    def allow_s3_object_reads(self, object_arns: list[str]) -> None:
        """Let the gateway endpoint pass reads of exactly these objects (the model artifact)."""
        if self.s3_endpoint is None:
            return
        self.s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                sid="ReadModelArtifact",
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject"],
                resources=object_arns,
            )
        )

    def allow_s3_object_writes(self, object_arns: list[str]) -> None:
        """Let the gateway endpoint pass writes of exactly these objects (captured requests), in case
        SageMaker uploads them through the model's subnets."""
        if self.s3_endpoint is None:
            return
        self.s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                sid="WriteDataCapture",
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=object_arns,
            )
        )


def _silence_cdk_provider_lint(stack: Stack) -> None:
    """CDK's default-security-group handler repeats a dependency its GetAtt already implies (cfn-lint
    W3005): harmless, and not ours to change, so say so to cfn-lint on that one resource; and tell checkov why
    it is a function like the kit's own custom-resource functions (stacks/handler_code.py)."""
    provider = stack.node.try_find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
    handler = provider.node.try_find_child("Handler") if provider is not None else None
    if isinstance(handler, CfnResource):
        handler.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        checkov_skip(handler, "CKV_AWS_115", NO_RESERVED_CONCURRENCY)
        checkov_skip(handler, "CKV_AWS_116", CDK_PROVIDER_FAILURES)
        checkov_skip(handler, "CKV_AWS_117", OUTSIDE_THE_VPC)


CDK_PROVIDER_FAILURES = (
    "CDK's handler for the VPC's restrictDefaultSecurityGroup: CloudFormation invokes it asynchronously for its one "
    "custom resource and waits for the answer, which CDK's provider entry point sends on every error (FAILED), "
    "failing the deploy in front of the person running it; a dead-letter queue would keep the event and its "
    "pre-signed ResponseURL where nobody watches during a deploy"
)
