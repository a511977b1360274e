"""Container images: the committed tables match the SDK and botocore; agnostic stacks use a mapping."""

from __future__ import annotations

import importlib.util
import json

import pytest
from aws_cdk import App, Environment, Stack

from stacks import catalog, stages
from stacks.container_image import resolve_image
from stacks.profiles import PROFILES

from .conftest import REPO_ROOT, Synthesized

# Subprocesses, moto, checkov or the SageMaker SDK: make test runs it, make test-quick leaves it out.
pytestmark = pytest.mark.slow


def _uri(profile: str, version: str, region: str) -> str | None:
    """The image URI the stack deploys (stacks/container_image.py reads the profile's registry)."""
    found = PROFILES[profile].registry(version).image(region)
    return None if found is None else found[1]


needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("sagemaker") is None, reason="the SageMaker SDK (sagemaker-core) is not installed"
)


@needs_sdk
def test_committed_image_table_matches_the_sagemaker_sdk() -> None:
    from sagemaker.core import image_uris

    table = json.loads((REPO_ROOT / "stacks/data/xgboost_images.json").read_text())["versions"]
    sdk = image_uris.config_for_framework("xgboost")["inference"]["versions"]
    for tag, entry in table.items():
        accounts = {region: registry["account"] for region, registry in entry["regions"].items()}
        assert accounts == sdk[tag]["registries"], tag
        assert entry["repository"] == sdk[tag]["repository"], tag


@needs_sdk
def test_every_region_resolves_to_the_uri_the_sdk_builds() -> None:
    """URIs (account, region and partition domain) for the deployed tag, region by region."""
    from sagemaker.core import image_uris

    tag = stages.dev().container_version
    for region in catalog.xgboost_image_table(tag)["regions"]:
        assert _uri("cpu", tag, region) == image_uris.retrieve("xgboost", region, version=tag), region


def test_committed_instance_types_match_botocore() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    assert list(catalog.hosting_instance_types()) == sorted(model.shape_for("ProductionVariantInstanceType").enum)


def test_images_are_never_latest() -> None:
    for tag in catalog.xgboost_image_tags():
        assert tag != "latest" and tag[0].isdigit()


def test_environment_agnostic_stack_resolves_the_image_through_a_region_mapping(portable: Synthesized) -> None:
    ((mapping_id, mapping),) = portable.template_json["Mappings"].items()
    regions = catalog.xgboost_image_table("3.2-0")["regions"]
    assert set(mapping) == set(regions)
    assert mapping["us-west-2"] == {"Account": "246618743249", "Host": "246618743249.dkr.ecr.us-west-2.amazonaws.com"}
    _, model = portable.one("AWS::SageMaker::Model")
    assert model["Properties"]["PrimaryContainer"]["Image"] == {
        "Fn::Join": [
            "",
            [
                {"Fn::FindInMap": [mapping_id, {"Ref": "AWS::Region"}, "Host"]},
                "/sagemaker-xgboost:3.2-0",
            ],
        ]
    }


def test_region_specific_stack_has_a_literal_image_and_no_mapping(dev: Synthesized) -> None:
    assert "Mappings" not in dev.template_json


# The gpu profile (SageMaker Triton with the FIL backend) and the Inferentia 1 images (Neo PyTorch).
TRITON_INSTANCE_TYPE = "ml.g4dn.xlarge"
INF1_INSTANCE_TYPE = "ml.inf1.xlarge"


@needs_sdk
def test_committed_triton_and_inf1_tables_match_the_sagemaker_sdk() -> None:
    from sagemaker.core import image_uris

    for name, framework in (
        ("triton_images.json", "sagemaker-tritonserver"),
        ("neo_inf1_images.json", "inferentia-pytorch"),
    ):
        table = json.loads((REPO_ROOT / "stacks/data" / name).read_text())
        sdk = image_uris.config_for_framework(framework)["versions"]
        assert table["framework"] == framework
        for version, entry in table["versions"].items():
            accounts = {region: registry["account"] for region, registry in entry["regions"].items()}
            assert accounts == sdk[version]["registries"], (framework, version)
            assert entry["repository"] == sdk[version]["repository"], (framework, version)


@needs_sdk
def test_every_region_resolves_to_the_triton_gpu_uri_the_sdk_builds() -> None:
    from sagemaker.core import image_uris

    version = catalog.triton_image_version()
    for region in catalog.triton_image_table(version)["regions"]:
        expected = image_uris.retrieve(
            "sagemaker-tritonserver", region, version=version, instance_type=TRITON_INSTANCE_TYPE
        )
        assert _uri("gpu", version, region) == expected, region


@needs_sdk
def test_every_region_resolves_to_the_inf1_uri_the_sdk_builds() -> None:
    from sagemaker.core import image_uris

    # The version the inferentia profile deploys (the others share its accounts; the table test covers them).
    for version in (PROFILES["inferentia"].default_version(),):
        for region in catalog.inf1_image_table(version)["regions"]:
            expected = image_uris.retrieve(
                "inferentia-pytorch", region, version=version, instance_type=INF1_INSTANCE_TYPE
            )
            assert _uri("inferentia", version, region) == expected, (version, region)


@needs_sdk
def test_pinned_triton_version_is_a_gpu_image_the_sdk_lists() -> None:
    """One Triton version, chosen for its FIL backend's Treelite (see scripts/generate_tables.py)."""
    from sagemaker.core import image_uris

    config = image_uris.config_for_framework("sagemaker-tritonserver")
    assert catalog.triton_image_versions() == ("26.05",)
    assert catalog.triton_image_version() in config["versions"]
    assert "gpu" in config["processors"]
    # The CPU image of the same version is tagged "-cpu"; the GPU one has no processor suffix.
    assert catalog.triton_image_table("26.05")["tag"] == "26.05-py3"


@needs_sdk
def test_inf1_table_keeps_every_inferentia_pytorch_version_the_sdk_lists() -> None:
    from sagemaker.core import image_uris

    config = image_uris.config_for_framework("inferentia-pytorch")
    assert config["processors"] == ["inf"]
    assert set(catalog.inf1_image_versions()) == set(config["versions"])
    assert catalog.inf1_image_versions() == ("1.7", "1.8", "1.9")
    assert {catalog.inf1_image_table(version)["tag"] for version in ("1.7", "1.8", "1.9")} == {
        "1.7-inf-py3",
        "1.8-inf-py3",
        "1.9-inf-py3",
    }


def test_registry_partitions_match_botocore() -> None:
    import botocore.session

    session = botocore.session.get_session()
    for version in catalog.inf1_image_versions():
        for region, registry in catalog.inf1_image_table(version)["regions"].items():
            assert registry["partition"] == session.get_partition_for_region(region), region
    for region, registry in catalog.triton_image_table(catalog.triton_image_version())["regions"].items():
        assert registry["partition"] == session.get_partition_for_region(region), region


@pytest.mark.parametrize(
    ("profile", "version", "region", "uri", "repository"),
    [
        (
            "gpu",
            "26.05",
            "us-west-2",
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/sagemaker-tritonserver:26.05-py3",
            ":ecr:us-west-2:763104351884:repository/sagemaker-tritonserver",
        ),
        (
            "inferentia",
            "1.9",
            "cn-north-1",
            "472730292857.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-neo-pytorch:1.9-inf-py3",
            ":ecr:cn-north-1:472730292857:repository/sagemaker-neo-pytorch",
        ),
    ],
)
def test_execution_role_resource_is_the_regions_ecr_repository(
    profile: str, version: str, region: str, uri: str, repository: str
) -> None:
    """What resolve_image gives the model and the execution role; the partition (aws-cn in China) is the
    deploy region's."""
    stack = Stack(App(), "Probe", env=Environment(region=region))
    image = resolve_image(stack, profile=PROFILES[profile], version=version, region=region)
    assert stack.resolve(image.uri) == uri
    assert stack.resolve(image.repository_arn) == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, repository]]}


def test_regions_without_an_image_resolve_to_none() -> None:
    assert _uri("gpu", "26.05", "cn-north-1") is None
    assert _uri("inferentia", "1.9", "ap-south-2") is None


def test_triton_and_inf1_images_are_never_latest() -> None:
    tags = [catalog.triton_image_table(v)["tag"] for v in catalog.triton_image_versions()]
    tags += [catalog.inf1_image_table(v)["tag"] for v in catalog.inf1_image_versions()]
    for tag in tags:
        assert "latest" not in tag and tag[0].isdigit(), tag
