"""Each client AZ's own way to SageMaker Runtime: the runtime interface endpoint's zonal DNS names.

Private DNS answers with every AZ's interface of the endpoint; a client that must stay in its AZ connects to its
AZ's zonal name instead (PrivateLink guide, "DNS hostnames":
https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html). CloudFormation's
``DnsEntries`` attribute is a list in an undocumented order, so a custom resource (stacks/handlers/zonal_dns.py)
reads the endpoint's names and picks each AZ's by the AZ name it carries. It works the same for an endpoint this
stack creates and for an existing one (``runtime_endpoint`` in the settings).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CustomResource, Token, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.handler_code import SERVICE_TIMEOUT, CustomResourceFunction
from stacks.handlers.zonal_dns import az_attribute

RESOURCE_TYPE = "Custom::RuntimeZonalDnsNames"


class RuntimeZonalDnsNames(Construct):
    """The zonal DNS name of ``vpc_endpoint_id`` in each of ``availability_zones``, for outputs and the probes."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_endpoint_id: str,
        availability_zones: list[str],
        encryption_key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        handler = CustomResourceFunction(
            self,
            "Handler",
            module="zonal_dns",
            description="reads the SageMaker Runtime interface endpoint's zonal DNS names by AZ",
            encryption_key=encryption_key,
            log_retention_days=log_retention_days,
            statements=[
                iam.PolicyStatement(
                    sid="ReadTheRuntimeEndpointsDnsNames", actions=["ec2:DescribeVpcEndpoints"], resources=["*"]
                )
            ],
        )
        Validations.of(handler.policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason="ec2:DescribeVpcEndpoints has no resource-level permissions (IAM service authorization "
                "reference); the handler describes only the endpoint id in its properties",
            )
        )
        self._known_azs = not any(Token.is_unresolved(az) for az in availability_zones)
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=handler.function.function_arn,
            resource_type=RESOURCE_TYPE,
            properties={"VpcEndpointId": vpc_endpoint_id, "AvailabilityZones": availability_zones},
            service_timeout=SERVICE_TIMEOUT,
        )
        # The function's permission is in place before CloudFormation calls it.
        self.resource.node.add_dependency(handler.policy)
        self.function = handler.function

    @property
    def json(self) -> str:
        """``{"<az>": "<zonal name>", ...}``: what rtb_client.runtime_endpoint_url reads."""
        return self.resource.get_att_string("Json")

    @property
    def regional(self) -> str:
        """The endpoint-specific regional name (every AZ's interface, like private DNS)."""
        return self.resource.get_att_string("Regional")

    def name_for(self, az: str) -> str:
        """One AZ's zonal name; only for AZs known at synth (an environment-agnostic stage's are not)."""
        if not self._known_azs:
            raise ValueError("the client AZs are not known at synth; read the Json attribute instead")
        return self.resource.get_att_string(az_attribute(az))
