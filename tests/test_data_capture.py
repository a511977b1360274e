"""Model Monitor data capture: off by default; when on, a retained, KMS-encrypted, TLS-only capture bucket."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker

from stacks.data_capture import CaptureBucket
from stacks.settings import DataCaptureSettings

from .conftest import Synthesized, cdk_context

TLS_ONLY = {"Bool": {"aws:SecureTransport": "false"}}


@pytest.fixture(scope="module")
def prod(synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    """The stage with capture on (2%)."""
    return synth_stage("prod")


def _buckets(stage: Synthesized) -> tuple[str, str]:
    """(capture bucket, access-log bucket): the capture bucket is the one that logs to the other."""
    buckets = stage.of_type("AWS::S3::Bucket")
    (capture,) = [key for key, bucket in buckets.items() if "LoggingConfiguration" in bucket["Properties"]]
    logs = buckets[capture]["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert set(buckets) == {capture, logs}
    return capture, str(logs)


def _bucket_policy(stage: Synthesized, bucket_id: str) -> list[dict[str, Any]]:
    (policy,) = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in stage.of_type("AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    statements: list[dict[str, Any]] = policy
    return statements


def _tls_only_statement(bucket_id: str) -> dict[str, Any]:
    arn = {"Fn::GetAtt": [bucket_id, "Arn"]}
    return {
        "Action": "s3:*",
        "Condition": TLS_ONLY,
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": [arn, {"Fn::Join": ["", [arn, "/*"]]}],
    }


def _capture_objects(bucket_id: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/datacapture/*"]]}


def _capture_config(stage: Synthesized) -> dict[str, Any]:
    _, config = stage.one("AWS::SageMaker::EndpointConfig")
    capture: dict[str, Any] = config["Properties"]["DataCaptureConfig"]
    return capture


def _execution_statements(stage: Synthesized) -> list[dict[str, Any]]:
    (policy,) = [
        policy
        for policy in stage.of_type("AWS::IAM::ManagedPolicy").values()
        if "ReadModelArtifact" in json.dumps(policy)
    ]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return sorted(action) if isinstance(action, list) else [action]


def test_capture_is_off_by_default_with_no_bucket_and_no_config(dev: Synthesized) -> None:
    assert dev.settings.data_capture.enabled is False
    assert dev.of_type("AWS::S3::Bucket") == {}
    assert dev.of_type("AWS::S3::BucketPolicy") == {}
    _, config = dev.one("AWS::SageMaker::EndpointConfig")
    assert "DataCaptureConfig" not in config["Properties"]
    assert "WriteDataCapture" not in json.dumps(dev.template_json)
    assert "EncryptDataCapture" not in json.dumps(dev.template_json)


def test_capture_resources_exist_exactly_when_capture_is_on(any_stage: Synthesized) -> None:
    enabled = any_stage.settings.data_capture.enabled
    for config in any_stage.of_type("AWS::SageMaker::EndpointConfig").values():  # every shard's
        assert ("DataCaptureConfig" in config["Properties"]) is enabled
    capture_buckets = [key for key in any_stage.of_type("AWS::S3::Bucket") if key.startswith("InferenceDataCapture")]
    assert len(capture_buckets) == (2 if enabled else 0)  # the capture bucket and its access-log bucket


def test_capture_bucket_is_encrypted_with_the_stack_key_and_a_bucket_key(prod: Synthesized) -> None:
    key_id, _ = prod.one("AWS::KMS::Key")
    capture, _ = _buckets(prod)
    assert prod.resources[capture]["Properties"]["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {
                "BucketKeyEnabled": True,
                "ServerSideEncryptionByDefault": {
                    "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
                    "SSEAlgorithm": "aws:kms",
                },
            }
        ]
    }


def test_both_buckets_are_versioned_private_and_retained(prod: Synthesized) -> None:
    for bucket_id in _buckets(prod):
        bucket = prod.resources[bucket_id]
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}, bucket_id
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, bucket_id
        assert bucket["Properties"]["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        # Captured production data outlives the stack; deleting it is the owner's decision.
        assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain"), bucket_id


def test_capture_bucket_accepts_tls_only(prod: Synthesized) -> None:
    capture, _ = _buckets(prod)
    assert _bucket_policy(prod, capture) == [_tls_only_statement(capture)]


def test_captured_objects_and_their_old_versions_expire(prod: Synthesized) -> None:
    capture, _ = _buckets(prod)
    retention = prod.settings.data_capture.retention_days
    assert prod.resources[capture]["Properties"]["LifecycleConfiguration"] == {
        "Rules": [
            {
                "ExpirationInDays": retention,
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                "Prefix": "datacapture/",
                "Status": "Enabled",
            }
        ]
    }


def test_capture_bucket_logs_access_to_an_sse_s3_tls_only_bucket(prod: Synthesized) -> None:
    """S3 delivers server access logs only to a bucket with S3-managed keys, so that one is SSE-S3."""
    capture, logs = _buckets(prod)
    assert prod.resources[capture]["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": logs},
        "LogFilePrefix": "capture-bucket/",
    }
    assert prod.resources[logs]["Properties"]["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    tls_only, *others = _bucket_policy(prod, logs)
    assert tls_only == _tls_only_statement(logs)
    # The rest lets the S3 logging service write this account's logs of the capture bucket, nothing more.
    assert [(s["Effect"], s["Principal"], s["Action"]) for s in others] == [
        ("Allow", {"Service": "logging.s3.amazonaws.com"}, "s3:PutObject")
    ]
    assert others[0]["Condition"]["ArnLike"] == {"aws:SourceArn": {"Fn::GetAtt": [capture, "Arn"]}}


def test_endpoint_captures_requests_and_responses_into_the_bucket(prod: Synthesized) -> None:
    key_id, _ = prod.one("AWS::KMS::Key")
    capture, _ = _buckets(prod)
    assert prod.settings.data_capture.sampling_percent == 2  # not the default (5): the setting reaches the config
    assert _capture_config(prod) == {
        "EnableCapture": True,
        "InitialSamplingPercentage": prod.settings.data_capture.sampling_percent,
        "DestinationS3Uri": {"Fn::Join": ["", ["s3://", {"Ref": capture}, "/datacapture"]]},
        "KmsKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
    }


def test_another_sampling_percent_changes_only_the_sampling_percent(
    prod: Synthesized, dev_options: Synthesized
) -> None:
    """dev with capture at 10%: the same capture configuration as prod's, CSV for the cpu profile."""
    assert dev_options.settings.profile == "cpu"
    assert dev_options.settings.data_capture.sampling_percent == 10
    assert _capture_config(dev_options) == _capture_config(prod) | {"InitialSamplingPercentage": 10}
    assert _buckets(dev_options) == _buckets(prod)  # stable logical ids of the retained buckets


def test_json_profiles_record_bodies_as_json() -> None:
    """The gpu and inferentia containers speak application/json: recorded as JSON, not as CSV."""
    # cdk.json's feature flags: without them CDK grants log delivery by ACL, which the bucket forbids.
    stack = Stack(App(context=cdk_context()), "Probe")
    capture = CaptureBucket(
        stack, "DataCapture", settings=DataCaptureSettings(enabled=True), encryption_key=kms.Key(stack, "Key")
    )
    header = capture.config(content_type="application/json").capture_content_type_header
    assert isinstance(header, sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty)
    assert header.json_content_types == ["application/json"]
    assert header.csv_content_types is None


def test_execution_role_writes_only_capture_objects_with_the_stack_key(prod: Synthesized) -> None:
    key_id, _ = prod.one("AWS::KMS::Key")
    capture, logs = _buckets(prod)
    statements = _execution_statements(prod)
    by_sid = {statement["Sid"]: statement for statement in statements}
    assert _actions(by_sid["WriteDataCapture"]) == ["s3:PutObject"]
    assert by_sid["WriteDataCapture"]["Resource"] == _capture_objects(capture)
    assert "Condition" not in by_sid["WriteDataCapture"]
    assert _actions(by_sid["EncryptDataCapture"]) == ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    assert by_sid["EncryptDataCapture"]["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    # No other statement writes to S3 or names either capture bucket.
    writers = [s["Sid"] for s in statements if any(a.startswith("s3:Put") for a in _actions(s))]
    assert writers == ["WriteDataCapture"]
    naming = [s["Sid"] for s in statements if capture in json.dumps(s) or logs in json.dumps(s)]
    assert naming == ["WriteDataCapture"]


def test_s3_gateway_endpoint_admits_writes_of_capture_objects_only(prod: Synthesized) -> None:
    capture, _ = _buckets(prod)
    (gateway,) = [
        endpoint["Properties"]
        for endpoint in prod.of_type("AWS::EC2::VPCEndpoint").values()
        if endpoint["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    statements = gateway["PolicyDocument"]["Statement"]
    writes = [statement for statement in statements if "s3:PutObject" in _actions(statement)]
    assert writes == [
        {
            "Action": "s3:PutObject",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Resource": _capture_objects(capture),
            "Sid": "WriteDataCapture",
        }
    ]
    assert sorted(statement["Sid"] for statement in statements) == ["ReadModelArtifact", "WriteDataCapture"]
