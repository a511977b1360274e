"""Model Monitor data capture: where SageMaker writes copies of requests and responses.

The captured rows are production data: encrypted with the stack's key, TLS only, versioned, kept
when the stack is destroyed, and expired by a lifecycle rule rather than by hand.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.buckets import private_bucket
from stacks.compliance import checkov_skip
from stacks.settings import DataCaptureSettings

PREFIX = "datacapture"
_REPLICATION_REASON = (
    "captured requests are a sample for Model Monitor, kept for a limited time in the endpoint's own "
    "region; a cross-region copy of production data is a decision for the owner, not a kit default"
)


class CaptureBucket(Construct):
    """The capture bucket, its access-log bucket, and the endpoint config's DataCaptureConfig."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DataCaptureSettings, encryption_key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self._settings = settings
        self._key = encryption_key
        # S3 server access logs cannot be delivered to a bucket encrypted with a KMS key (S3 docs):
        # this bucket uses S3-managed keys and holds only access logs.
        self.access_logs = private_bucket(
            self,
            "AccessLogs",
            encryption_key=None,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(settings.retention_days),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
        )
        Validations.of(self.access_logs).acknowledge(
            *(
                Acknowledgment(
                    id=f"{pack}::{pack}-S3DefaultEncryptionKMS",
                    reason="S3 server access logging delivers only to buckets with S3-managed encryption (SSE-S3)",
                )
                for pack in ("NIST.800.53.R5", "HIPAA.Security")
            ),
            *(
                Acknowledgment(id=f"{pack}::{pack}-S3BucketReplicationEnabled", reason=_REPLICATION_REASON)
                for pack in ("NIST.800.53.R5", "HIPAA.Security")
            ),
        )
        checkov_skip(
            self.access_logs,
            "CKV_AWS_18",
            "this is the capture bucket's server-access-log destination; logging it into itself would log its own "
            "log deliveries without end, and a separate bucket for its logs would need one in turn (S3 user guide, "
            "Logging requests with server access logging)",
        )
        self.bucket = private_bucket(
            self,
            "Bucket",
            encryption_key=encryption_key,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="capture-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    prefix=f"{PREFIX}/",
                    expiration=Duration.days(settings.retention_days),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
        )
        Validations.of(self.bucket).acknowledge(
            *(
                Acknowledgment(id=f"{pack}::{pack}-S3BucketReplicationEnabled", reason=_REPLICATION_REASON)
                for pack in ("NIST.800.53.R5", "HIPAA.Security")
            ),
        )

    @property
    def object_arns(self) -> str:
        return self.bucket.arn_for_objects(f"{PREFIX}/*")

    def write_statements(self) -> list[iam.PolicyStatement]:
        """For the model's execution role, with which SageMaker writes the capture files."""
        return [
            iam.PolicyStatement(sid="WriteDataCapture", actions=["s3:PutObject"], resources=[self.object_arns]),
            iam.PolicyStatement(
                sid="EncryptDataCapture",
                actions=["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"],
                resources=[self._key.key_arn],
            ),
        ]

    def acknowledge_writes(self, policy: iam.ManagedPolicy) -> None:
        """The prefix wildcard in ``write_statements``, acknowledged on the policy that holds it."""
        bucket = Stack.of(self).get_logical_id(cast(s3.CfnBucket, self.bucket.node.default_child))
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{bucket}.Arn>/{PREFIX}/*]",
                reason="SageMaker names each capture file by endpoint, variant and hour when it writes it; "
                "limited to PutObject under the capture prefix of the stack's own capture bucket",
            )
        )

    def config(self, *, content_type: str) -> sagemaker.CfnEndpointConfig.DataCaptureConfigProperty:
        """Capture requests and responses; CSV bodies are recorded as text, JSON ones as JSON."""
        csv = [content_type] if content_type == "text/csv" else None
        json_types = None if csv else [content_type]
        return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
            enable_capture=True,
            initial_sampling_percentage=self._settings.sampling_percent,
            destination_s3_uri=self.bucket.s3_url_for_object(PREFIX),
            kms_key_id=self._key.key_arn,
            capture_options=[
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
            ],
            capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                csv_content_types=csv, json_content_types=json_types
            ),
        )
