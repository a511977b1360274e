"""Clean teardown: remove the network interfaces SageMaker leaves behind before their subnets go.

CloudFormation deletes in reverse dependency order. The cleanup resource depends on the model's
security group, subnets and execution role, and the models depend on it, so its Delete runs after the
endpoint and models are gone and before the group, the subnets and the role SageMaker uses to release
its interfaces (stacks/handlers/eni_cleanup.py).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CustomResource, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct, IDependable

from stacks.compliance import nag_arn
from stacks.handler_code import SERVICE_TIMEOUT, CustomResourceFunction

RESOURCE_TYPE = "Custom::SageMakerEniCleanup"
HANDLER = "handlers.eni_cleanup.handler"


class NetworkInterfaceCleanup(Construct):
    """A Lambda-backed custom resource that, on stack deletion, waits for and deletes SageMaker's ENIs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        encryption_key: kms.IKey,
        log_retention_days: int,
        delete_after: list[IDependable],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        interfaces = stack.format_arn(service="ec2", resource="network-interface", resource_name="*")
        # Outside the VPC (handler_code.OUTSIDE_THE_VPC): inside, it would add Lambda's own interfaces to the
        # subnets whose deletion it exists to unblock. One invocation at a time: see handler_code.
        handler = CustomResourceFunction(
            self,
            "Handler",
            module="eni_cleanup",
            description="deletes the network interfaces SageMaker left in the model's security group",
            encryption_key=encryption_key,
            log_retention_days=log_retention_days,
            statements=[
                iam.PolicyStatement(sid="FindInterfaces", actions=["ec2:DescribeNetworkInterfaces"], resources=["*"]),
                # An existing interface carries ec2:Vpc: the action table lists it for DeleteNetworkInterface's
                # network-interface row (unlike CreateNetworkInterface's, see stacks/model_endpoint.py).
                iam.PolicyStatement(
                    sid="DeleteInterfacesInThisVpc",
                    actions=["ec2:DeleteNetworkInterface"],
                    resources=[interfaces],
                    conditions={
                        "ArnEquals": {
                            "ec2:Vpc": stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id)
                        }
                    },
                ),
                # Deletes only while the stack itself is being deleted (not on an update's cleanup).
                iam.PolicyStatement(
                    sid="ReadThisStacksStatus", actions=["cloudformation:DescribeStacks"], resources=[stack.stack_id]
                ),
            ],
        )
        Validations.of(handler.policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason="ec2:DescribeNetworkInterfaces has no resource-level permissions (IAM service authorization "
                "reference); the handler filters by the model's security group",
            ),
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{nag_arn(stack, 'ec2', 'network-interface/*')}]",
                reason="SageMaker creates the interfaces outside the stack, so their ids are unknown; deletion is "
                "limited to this VPC by the ec2:Vpc condition",
            ),
        )
        self.function = handler.function
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.function.function_arn,
            resource_type=RESOURCE_TYPE,
            properties={"SecurityGroupIds": [security_group.security_group_id], "VpcId": vpc.vpc_id},
            service_timeout=SERVICE_TIMEOUT,
        )
        # The function's permissions are in place before CloudFormation calls it (and stay until the last
        # call: the Delete). The security group is a dependency already, through the properties.
        self.resource.node.add_dependency(handler.policy, *delete_after)
