"""scripts/recommend.py: the Inference Recommender request, checked offline against botocore's service
model (Stubber validates every parameter before matching it), and one line per bad input."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import cliutil as cli
from capacity import recommend
from stacks.stages import STAGES

NOW = datetime(2026, 11, 21, 20, 45, 7, tzinfo=UTC)
ROLE = "arn:aws:iam::123456789012:role/InferenceRecommenderRole"
PAYLOAD = "s3://rtb-artifacts/payloads/sample.tar.gz"
MODEL = "InferenceModel-AbC123dEf456"
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/rtb-traffic-filter/3"
JOB_ARN = "arn:aws:sagemaker:us-east-1:123456789012:inference-recommendations-job/rtb-dev-20261121-204507"
ARGS = ["--stage", "dev", "--role-arn", ROLE, "--sample-payload-url", PAYLOAD]


def expected(model: dict[str, str], instance_types: list[str]) -> dict[str, Any]:
    return {
        "JobName": "rtb-dev-20261121-204507",
        "JobType": "Default",
        "RoleArn": ROLE,
        "InputConfig": {
            **model,
            "ContainerConfig": {
                "Domain": "MACHINE_LEARNING",
                "Task": "CLASSIFICATION",
                "Framework": "XGBOOST",
                "FrameworkVersion": "3.2.0",  # the XGBoost of the stage's 3.2-0 container
                "PayloadConfig": {"SamplePayloadUrl": PAYLOAD, "SupportedContentTypes": ["text/csv"]},
                "SupportedInstanceTypes": instance_types,
                "SupportedEndpointType": "RealTime",
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        },
        "JobDescription": "Traffic filter of stage dev: instance types for its real-time endpoint",
    }


class StubbedSession:
    """A session whose SageMaker client is stubbed; nothing leaves the process."""

    def __init__(self) -> None:
        fake = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        self.sagemaker = fake.client("sagemaker")
        self.stub = Stubber(self.sagemaker)
        self.stub.activate()

    def client(self, name: str) -> Any:
        assert name == "sagemaker"
        return self.sagemaker


def _run(argv: list[str], capsys: pytest.CaptureFixture[str], **kwargs: Any) -> tuple[int, str, str]:
    code = recommend.main(argv, now=NOW, **kwargs)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_printed_request_is_a_default_job_for_the_stage_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run([*ARGS, "--model-name", MODEL], capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == expected({"ModelName": MODEL}, ["ml.c5.xlarge"])


BY_NAME = (["--model-name", MODEL], {"ModelName": MODEL})
BY_PACKAGE = (["--model-package-arn", PACKAGE], {"ModelPackageVersionArn": PACKAGE})


@pytest.mark.parametrize(
    ("extra", "by", "types"),
    [
        ([], BY_NAME, ["ml.c5.xlarge"]),
        (["--instance-types", "ml.c5.2xlarge, ml.c6i.xlarge"], BY_NAME,
         ["ml.c5.xlarge", "ml.c5.2xlarge", "ml.c6i.xlarge"]),
        (["--instance-types", "ml.c5.xlarge,ml.m5.xlarge"], BY_PACKAGE, ["ml.c5.xlarge", "ml.m5.xlarge"]),
    ],
)  # fmt: skip
def test_start_sends_exactly_this_request_valid_for_the_service_model(
    extra: list[str], by: tuple[list[str], dict[str, str]], types: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    model_args, model = by
    session = StubbedSession()
    session.stub.add_response("create_inference_recommendations_job", {"JobArn": JOB_ARN}, expected(model, types))
    code, out, err = _run([*ARGS, *model_args, *extra, "--start"], capsys, session=session)
    assert (code, out, err) == (0, f"started {JOB_ARN}\n", "")
    session.stub.assert_no_pending_responses()


def test_a_refused_start_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    session = StubbedSession()
    session.stub.add_client_error(
        "create_inference_recommendations_job",
        service_error_code="ResourceLimitExceeded",
        service_message="You have reached the limit of concurrent recommendation jobs.",
        http_status_code=400,
    )
    assert _run([*ARGS, "--model-name", MODEL, "--start"], capsys, session=session) == (
        1,
        "",
        "recommend: An error occurred (ResourceLimitExceeded) when calling the CreateInferenceRecommendationsJob "
        "operation: You have reached the limit of concurrent recommendation jobs.\n",
    )


def test_the_job_name_is_the_stage_and_the_utc_time() -> None:
    assert recommend.job_name("shared-vpc", NOW) == "rtb-shared-vpc-20261121-204507"
    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    assert recommend.job_name("dev", paris) == "rtb-dev-20261121-204507"


def test_instance_types_start_with_the_stages_and_appear_once() -> None:
    assert recommend.instance_types("ml.c5.xlarge", ["ml.c5.2xlarge", "ml.c5.xlarge", "ml.c5.2xlarge"]) == [
        "ml.c5.xlarge",
        "ml.c5.2xlarge",
    ]


ROLE_RULE = r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
MODEL_RULE = r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?"
PACKAGE_RULE = r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]{9,16}:[0-9]{12}:model-package/[\S]{1,2048}"
DEV = ["--stage", "dev"]
BY = ["--model-name", MODEL]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stage", "staging", "--role-arn", ROLE, "--sample-payload-url", PAYLOAD, *BY],
         f"no stage 'staging'; allowed: one of {sorted(STAGES)} (stacks/stages.py)"),
        (ARGS, "give the model one way: --model-name (a SageMaker Model) or --model-package-arn"),
        ([*ARGS, *BY, "--model-package-arn", PACKAGE],
         "give the model one way: --model-name (a SageMaker Model) or --model-package-arn"),
        ([*DEV, "--role-arn", "InferenceRecommenderRole", "--sample-payload-url", PAYLOAD, *BY],
         f"--role-arn 'InferenceRecommenderRole' is invalid: allowed: 20 to 2048 characters matching {ROLE_RULE}"),
        ([*DEV, "--role-arn", ROLE, "--sample-payload-url", "rtb-artifacts/sample.tar.gz", *BY],
         "--sample-payload-url 'rtb-artifacts/sample.tar.gz' is invalid: allowed: 0 to 1024 characters matching "
         "(https|s3)://([^/]+)/?(.*)"),
        ([*ARGS, "--model-name", "my_model"],
         f"--model-name 'my_model' is invalid: allowed: 0 to 63 characters matching {MODEL_RULE}"),
        ([*ARGS, "--model-package-arn", "rtb-traffic-filter/3"],
         "--model-package-arn 'rtb-traffic-filter/3' is invalid: allowed: 1 to 2048 characters matching "
         f"{PACKAGE_RULE}"),
        ([*ARGS, *BY, "--instance-types", "ml.c5.xlarg"],
         "--instance-types 'ml.c5.xlarg' is not a SageMaker real-time instance type (stacks/data/instance_types.json)"),
        ([*DEV, "--sample-payload-url", PAYLOAD, *BY], "the following arguments are required: --role-arn"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2_and_nothing_is_sent(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    session = StubbedSession()  # no responses queued: any call would fail the test
    assert _run([*argv, "--start"], capsys, session=session) == (2, "", f"recommend: {message}\n")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("RoleArn"), 'Missing required parameter in input: "RoleArn"'),
        (lambda r: r["InputConfig"]["ContainerConfig"].update(SupportedInstanceTypes="ml.c5.xlarge"),
         "Invalid type for parameter InputConfig.ContainerConfig.SupportedInstanceTypes"),
    ],
)  # fmt: skip
def test_a_request_the_service_model_rejects_is_caught_before_sending(change: Any, message: str) -> None:
    request = expected({"ModelName": MODEL}, ["ml.c5.xlarge"])
    recommend.validate(request)
    change(request)
    with pytest.raises(cli.UsageError, match=re.escape(message)):
        recommend.validate(request)
