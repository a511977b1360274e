"""Container images: the committed tables match the SDK and botocore; agnostic stacks use a mapping."""

from __future__ import annotations

import importlib.util
import json

import pytest

from stacks import catalog, stages

from .conftest import REPO_ROOT, Synthesized

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

    tag = stages.dev().image_tag
    for region in catalog.xgboost_image_table(tag)["regions"]:
        image = catalog.xgboost_image(tag, region)
        assert image is not None
        assert image.uri == image_uris.retrieve("xgboost", region, version=tag), region


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
