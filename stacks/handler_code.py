"""The kit's own Lambda-backed custom resources (code in stacks/handlers): one construct for all of them."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from aws_cdk import Acknowledgment, CfnResource, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

STACKS_DIR = Path(__file__).resolve().parent
SHARED = ("__init__.py", "custom_resource.py")


def handler_files(module: str) -> tuple[str, ...]:
    """The files, relative to ``stacks/``, of the function whose handler lives in ``handlers/<module>.py``."""
    return tuple(f"handlers/{name}" for name in (*SHARED, f"{module}.py"))


def handler_code(module: str) -> lambda_.Code:
    """Standard library and boto3 only, so no bundling and no Docker; other handlers stay out of the zip."""
    keep = [f"!{path}" for path in handler_files(module)]
    return lambda_.Code.from_asset(str(STACKS_DIR), exclude=["*", "!handlers", *keep])


class CustomResourceFunction(Construct):
    """A function serving one custom resource: its own role and managed policy, and a retained, encrypted
    log group. Outside the VPC (it calls AWS APIs the isolated subnets cannot reach) and invoked only by
    CloudFormation, synchronously; both acknowledged here, once."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        module: str,
        description: str,
        statements: list[iam.PolicyStatement],
        encryption_key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        # Kept after the stack is gone: the record of what the custom resource did.
        log_group = logs.LogGroup(self, "Logs", encryption_key=encryption_key, removal_policy=RemovalPolicy.RETAIN)
        # RetentionDays is an enum of names; the setting is a number of days, validated in settings.
        cast(logs.CfnLogGroup, log_group.node.default_child).retention_in_days = log_retention_days
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[role],
            statements=[
                *statements,
                iam.PolicyStatement(
                    sid="WriteItsLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                ),
            ],
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler=f"handlers.{module}.handler",
            code=handler_code(module),
            role=role,
            # Lambda's maximum: both handlers wait for AWS (released interfaces, a compile job).
            timeout=Duration.minutes(15),
            memory_size=256,
            log_group=log_group,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            logging_format=lambda_.LoggingFormat.JSON,
            # One stack operation at a time needs one instance; a cap keeps a loop from running away.
            reserved_concurrent_executions=2,
            description=f"RTB inference kit: {description}",
        )
        # Lambda adds an explicit dependency on the role that its Role property already implies (cfn-lint W3005).
        cast(CfnResource, self.function.node.default_child).add_deletion_override("DependsOn")
        Validations.of(self.function).acknowledge(
            *(
                Acknowledgment(
                    id=f"{pack}::{pack}-LambdaInsideVPC",
                    reason="it calls AWS APIs (EC2, CloudFormation, SageMaker) that the kit's isolated subnets cannot "
                    "reach, and inside the VPC it would add network interfaces of its own to the subnets",
                )
                for pack in ("NIST.800.53.R5", "HIPAA.Security")
            ),
            *(
                Acknowledgment(
                    id=f"{pack}::{pack}-LambdaDLQ",
                    reason="CloudFormation invokes it synchronously through the custom resource and shows a failure "
                    "in the stack events; there is no asynchronous event to dead-letter",
                )
                for pack in ("NIST.800.53.R5", "HIPAA.Security")
            ),
        )
