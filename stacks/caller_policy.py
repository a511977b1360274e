"""What the ad servers' role attaches to call the endpoint: InvokeEndpoint on this stage's endpoints (every shard),
and only through the runtime interface endpoint, so credentials taken off a server cannot call them from elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct


class CallerPolicy(Construct):
    """A customer-managed policy for the callers' own role (instance profile or task role); attached to none here."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_names: Sequence[str],
        runtime_endpoint: ec2.IInterfaceVpcEndpoint,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        first, others = endpoint_names[0], len(endpoint_names) - 1
        shards = f" and its {others} other shard{'s' if others > 1 else ''}" if others else ""
        through = f"through {'their' if others else 'its'} PrivateLink endpoint only"
        self.policy = iam.ManagedPolicy(
            self,
            "Resource",
            description=f"Invoke {first}{shards} {through} (attach to the callers' role)",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeThisStagesEndpointThroughPrivateLink",
                    actions=["sagemaker:InvokeEndpoint"],
                    # SageMaker lowercases endpoint names in ARNs.
                    resources=[
                        stack.format_arn(service="sagemaker", resource="endpoint", resource_name=name.lower())
                        for name in endpoint_names
                    ],
                    # A request that arrives any other way (the public SageMaker Runtime endpoint, another VPC
                    # endpoint) has another or no aws:SourceVpce, so this grant does not apply to it.
                    conditions={"StringEquals": {"aws:SourceVpce": runtime_endpoint.vpc_endpoint_id}},
                )
            ],
        )
