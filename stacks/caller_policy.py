"""What the ad servers' role attaches to call the endpoint: InvokeEndpoint on this stage's endpoint, and only
through the runtime interface endpoint, so credentials taken off a server cannot call it from elsewhere."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct


class CallerPolicy(Construct):
    """A customer-managed policy for the callers' own role (instance profile or task role); attached to none here."""

    def __init__(
        self, scope: Construct, construct_id: str, *, endpoint_name: str, runtime_endpoint: ec2.IInterfaceVpcEndpoint
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.policy = iam.ManagedPolicy(
            self,
            "Resource",
            description=f"Invoke {endpoint_name} through its PrivateLink endpoint only (attach to the callers' role)",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeThisStagesEndpointThroughPrivateLink",
                    actions=["sagemaker:InvokeEndpoint"],
                    # SageMaker lowercases endpoint names in ARNs.
                    resources=[
                        stack.format_arn(service="sagemaker", resource="endpoint", resource_name=endpoint_name.lower())
                    ],
                    # A request that arrives any other way (the public SageMaker Runtime endpoint, another VPC
                    # endpoint) has another or no aws:SourceVpce, so this grant does not apply to it.
                    conditions={"StringEquals": {"aws:SourceVpce": runtime_endpoint.vpc_endpoint_id}},
                )
            ],
        )
