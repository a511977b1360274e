"""The PrivateLink path from the clients to SageMaker Runtime, and who may use it."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.settings import ExistingRuntimeEndpoint

HTTPS = ec2.Port.tcp(443)


class RuntimeVpcEndpoint(Construct):
    """Interface endpoint for SageMaker Runtime with private DNS, reachable on 443 from clients only; or an
    existing one of the VPC (a VPC holds one with private DNS per service), which the clients are admitted to."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        client_cidrs: tuple[str, ...],
        existing: ExistingRuntimeEndpoint | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # Ad servers join this group; it is the only group the endpoint admits.
        self.client_security_group = ec2.SecurityGroup(
            self,
            "ClientSecurityGroup",
            vpc=vpc,
            description="Clients of the SageMaker Runtime endpoint (attach to ad servers)",
            allow_all_outbound=False,
        )
        self.security_group: ec2.ISecurityGroup
        if existing is None:
            self.security_group = ec2.SecurityGroup(
                self,
                "SecurityGroup",
                vpc=vpc,
                description="SageMaker Runtime interface endpoint: HTTPS from clients only",
                allow_all_outbound=False,
            )
        else:
            # The owner's group: the rules below are resources of this stack (AWS::EC2::SecurityGroupIngress),
            # deleted with it; the group and its other rules stay as they are.
            self.security_group = ec2.SecurityGroup.from_security_group_id(
                self, "SecurityGroup", existing.security_group_id, allow_all_outbound=False, mutable=True
            )
        self.security_group.add_ingress_rule(self.client_security_group, HTTPS, "HTTPS from the client group")
        self.client_security_group.add_egress_rule(self.security_group, HTTPS, "HTTPS to SageMaker Runtime")
        for cidr in client_cidrs:
            peer = ec2.Peer.ipv6(cidr) if ":" in cidr else ec2.Peer.ipv4(cidr)
            self.security_group.add_ingress_rule(peer, HTTPS, f"HTTPS from client network {cidr}")

        self.endpoint: ec2.IInterfaceVpcEndpoint
        if existing is not None:
            # Its endpoint policy is its owner's too: it must allow sagemaker:InvokeEndpoint on this stage's
            # endpoint (docs/settings.md, "An existing runtime endpoint"; make preflight reads the endpoint).
            self.endpoint = ec2.InterfaceVpcEndpoint.from_interface_vpc_endpoint_attributes(
                self,
                "Endpoint",
                vpc_endpoint_id=existing.vpc_endpoint_id,
                port=443,
                security_groups=[self.security_group],
            )
            return
        self.endpoint = endpoint = ec2.InterfaceVpcEndpoint(
            self,
            "Endpoint",
            vpc=vpc,
            service=ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
            subnets=subnets,
            private_dns_enabled=True,
            security_groups=[self.security_group],
            # open=True would admit the whole VPC CIDR; only the client group and networks may call.
            open=False,
        )
        stack = Stack.of(self)
        # Through this endpoint, only this account's SageMaker endpoints can be invoked.
        endpoint.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeThisAccountsEndpoints",
                principals=[iam.AnyPrincipal()],
                actions=["sagemaker:InvokeEndpoint"],
                resources=[stack.format_arn(service="sagemaker", resource="endpoint", resource_name="*")],
                conditions={"StringEquals": {"aws:PrincipalAccount": stack.account}},
            )
        )
