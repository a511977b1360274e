"""The inferentia profile's compile step: a SageMaker Neo compilation job that runs during ``cdk deploy``.

Neo cannot compile XGBoost for Inferentia, so the artifact is the traced PyTorch model
(scripts/build_inf1_artifact.py). A custom resource (stacks/handlers/neo_compile.py) compiles it for
``ml_inf1`` and waits; the model serves the compiled archive it reports. A new traced artifact means new
properties, so a new job and a new model, rolled out like any model change.
"""

from __future__ import annotations

import json
from typing import Any, cast

from aws_cdk import Acknowledgment, ArnFormat, CustomResource, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from stacks.buckets import private_bucket
from stacks.compliance import checkov_skip, nag_arn
from stacks.handler_code import SERVICE_TIMEOUT, CustomResourceFunction

RESOURCE_TYPE = "Custom::NeoCompilation"
JOB_NAME_PREFIX = "rtb-inf1"
OUTPUT_PREFIX = "compiled"
# The compile of a small traced model takes minutes; the handler stops the job before Lambda's 15.
MAX_RUNTIME_SECONDS = 780


class NeoCompilation(Construct):
    """Compiles ``traced`` for ml_inf1 into a stack-owned, encrypted bucket; ``model_data_url`` is the result."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        traced: s3_assets.Asset,
        neo: dict[str, Any],
        encryption_key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Kept: the endpoint may still serve an older compiled model while the stack is deleted.
        self.bucket = private_bucket(self, "Output", encryption_key=encryption_key)
        derived = (
            "holds only compiled models that Neo derives from the traced model asset (itself kept in the CDK "
            "assets bucket); the compile jobs that write them are recorded by CloudTrail"
        )
        Validations.of(self.bucket).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-S1", reason=derived),
            *(
                Acknowledgment(id=f"{pack}::{pack}-{rule}", reason=derived)
                for pack in ("NIST.800.53.R5", "HIPAA.Security")
                for rule in ("S3BucketLoggingEnabled", "S3BucketReplicationEnabled")
            ),
        )
        checkov_skip(self.bucket, "CKV_AWS_18", derived)
        self.compiled_objects = self.bucket.arn_for_objects(f"{OUTPUT_PREFIX}/*")

        # The role Neo's job runs with: read the traced model, write the compiled one.
        neo_role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com",
                # Confused-deputy guard SageMaker documents for Neo: only this kit's compile jobs.
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="sagemaker", resource="compilation-job", resource_name=f"{JOB_NAME_PREFIX}-*"
                        )
                    }
                },
            ),
            description="SageMaker Neo compilation of the traced traffic filter for ml_inf1",
        )
        job_logs = "/aws/sagemaker/CompilationJobs"
        job_policy = iam.ManagedPolicy(
            self,
            "JobPolicy",
            roles=[neo_role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadTracedModel",
                    actions=["s3:GetObject"],
                    resources=[traced.bucket.arn_for_objects(traced.s3_object_key)],
                ),
                iam.PolicyStatement(
                    sid="WriteCompiledModel", actions=["s3:PutObject"], resources=[self.compiled_objects]
                ),
                iam.PolicyStatement(
                    sid="EncryptCompiledModel",
                    actions=["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[encryption_key.key_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteJobLogs",
                    actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[
                        stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name=f"{job_logs}:*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                ),
            ],
        )
        Validations.of(job_policy).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{_logical_id(self.bucket)}.Arn>/{OUTPUT_PREFIX}/*]",
                reason="Neo names the compiled archive under a folder per job, named when the job starts; limited "
                "to the compile prefix of the stack's own bucket",
            ),
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{nag_arn(stack, 'logs', f'log-group:{job_logs}:*')}]",
                reason="Neo writes one log stream per job, named by the job; limited to SageMaker's compilation "
                "job log group of this account and region",
            ),
        )

        job_names = f"compilation-job/{JOB_NAME_PREFIX}-*"
        jobs = stack.format_arn(service="sagemaker", resource="compilation-job", resource_name=f"{JOB_NAME_PREFIX}-*")
        # Outside the VPC (handler_code.OUTSIDE_THE_VPC): it calls the SageMaker API, which the model's subnets
        # need not reach. One invocation at a time (see handler_code); a redelivered request waits
        # for the job it already started.
        handler = CustomResourceFunction(
            self,
            "Handler",
            module="neo_compile",
            description="compiles the traced traffic filter for ml_inf1 with SageMaker Neo and waits",
            encryption_key=encryption_key,
            log_retention_days=log_retention_days,
            statements=[
                iam.PolicyStatement(
                    sid="RunCompilationJobs",
                    actions=[
                        "sagemaker:CreateCompilationJob",
                        "sagemaker:DescribeCompilationJob",
                        "sagemaker:StopCompilationJob",
                    ],
                    resources=[jobs],
                ),
                iam.PolicyStatement(
                    sid="PassTheJobRole",
                    actions=["iam:PassRole"],
                    resources=[neo_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
            ],
        )
        Validations.of(handler.policy).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{nag_arn(stack, 'sagemaker', job_names)}]",
                reason="each compile gets a new job name (prefix, digest of the inputs, request id) chosen at "
                "deploy time; limited to this kit's job-name prefix",
            ),
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=handler.function.function_arn,
            resource_type=RESOURCE_TYPE,
            properties={
                "RoleArn": neo_role.role_arn,
                "InputS3Uri": traced.s3_object_url,
                "OutputS3Uri": self.bucket.s3_url_for_object(OUTPUT_PREFIX),
                "Framework": neo["framework"],
                "FrameworkVersion": neo["framework_version"],
                "DataInputConfig": json.dumps(neo["data_input_config"], separators=(",", ":")),
                "TargetDevice": neo["target_device"],
                "CompilerOptions": neo["compiler_options"],
                "JobNamePrefix": JOB_NAME_PREFIX,
                "MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS,
            },
            service_timeout=SERVICE_TIMEOUT,
        )
        # Both roles' permissions are in place before the job starts.
        self.resource.node.add_dependency(handler.policy, job_policy)
        self.model_data_url = self.resource.get_att_string("ModelArtifact")

    def acknowledge_reads(self, policy: iam.ManagedPolicy) -> None:
        """The execution role reads the compiled archive, whose key the job names (``compiled_objects``)."""
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{_logical_id(self.bucket)}.Arn>/{OUTPUT_PREFIX}/*]",
                reason="the compiled archive's key holds the job name, chosen during the deploy; limited to reads "
                "under the compile prefix of the stack's own bucket",
            )
        )


def _logical_id(bucket: s3.Bucket) -> str:
    return Stack.of(bucket).get_logical_id(cast(s3.CfnBucket, bucket.node.default_child))
