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

from stacks.compliance import checkov_skip

STACKS_DIR = Path(__file__).resolve().parent
SHARED = ("__init__.py", "custom_resource.py")

# How long CloudFormation waits for a custom resource's answer: longer than Lambda's 15-minute maximum, so a
# function that dies without answering fails the resource (and the deploy) in minutes, not CloudFormation's hour.
SERVICE_TIMEOUT = Duration.minutes(20)
# Each function serves one custom resource of one stack. CloudFormation sends that resource's requests one at a
# time (Create, Update, Delete; a replacement's Delete comes in the cleanup phase, after the Create answered) and
# waits for each answer or SERVICE_TIMEOUT, which outlasts any invocation; Lambda retries an attempt only after it
# ended. So one invocation at a time holds without reserved concurrency, which the functions do not take: a
# reservation must leave the account's minimum unreserved concurrency, and on a new account (a total of 10 or 50)
# any reservation fails the deploy ("decreases account's UnreservedConcurrentExecution below its minimum value";
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
# Lambda's asynchronous defaults apply: two retries of an attempt that ended in a function error. ``run``
# (handlers/custom_resource.py) answers every exception, so that is only an attempt that died without answering
# (a crash, memory, the timeout); the retry redelivers the same request, which every handler takes (neo_compile
# waits for the job it started, eni_cleanup and zonal_dns are idempotent).


def handler_files(module: str) -> tuple[str, ...]:
    """The files, relative to ``stacks/``, of the function whose handler lives in ``handlers/<module>.py``."""
    return tuple(f"handlers/{name}" for name in (*SHARED, f"{module}.py"))


def handler_code(module: str) -> lambda_.Code:
    """Standard library and boto3 only, so no bundling and no Docker; other handlers stay out of the zip."""
    keep = [f"!{path}" for path in handler_files(module)]
    return lambda_.Code.from_asset(str(STACKS_DIR), exclude=["*", "!handlers", *keep])


def retained_log_group(
    scope: Construct, construct_id: str, *, encryption_key: kms.IKey, retention_days: int
) -> logs.LogGroup:
    """A function's log group: KMS-encrypted, kept after the stack is gone (the record of what it did)."""
    log_group = logs.LogGroup(scope, construct_id, encryption_key=encryption_key, removal_policy=RemovalPolicy.RETAIN)
    # RetentionDays is an enum of names; the setting is a number of days, validated in settings.
    cast(logs.CfnLogGroup, log_group.node.default_child).retention_in_days = retention_days
    return log_group


def write_logs(log_group: logs.ILogGroup) -> iam.PolicyStatement:
    """What a function's role needs to write to its own log group, and nothing else."""
    return iam.PolicyStatement(
        sid="WriteItsLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
    )


OUTSIDE_THE_VPC = (
    "it calls AWS APIs (EC2, CloudFormation, SageMaker) that the model's private subnets need not reach (the kit "
    "gives them only the SageMaker runtime endpoint and an S3 gateway), and inside the VPC it would put Lambda network "
    "interfaces of its own into the subnets, which Lambda releases only some time after the function is deleted: "
    "the stack deletion would wait on them, the very hang the ENI cleanup exists to prevent"
)
NO_RESERVED_CONCURRENCY = (
    "no function-level concurrency limit, so the stack deploys on any account: a reservation must leave the "
    "account's minimum unreserved concurrency, and on a new account (10 or 50 in all) any reservation fails the "
    'deploy ("decreases account\'s UnreservedConcurrentExecution below its minimum value"); one invocation at a '
    "time holds without it: CloudFormation sends a custom resource's requests one at a time, and a probe's runs "
    "end before the next is due and are never retried"
)


def acknowledge_no_reserved_concurrency(function: lambda_.Function) -> None:
    """The NIST and HIPAA packs ask for a function-level concurrency limit; the kit's functions take none."""
    Validations.of(function).acknowledge(
        *(
            Acknowledgment(id=f"{pack}::{pack}-LambdaConcurrency", reason=NO_RESERVED_CONCURRENCY)
            for pack in ("NIST.800.53.R5", "HIPAA.Security")
        )
    )


FAILURES_REACH_CLOUDFORMATION = (
    "CloudFormation invokes it asynchronously for one resource and waits for its answer: every error is answered "
    "FAILED (handlers/custom_resource.py), and an attempt that dies without answering is retried and then fails the "
    "resource at the custom resource's service timeout (20 minutes), which fails the deploy in front of the person "
    "running it, with the traceback in the retained log group; a dead-letter queue or on-failure destination would "
    "duplicate that signal where nobody watches during a deploy, and store the event's pre-signed ResponseURL, "
    "which lets its holder answer for the stack's resource"
)


class CustomResourceFunction(Construct):
    """A function serving one custom resource: its own role and managed policy, and a retained, encrypted
    log group. Outside the VPC, with failures reported to CloudFormation rather than a dead-letter queue; both
    acknowledged here, once, with the reasons above."""

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
        log_group = retained_log_group(self, "Logs", encryption_key=encryption_key, retention_days=log_retention_days)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[role],
            statements=[*statements, write_logs(log_group)],
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
            # No on-failure destination or dead-letter queue: FAILURES_REACH_CLOUDFORMATION.
            # No vpc: OUTSIDE_THE_VPC.
            description=f"RTB inference kit: {description}",
        )
        acknowledge_no_reserved_concurrency(self.function)
        for check_id, reason in (
            ("CKV_AWS_115", NO_RESERVED_CONCURRENCY),
            ("CKV_AWS_116", FAILURES_REACH_CLOUDFORMATION),
            ("CKV_AWS_117", OUTSIDE_THE_VPC),
        ):
            checkov_skip(self.function, check_id, reason)
        # Lambda adds an explicit dependency on the role that its Role property already implies (cfn-lint W3005).
        cast(CfnResource, self.function.node.default_child).add_deletion_override("DependsOn")
        Validations.of(self.function).acknowledge(
            *(
                Acknowledgment(id=f"{pack}::{pack}-LambdaInsideVPC", reason=OUTSIDE_THE_VPC)
                for pack in ("NIST.800.53.R5", "HIPAA.Security")
            ),
            *(
                Acknowledgment(id=f"{pack}::{pack}-LambdaDLQ", reason=FAILURES_REACH_CLOUDFORMATION)
                for pack in ("NIST.800.53.R5", "HIPAA.Security")
            ),
        )
