"""The kit's S3 buckets: private, TLS-only, versioned, and kept when the stack is deleted."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct


def private_bucket(scope: Construct, construct_id: str, *, encryption_key: kms.IKey | None, **extra: Any) -> s3.Bucket:
    """Encrypted with ``encryption_key`` (S3-managed keys without one), TLS only, versioned, no public
    access, no ACLs, retained: what it holds (captured requests, compiled models, logs) outlives the stack."""
    encryption = (
        {"encryption": s3.BucketEncryption.KMS, "encryption_key": encryption_key, "bucket_key_enabled": True}
        if encryption_key is not None
        else {"encryption": s3.BucketEncryption.S3_MANAGED}
    )
    return s3.Bucket(
        scope,
        construct_id,
        enforce_ssl=True,
        versioned=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.RETAIN,
        **encryption,
        **extra,
    )
