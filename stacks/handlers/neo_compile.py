"""Compile the traced model with a SageMaker Neo compilation job while the stack deploys.

Create and Update start a compilation job and wait for it in the same invocation. The job name is
``<JobNamePrefix>-<digest of the properties>-<digest of the request id>``: the same properties give the
same middle part, and every CloudFormation request (an update, a retry after a failed deploy) gets a new
name, since a name cannot be used twice while its job record exists. A second delivery of the *same*
request (Lambda's own retry) finds its job already there and waits for it instead of failing. Each job
writes under ``OutputS3Uri/<job name>/``, so no job overwrites an artifact another model serves.

- COMPLETED: the physical id is the job name; attributes ``ModelArtifact`` (the compiled ``model.tar.gz``),
  ``JobName`` and, when SageMaker reports it, ``InferenceImage`` (the image Neo built the artifact for).
- FAILED or STOPPED: the request fails with the job's FailureReason.
- Still running when the Lambda is about to time out (its remaining time less ``MARGIN_SECONDS``): the job
  is stopped and the request fails with a timeout error, so no job keeps compiling for a stack that gave up.
- An Update whose current job already compiled the same properties (the rollback after a failed compile)
  keeps that job instead of compiling again.

Delete does nothing. A compilation job is a finished record, not a running resource; DeleteCompilationJob
would remove only that record (the compiled artifact in S3 stays, by the API's own definition), and the
record is the provenance of the artifact the endpoint serves. On an update CloudFormation deletes the old
physical id after the new model is in place; after a failed Create the physical id is not a job at all.

Runs in Lambda (standard library and boto3 only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .custom_resource import Event, Opener, Outcome, remaining_seconds, run

LOG = logging.getLogger(__name__)

# Kept back from Lambda's remaining time to stop the job and answer CloudFormation (a 30 s PUT at most).
MARGIN_SECONDS = 60.0
POLL_SECONDS = 15.0
DEFAULT_MAX_RUNTIME_SECONDS = 900
DEFAULT_JOB_NAME_PREFIX = "neo"
# CompilationJobName: 1-63 characters, [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}.
MAX_JOB_NAME = 63
PROPERTIES_DIGEST_CHARS = 12
REQUEST_DIGEST_CHARS = 8
MAX_PREFIX = MAX_JOB_NAME - PROPERTIES_DIGEST_CHARS - REQUEST_DIGEST_CHARS - 2

COMPLETED = "COMPLETED"
FAILED_STATUSES = frozenset({"FAILED", "STOPPED"})
# InputConfig.Framework values of the SageMaker API.
FRAMEWORKS = frozenset({"TENSORFLOW", "KERAS", "MXNET", "ONNX", "PYTORCH", "XGBOOST", "TFLITE", "DARKNET", "SKLEARN"})
# Neo's table "Supported Instance Types and Frameworks", AWS Inferentia: PyTorch 1.7, 1.8 or 1.9.
INFERENTIA_PYTORCH_VERSIONS = ("1.7", "1.8", "1.9")

REQUIRED = ("RoleArn", "InputS3Uri", "OutputS3Uri", "Framework", "FrameworkVersion", "DataInputConfig", "TargetDevice")
OPTIONAL = ("JobNamePrefix", "MaxRuntimeInSeconds", "CompilerOptions")
# CloudFormation adds ServiceToken to every custom resource's properties.
IGNORED = ("ServiceToken",)

_ROLE_ARN = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-/]+")
_S3_BUCKET = r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]"
_S3_OBJECT = re.compile(_S3_BUCKET + r"/\S+")
_S3_PREFIX = re.compile(_S3_BUCKET + r"(/\S*)?")
_FRAMEWORK_VERSION = re.compile(r"[0-9]\.[A-Za-z0-9.]+")
_TARGET_DEVICE = re.compile(r"[a-z][a-z0-9_]*")
_NAME_PART = re.compile(r"[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*")


class SageMakerClient(Protocol):
    def create_compilation_job(self, **kwargs: Any) -> Any: ...

    def describe_compilation_job(self, **kwargs: Any) -> Any: ...

    def stop_compilation_job(self, **kwargs: Any) -> Any: ...


class PropertyError(ValueError):
    """A resource property is missing or not valid; the message names it, its value and what is allowed."""


class CompilationFailedError(RuntimeError):
    """The compilation job ended FAILED or STOPPED."""


class CompilationTimeoutError(RuntimeError):
    """The job was still running when the Lambda had to answer; it has been asked to stop."""


@dataclass(frozen=True)
class NeoProperties:
    """The validated ResourceProperties of the custom resource."""

    role_arn: str
    input_s3_uri: str
    output_s3_uri: str
    framework: str
    framework_version: str
    data_input_config: str
    target_device: str
    job_name_prefix: str = DEFAULT_JOB_NAME_PREFIX
    max_runtime_seconds: int = DEFAULT_MAX_RUNTIME_SECONDS
    compiler_options: str | None = None


def _text(properties: Mapping[str, Any], name: str) -> str:
    value = properties.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PropertyError(f"{name} is required and must be a non-empty string, got {value!r}")
    return value.strip()


def _check(name: str, value: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not pattern.fullmatch(value):
        raise PropertyError(f"{name} {value!r} is not valid: expected {allowed}")
    return value


def _shape(name: str, shape: Any) -> None:
    if not (isinstance(shape, list) and shape and all(type(d) is int and d > 0 for d in shape)):
        raise PropertyError(f"{name} has a shape {shape!r} that is not a non-empty list of positive integers")


def _data_input_config(value: str) -> str:
    """Neo's input shapes: {"name": [dims]} (any framework) or [[dims], ...] (PyTorch's list form)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise PropertyError(f"DataInputConfig {value!r} is not JSON ({error.msg})") from error
    if isinstance(parsed, dict) and parsed:
        for shape in parsed.values():
            _shape("DataInputConfig", shape)
    elif isinstance(parsed, list) and parsed:
        for shape in parsed:
            _shape("DataInputConfig", shape)
    else:
        raise PropertyError(
            f'DataInputConfig {value!r} must be a JSON object {{"input0": [1, <features>]}} or list [[1, <features>]]'
        )
    return value


def _max_runtime(properties: Mapping[str, Any]) -> int:
    raw = properties.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME_SECONDS)
    # CloudFormation passes every property value to the function as a string.
    try:
        seconds = int(str(raw).strip())
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise PropertyError(f"MaxRuntimeInSeconds {raw!r} is not valid: expected a whole number of seconds >= 1")
    return seconds


def _prefix(properties: Mapping[str, Any]) -> str:
    if "JobNamePrefix" not in properties:
        return DEFAULT_JOB_NAME_PREFIX
    prefix = _text(properties, "JobNamePrefix")
    if len(prefix) > MAX_PREFIX or not _NAME_PART.fullmatch(prefix):
        raise PropertyError(
            f"JobNamePrefix {prefix!r} is not valid: expected at most {MAX_PREFIX} letters, digits and single "
            "hyphens, starting and ending with a letter or digit"
        )
    return prefix


def parse_properties(properties: Mapping[str, Any]) -> NeoProperties:
    """Validate ResourceProperties; raise PropertyError naming the first property that is wrong."""
    unknown = sorted(set(properties) - set(REQUIRED) - set(OPTIONAL) - set(IGNORED))
    if unknown:
        raise PropertyError(f"unknown properties {unknown}: expected {', '.join(REQUIRED + OPTIONAL)}")
    framework = _text(properties, "Framework")
    if framework not in FRAMEWORKS:
        raise PropertyError(f"Framework {framework!r} is not valid: expected one of {', '.join(sorted(FRAMEWORKS))}")
    version = _check(
        "FrameworkVersion", _text(properties, "FrameworkVersion"), _FRAMEWORK_VERSION, "a version such as 1.9"
    )
    target = _check(
        "TargetDevice", _text(properties, "TargetDevice"), _TARGET_DEVICE, "a Neo target device such as ml_inf1"
    )
    if framework == "PYTORCH" and target == "ml_inf1" and version not in INFERENTIA_PYTORCH_VERSIONS:
        raise PropertyError(
            f"FrameworkVersion {version!r} is not one Neo compiles PyTorch with for ml_inf1: "
            f"expected one of {', '.join(INFERENTIA_PYTORCH_VERSIONS)}"
        )
    compiler_options = properties.get("CompilerOptions")
    if compiler_options is not None and not (isinstance(compiler_options, str) and 3 <= len(compiler_options) <= 1024):
        raise PropertyError(
            f"CompilerOptions {compiler_options!r} is not valid: expected a string of 3-1024 characters"
        )
    return NeoProperties(
        role_arn=_check("RoleArn", _text(properties, "RoleArn"), _ROLE_ARN, "an IAM role ARN"),
        input_s3_uri=_check("InputS3Uri", _text(properties, "InputS3Uri"), _S3_OBJECT, "s3://bucket/key.tar.gz"),
        output_s3_uri=_check("OutputS3Uri", _text(properties, "OutputS3Uri"), _S3_PREFIX, "s3://bucket/prefix"),
        framework=framework,
        framework_version=version,
        data_input_config=_data_input_config(_text(properties, "DataInputConfig")),
        target_device=target,
        job_name_prefix=_prefix(properties),
        max_runtime_seconds=_max_runtime(properties),
        compiler_options=compiler_options,
    )


def _digest(text: str, chars: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def job_name_stem(properties: NeoProperties) -> str:
    """``<prefix>-<digest>-``: what every job compiled from these properties is named with."""
    canonical = json.dumps(asdict(properties), sort_keys=True, separators=(",", ":"))
    return f"{properties.job_name_prefix}-{_digest(canonical, PROPERTIES_DIGEST_CHARS)}-"


def job_name(properties: NeoProperties, request_id: str) -> str:
    """A valid, unique CompilationJobName: deterministic from the properties, distinct per request."""
    return job_name_stem(properties) + _digest(request_id, REQUEST_DIGEST_CHARS)


def output_location(properties: NeoProperties, name: str) -> str:
    """``OutputS3Uri/<job name>/``: Neo names its output after the input file, so jobs compiling the same
    asset with other settings would overwrite each other's artifact (and the one a running model serves)."""
    return f"{properties.output_s3_uri.rstrip('/')}/{name}/"


def compilation_request(properties: NeoProperties, name: str) -> dict[str, Any]:
    """The CreateCompilationJob request."""
    output: dict[str, Any] = {
        "S3OutputLocation": output_location(properties, name),
        "TargetDevice": properties.target_device,
    }
    if properties.compiler_options is not None:
        output["CompilerOptions"] = properties.compiler_options
    return {
        "CompilationJobName": name,
        "RoleArn": properties.role_arn,
        "InputConfig": {
            "S3Uri": properties.input_s3_uri,
            "DataInputConfig": properties.data_input_config,
            "Framework": properties.framework,
            "FrameworkVersion": properties.framework_version,
        },
        "OutputConfig": output,
        "StoppingCondition": {"MaxRuntimeInSeconds": properties.max_runtime_seconds},
    }


def _start(client: SageMakerClient, request: Mapping[str, Any]) -> None:
    name = request["CompilationJobName"]
    try:
        client.create_compilation_job(**request)
    except ClientError as error:
        # Only this request can have made a job of this name (the name digests its request id).
        if error.response.get("Error", {}).get("Code") != "ResourceInUse":
            raise
        LOG.info("compilation job %s exists already (a redelivered request); waiting for it", name)
    else:
        LOG.info("started compilation job %s", name)


def compile_and_wait(
    client: SageMakerClient,
    request: Mapping[str, Any],
    *,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_seconds: float = POLL_SECONDS,
) -> dict[str, Any]:
    """Start the job and poll it until it ends; return its final description.

    ``deadline`` is on ``clock``'s scale. Raise CompilationFailedError if the job fails or is stopped, and
    CompilationTimeoutError (after asking SageMaker to stop the job) if it is still running at ``deadline``.
    """
    name = request["CompilationJobName"]
    if clock() >= deadline:
        raise CompilationTimeoutError(f"no time left to wait for compilation job {name}; it was not started")
    _start(client, request)
    while True:
        job: dict[str, Any] = client.describe_compilation_job(CompilationJobName=name)
        status = job["CompilationJobStatus"]
        if status == COMPLETED:
            return job
        if status in FAILED_STATUSES:
            reason = job.get("FailureReason") or "no FailureReason given"
            raise CompilationFailedError(f"compilation job {name} ended {status}: {reason}")
        now = clock()
        if now >= deadline:
            _stop(client, name)
            raise CompilationTimeoutError(
                f"compilation job {name} was still {status} when the function had to answer; it was asked to stop "
                f"(raise the function's timeout, up to 900 s, or compile before deploying)"
            )
        sleep(min(poll_seconds, deadline - now))


def _stop(client: SageMakerClient, name: str) -> None:
    try:
        client.stop_compilation_job(CompilationJobName=name)
    except ClientError:
        # It may have ended between the last poll and now; the timeout is reported either way.
        LOG.exception("could not stop compilation job %s", name)
    else:
        LOG.info("asked compilation job %s to stop", name)


def reusable_job(client: SageMakerClient, physical_id: str, properties: NeoProperties) -> dict[str, Any] | None:
    """The current job, if it compiled these very properties and completed (an update rollback after a
    failed compile, or an update that changed nothing Neo sees): no need to compile again."""
    if not physical_id.startswith(job_name_stem(properties)):
        return None
    try:
        job: dict[str, Any] = client.describe_compilation_job(CompilationJobName=physical_id)
    except ClientError:
        LOG.exception("could not describe compilation job %s; compiling again", physical_id)
        return None
    return job if job["CompilationJobStatus"] == COMPLETED else None


def outcome(job: Mapping[str, Any]) -> Outcome:
    """Physical id and Fn::GetAtt attributes of a COMPLETED job."""
    data = {"ModelArtifact": job["ModelArtifacts"]["S3ModelArtifacts"], "JobName": job["CompilationJobName"]}
    if job.get("InferenceImage"):
        data["InferenceImage"] = job["InferenceImage"]
    return job["CompilationJobName"], data


def boto3_client(region: str | None = None) -> SageMakerClient:
    """A SageMaker client with botocore's standard retry mode, so throttling is retried with backoff."""
    client: SageMakerClient = boto3.client(
        "sagemaker", region_name=region, config=Config(retries={"mode": "standard", "max_attempts": 8})
    )
    return client


def make_action(
    client_factory: Callable[[], SageMakerClient] = boto3_client,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    margin_seconds: float = MARGIN_SECONDS,
) -> Callable[[Event, Any], Outcome]:
    """The custom-resource action for ``run``: compile on Create and Update, nothing on Delete."""

    def action(event: Event, context: Any) -> Outcome:
        if event["RequestType"] == "Delete":
            physical_id = str(event.get("PhysicalResourceId") or event["RequestId"])
            LOG.info("Delete: leaving compilation job %s as it is", physical_id)
            return physical_id, {}
        deadline = clock() + remaining_seconds(context) - margin_seconds
        properties = parse_properties(event["ResourceProperties"])
        client = client_factory()
        if event["RequestType"] == "Update":
            reused = reusable_job(client, str(event.get("PhysicalResourceId", "")), properties)
            if reused is not None:
                LOG.info(
                    "compilation job %s already compiled these properties; keeping it", reused["CompilationJobName"]
                )
                return outcome(reused)
        request = compilation_request(properties, job_name(properties, str(event["RequestId"])))
        return outcome(compile_and_wait(client, request, deadline=deadline, sleep=sleep, clock=clock))

    return action


def handler(event: Event, context: Any, *, opener: Opener = urllib.request.urlopen) -> dict[str, Any]:
    """Lambda entry point."""
    return run(event, context, make_action(), opener=opener)
