"""Serving profiles: each stage serves the pinned image of its profile, and the settings refuse mismatches."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from rtb_client import codec_for
from stacks import catalog
from stacks.profiles import PROFILES
from stacks.settings import ShadowSettings

from .conftest import Synthesized
from .test_settings import dev_with, problems_of

_IMAGE_URI = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.us-east-1\.amazonaws\.com/(?P<repository>[^:]+):(?P<tag>.+)$")
# (stage, its profile, the catalog table of the profile's images, the pinned version, "repository:tag")
PINNED_IMAGES = [
    ("dev", "cpu", catalog.xgboost_image_table, "3.2-0", "sagemaker-xgboost:3.2-0"),
    ("gpu", "gpu", catalog.triton_image_table, "26.05", "sagemaker-tritonserver:26.05-py3"),
    ("inferentia", "inferentia", catalog.inf1_image_table, "1.9", "sagemaker-neo-pytorch:1.9-inf-py3"),
]


def _statements_of_role(stage: Synthesized, role_id: str) -> dict[str, dict[str, Any]]:
    """Every statement of the managed policies attached to ``role_id``, by Sid."""
    statements = [
        statement
        for policy in stage.of_type("AWS::IAM::ManagedPolicy").values()
        if {"Ref": role_id} in policy["Properties"].get("Roles", [])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_sid = {statement["Sid"]: statement for statement in statements}
    assert len(by_sid) == len(statements), "Sids repeat"
    return by_sid


def _model(stage: Synthesized) -> dict[str, Any]:
    _, model = stage.one("AWS::SageMaker::Model")
    properties: dict[str, Any] = model["Properties"]
    return properties


def _variant(stage: Synthesized) -> dict[str, Any]:
    _, config = stage.one("AWS::SageMaker::EndpointConfig")
    (variant,) = config["Properties"]["ProductionVariants"]
    found: dict[str, Any] = variant
    return found


def _function(stage: Synthesized, handler: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (key, function)
        for key, function in stage.of_type("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == handler
    ]
    return found


# --- the image of each profile ---------------------------------------------------------------------


@pytest.mark.parametrize(("stage_name", "profile", "table", "version", "pinned"), PINNED_IMAGES)
def test_model_serves_the_profiles_pinned_image_from_the_catalog(
    synth_stage: Callable[[str], Synthesized],
    stage_name: str,
    profile: str,
    table: Callable[[str], dict[str, Any]],
    version: str,
    pinned: str,
) -> None:
    stage = synth_stage(stage_name)
    assert (stage.settings.profile, stage.settings.container_version) == (profile, version)
    entry = table(version)
    registry = entry["regions"]["us-east-1"]
    image = _IMAGE_URI.match(_model(stage)["PrimaryContainer"]["Image"])
    assert image is not None
    assert image["account"] == registry["account"]
    assert f"{image['account']}.dkr.ecr.us-east-1.amazonaws.com" == registry["host"]
    assert image["repository"] == entry["repository"]
    assert image["tag"] == entry.get("tag", version)  # the XGBoost table is keyed by its tags
    assert f"{image['repository']}:{image['tag']}" == pinned


@pytest.mark.parametrize(("stage_name", "profile", "table", "version", "pinned"), PINNED_IMAGES)
def test_execution_role_pulls_exactly_the_profiles_repository(
    synth_stage: Callable[[str], Synthesized],
    stage_name: str,
    profile: str,
    table: Callable[[str], dict[str, Any]],
    version: str,
    pinned: str,
) -> None:
    stage = synth_stage(stage_name)
    entry = table(version)
    statements = _statements_of_role(stage, _model(stage)["ExecutionRoleArn"]["Fn::GetAtt"][0])
    account = entry["regions"]["us-east-1"]["account"]
    repository = pinned.split(":")[0]
    assert entry["repository"] == repository
    assert statements["PullContainerImage"]["Resource"] == f"arn:aws:ecr:us-east-1:{account}:repository/{repository}"
    # No other statement names a repository: the token call has no resource scope.
    others = [sid for sid, statement in statements.items() if ":repository/" in json.dumps(statement)]
    assert others == ["PullContainerImage"]


def test_environment_agnostic_stage_resolves_its_image_per_region(portable: Synthesized) -> None:
    assert portable.settings.region is None
    mappings = portable.template_json["Mappings"]
    (mapping_id,) = mappings
    region = {"Ref": "AWS::Region"}
    assert _model(portable)["PrimaryContainer"]["Image"] == {
        "Fn::Join": ["", [{"Fn::FindInMap": [mapping_id, region, "Host"]}, "/sagemaker-xgboost:3.2-0"]]
    }
    table = catalog.xgboost_image_table("3.2-0")["regions"]
    assert mappings[mapping_id] == {
        name: {"Account": entry["account"], "Host": entry["host"]} for name, entry in table.items()
    }
    statements = _statements_of_role(portable, _model(portable)["ExecutionRoleArn"]["Fn::GetAtt"][0])
    ecr = statements["PullContainerImage"]["Resource"]["Fn::Join"][1]
    assert {"Fn::FindInMap": [mapping_id, region, "Account"]} in ecr
    assert ecr[-1] == ":repository/sagemaker-xgboost"


# --- what differs between profiles -------------------------------------------------------------------


def test_gpu_model_names_its_triton_model_and_runs_on_the_cuda_13_ami(gpu: Synthesized) -> None:
    assert _model(gpu)["PrimaryContainer"]["Environment"] == {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "rtb-filter"}
    assert _variant(gpu)["InferenceAmiVersion"] == "al2023-ami-sagemaker-inference-gpu-4-1"
    _, config = gpu.one("AWS::SageMaker::EndpointConfig")
    assert "KmsKeyId" not in config["Properties"]  # ml.g4dn: local NVMe storage


def test_cpu_model_has_no_environment_and_the_default_ami(dev: Synthesized) -> None:
    assert "Environment" not in _model(dev)["PrimaryContainer"]
    assert "InferenceAmiVersion" not in _variant(dev)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_client_sends_the_content_type_the_profile_serves(profile: str) -> None:
    assert PROFILES[profile].content_type == codec_for(profile).content_type


# --- the inferentia profile's Neo compilation ---------------------------------------------------------


def _compilation(stage: Synthesized) -> tuple[str, dict[str, Any]]:
    return stage.one("Custom::NeoCompilation")


def test_inferentia_compiles_the_traced_artifact_with_neo(inferentia: Synthesized) -> None:
    _, compilation = _compilation(inferentia)
    properties = compilation["Properties"]
    neo = inferentia.settings.artifact.manifest["neo"]
    assert properties["Framework"] == "PYTORCH"
    assert properties["FrameworkVersion"] == "1.9"
    assert properties["DataInputConfig"] == '{"input0":[1,7]}'
    assert properties["TargetDevice"] == "ml_inf1"
    assert properties["CompilerOptions"] == neo["compiler_options"]
    traced = inferentia.model_asset_hash
    assert properties["InputS3Uri"] == {
        "Fn::Sub": f"s3://cdk-hnb659fds-assets-${{AWS::AccountId}}-us-east-1/{traced}.gz"
    }
    staged = inferentia.outdir / f"asset.{traced}.tar.gz"
    assert staged.read_bytes() == (inferentia.settings.artifact_path).read_bytes()
    assert inferentia.settings.artifact_file == "model_artifacts/inf1/model.tar.gz"
    bucket_id, _ = inferentia.one("AWS::S3::Bucket")  # the compile bucket (no data capture on this stage)
    assert properties["OutputS3Uri"] == {"Fn::Join": ["", ["s3://", {"Ref": bucket_id}, "/compiled"]]}


def test_inferentia_model_serves_what_neo_compiled(inferentia: Synthesized) -> None:
    compilation_id, compilation = _compilation(inferentia)
    assert _model(inferentia)["PrimaryContainer"]["ModelDataUrl"] == {"Fn::GetAtt": [compilation_id, "ModelArtifact"]}
    function_id, _ = _function(inferentia, "handlers.neo_compile.handler")
    assert compilation["Properties"]["ServiceToken"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_neo_function_runs_only_this_kits_jobs_with_only_the_job_role(inferentia: Synthesized) -> None:
    _, compilation = _compilation(inferentia)
    job_role_id = compilation["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    _, function = _function(inferentia, "handlers.neo_compile.handler")
    statements = _statements_of_role(inferentia, function["Properties"]["Role"]["Fn::GetAtt"][0])
    assert set(statements) == {"RunCompilationJobs", "PassTheJobRole", "WriteItsLogs"}
    jobs = statements["RunCompilationJobs"]
    assert sorted(jobs["Action"]) == [
        "sagemaker:CreateCompilationJob",
        "sagemaker:DescribeCompilationJob",
        "sagemaker:StopCompilationJob",
    ]
    assert jobs["Resource"] == {
        "Fn::Join": ["", ["arn:aws:sagemaker:us-east-1:", {"Ref": "AWS::AccountId"}, ":compilation-job/rtb-inf1-*"]]
    }
    pass_role = statements["PassTheJobRole"]
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Resource"] == {"Fn::GetAtt": [job_role_id, "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_neo_job_reads_the_traced_asset_and_writes_under_compiled(inferentia: Synthesized) -> None:
    _, compilation = _compilation(inferentia)
    statements = _statements_of_role(inferentia, compilation["Properties"]["RoleArn"]["Fn::GetAtt"][0])
    read = statements["ReadTracedModel"]
    assert read["Action"] == "s3:GetObject"
    assert read["Resource"] == {
        "Fn::Join": [
            "",
            [
                "arn:aws:s3:::",
                {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-us-east-1"},
                f"/{inferentia.model_asset_hash}.gz",
            ],
        ]
    }
    bucket_id, _ = inferentia.one("AWS::S3::Bucket")
    write = statements["WriteCompiledModel"]
    assert write["Action"] == "s3:PutObject"
    assert write["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/compiled/*"]]}
    s3_actions = [sid for sid, statement in statements.items() if '"s3:' in json.dumps(statement["Action"])]
    assert sorted(s3_actions) == ["ReadTracedModel", "WriteCompiledModel"]


# --- settings that do not fit the profile ---------------------------------------------------------


def test_unknown_profile_is_rejected() -> None:
    assert problems_of(profile="tpu") == ["profile='tpu' is invalid: allowed: one of ['cpu', 'gpu', 'inferentia']"]


def test_gpu_instance_on_the_cpu_profile_points_to_the_gpu_profile() -> None:
    assert problems_of(instance_type="ml.g4dn.xlarge") == [
        "instance_type='ml.g4dn.xlarge' is invalid: the cpu profile serves x86 CPU types such as ml.c5, ml.c6i, "
        "ml.m5; allowed: one of those, or profile='gpu'",
        # ml.g4dn has local NVMe storage whatever the profile: the stage's default KMS key does not fit either.
        "kms_encryption=True is invalid: ml.g4dn.xlarge has local NVMe storage, which SageMaker encrypts in "
        "hardware and for which it rejects KmsKeyId; allowed: False for this type, or a type without local "
        "storage such as ml.c5.xlarge",
    ]


# dev moved to another profile serves that profile's packaged sample (model_artifact=None), whatever model
# stacks/stages.py points dev at: an own cpu model would be a second problem on the other profiles.
SAMPLE = {"model_artifact": None}


def test_cpu_instance_on_the_gpu_profile_points_to_the_cpu_profile() -> None:
    assert problems_of(**SAMPLE, profile="gpu", instance_type="ml.c5.xlarge") == [
        "instance_type='ml.c5.xlarge' is invalid: the gpu profile serves NVIDIA GPU types ml.g4dn, ml.g5, ml.g6; "
        "allowed: one of those, or profile='cpu'"
    ]


def test_inferentia_refuses_the_xgboost_artifact() -> None:
    assert problems_of(
        profile="inferentia", instance_type="ml.inf1.xlarge", model_artifact="model_artifacts/model.tar.gz"
    ) == [
        "model_artifact='model_artifacts/model.tar.gz' is invalid: the inferentia profile compiles a traced "
        "PyTorch model for ml_inf1 with Neo (XGBoost cannot be compiled for Inferentia); allowed: a "
        "compiled-ready artifact from make inf1-model"
    ]


GPU = {**SAMPLE, "profile": "gpu", "instance_type": "ml.g4dn.xlarge", "kms_encryption": False}


def test_an_image_tag_of_another_profile_is_the_only_problem() -> None:
    """Not also "rebuild the artifact": the artifact is fine, the tag is not."""
    assert problems_of(**GPU, image_tag="1.7-1") == [
        "image_tag='1.7-1' is invalid: the gpu profile's images: allowed: one of ['26.05'], or None"
    ]


def test_the_gpu_stage_settings_are_accepted() -> None:
    assert dev_with(**GPU).serving.name == "gpu"


def test_kms_key_on_the_gpu_profiles_nvme_instance_is_rejected() -> None:
    assert problems_of(**(GPU | {"kms_encryption": True})) == [
        "kms_encryption=True is invalid: ml.g4dn.xlarge has local NVMe storage, which SageMaker encrypts in "
        "hardware and for which it rejects KmsKeyId; allowed: False for this type, or a type without local "
        "storage such as ml.c5.xlarge"
    ]


def test_shadow_on_the_inferentia_profile_is_rejected() -> None:
    shadow = ShadowSettings(model_artifact="model_artifacts/inf1/model.tar.gz")
    assert problems_of(**SAMPLE, profile="inferentia", instance_type="ml.inf1.xlarge", shadow=shadow) == [
        f"shadow={shadow!r} is invalid: the inferentia profile compiles its one artifact with Neo during the "
        "deploy; allowed: None"
    ]
