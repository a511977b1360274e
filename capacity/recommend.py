"""Build (and with --start, start) a SageMaker Inference Recommender job for the stage's model.

    python scripts/recommend.py --stage dev --role-arn ROLE_ARN --model-name MODEL \\
        --sample-payload-url s3://bucket/payload.tar.gz [--instance-types ml.c5.2xlarge,ml.c6i.xlarge] [--start]

Inference Recommender is the AWS-side way to the numbers the local load test measures: it deploys the
model on each candidate instance type, load-tests it and reports MaxInvocations, ModelLatency and cost.
A Default job tests the stage's instance type plus --instance-types. The model is either a SageMaker
Model (--model-name, e.g. the one the stack created) or a registered model package version
(--model-package-arn); the payload is a tar.gz of sample CSV rows in S3. The role must let SageMaker
read the payload and the model.

Without --start the request is only printed as JSON (nothing is sent); it is checked against the
botocore service model first either way, and printing it needs no AWS configuration; --start needs
credentials for the stage's account. Bad input: one line on stderr and exit 2; a failed call: exit 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.exceptions import ParamValidationError
from botocore.model import Shape
from botocore.validate import validate_parameters

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import OneLineParser, UsageError, one_line  # noqa: E402
from stacks import catalog  # noqa: E402
from stacks.settings import SettingsError, StageSettings  # noqa: E402
from stacks.stages import STAGES, load_stage  # noqa: E402

PROG = "recommend"
OPERATION = "CreateInferenceRecommendationsJob"
CONTENT_TYPE = "text/csv"


@cache
def _input_shape() -> Shape:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model(OPERATION).input_shape


def _member(shape: Shape, *path: str) -> Shape:
    for name in path:
        shape = shape.members[name]
    return shape


def check_pattern(value: str, option: str, *path: str) -> str:
    """The value against the pattern and length the service model declares for that field, so a typo is
    caught here rather than by the API."""
    shape = _member(_input_shape(), *path)
    pattern, low, high = shape.metadata.get("pattern"), shape.metadata.get("min", 0), shape.metadata.get("max")
    too_long = high is not None and len(value) > high
    if len(value) < low or too_long or (pattern is not None and not re.fullmatch(pattern, value)):
        allowed = f"{low} to {high} characters" if high is not None else f"at least {low} characters"
        raise UsageError(f"{option} {value!r} is invalid: allowed: {allowed} matching {pattern}")
    return value


def job_name(stage: str, now: datetime) -> str:
    """Unique per account and region, and readable: rtb-<stage>-<UTC time to the second>."""
    return check_pattern(f"rtb-{stage}-{now.astimezone(UTC):%Y%m%d-%H%M%S}", "job name", "JobName")


def instance_types(stage_type: str, extra: list[str]) -> list[str]:
    """The stage's type first, then the extra ones, each once; every one a real-time hosting type."""
    known = set(catalog.hosting_instance_types())
    chosen: list[str] = []
    for name in [stage_type, *extra]:
        if name not in known:
            raise UsageError(
                f"--instance-types {name!r} is not a SageMaker real-time instance type "
                "(stacks/data/instance_types.json)"
            )
        if name not in chosen:
            chosen.append(name)
    return chosen


def build_request(
    settings: StageSettings,
    *,
    now: datetime,
    role_arn: str,
    sample_payload_url: str,
    model_name: str | None = None,
    model_package_arn: str | None = None,
    extra_instance_types: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The CreateInferenceRecommendationsJob request of a Default job for the stage's model."""
    if (model_name is None) == (model_package_arn is None):
        raise UsageError("give the model one way: --model-name (a SageMaker Model) or --model-package-arn")
    model: dict[str, str] = {}
    if model_package_arn is not None:
        model["ModelPackageVersionArn"] = check_pattern(
            model_package_arn, "--model-package-arn", "InputConfig", "ModelPackageVersionArn"
        )
    if model_name is not None:
        model["ModelName"] = check_pattern(model_name, "--model-name", "InputConfig", "ModelName")
    payload_url = check_pattern(
        sample_payload_url,
        "--sample-payload-url",
        "InputConfig",
        "ContainerConfig",
        "PayloadConfig",
        "SamplePayloadUrl",
    )
    container = {
        "Domain": "MACHINE_LEARNING",
        "Task": "CLASSIFICATION",
        "Framework": "XGBOOST",
        # The XGBoost of the container the stage serves with (the settings require it to match the model's).
        "FrameworkVersion": catalog.xgboost_image_table(settings.container_version)["xgboost_version"],
        "PayloadConfig": {
            "SamplePayloadUrl": payload_url,
            "SupportedContentTypes": [CONTENT_TYPE],
        },
        "SupportedInstanceTypes": instance_types(settings.instance_type, list(extra_instance_types)),
        "SupportedEndpointType": "RealTime",
        "SupportedResponseMIMETypes": [CONTENT_TYPE],
    }
    return {
        "JobName": job_name(settings.name, now),
        "JobType": "Default",
        "RoleArn": check_pattern(role_arn, "--role-arn", "RoleArn"),
        "InputConfig": {**model, "ContainerConfig": container},
        "JobDescription": f"Traffic filter of stage {settings.name}: instance types for its real-time endpoint",
    }


def validate(request: dict[str, Any]) -> None:
    """Types, required members and minimum lengths, as botocore checks them before sending (the patterns
    were checked as the request was built)."""
    try:
        validate_parameters(request, _input_shape())
    except ParamValidationError as error:
        raise UsageError(one_line(error)) from None


def start(sagemaker: Any, request: dict[str, Any]) -> str:
    """Start the job; its ARN."""
    return str(sagemaker.create_inference_recommendations_job(**request)["JobArn"])


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--role-arn", required=True, help="IAM role SageMaker assumes for the job")
    parser.add_argument("--sample-payload-url", required=True, help="s3://... tar.gz of sample text/csv payloads")
    parser.add_argument("--model-name", help="a SageMaker Model (e.g. the one the stage's stack created)")
    parser.add_argument("--model-package-arn", help="a versioned model package ARN instead of --model-name")
    parser.add_argument("--instance-types", default="", help="more types to test, comma-separated")
    parser.add_argument("--region", help="default: the stage's region, else the AWS config")
    parser.add_argument(
        "--start", action="store_true", help="start the job: needs AWS credentials (otherwise print the request)"
    )
    return parser


def _stage(name: str) -> StageSettings:
    if name not in STAGES:
        raise UsageError(f"no stage {name!r}; allowed: one of {sorted(STAGES)} (stacks/stages.py)")
    try:
        return load_stage(name)
    except SettingsError as error:
        raise UsageError(one_line(error)) from None


def main(argv: list[str] | None = None, *, now: datetime | None = None, session: Any = None) -> int:
    """``now`` and ``session`` are for tests: a fixed job name and stubbed clients."""
    try:
        args = build_parser().parse_args(argv)
        settings = _stage(args.stage)
        request = build_request(
            settings,
            now=now or datetime.now(UTC),
            role_arn=args.role_arn,
            sample_payload_url=args.sample_payload_url,
            model_name=args.model_name,
            model_package_arn=args.model_package_arn,
            extra_instance_types=tuple(name.strip() for name in args.instance_types.split(",") if name.strip()),
        )
        validate(request)
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    if not args.start:
        print(json.dumps(request, indent=2))
        return 0
    try:
        session = session or boto3.Session(region_name=args.region or settings.region)
        print(f"started {start(session.client('sagemaker'), request)}")
    except Exception as error:  # one line for people and CI logs, whatever broke
        print(f"{PROG}: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
