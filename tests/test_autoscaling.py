"""Autoscaling: a scalable target on the variant and target tracking from the AWS formula."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stacks import stages
from stacks.settings import AutoscalingSettings

from .conftest import Synthesized, synthesize


def test_scalable_target_covers_the_variant_instance_count(dev: Synthesized) -> None:
    endpoint_id, _ = dev.one("AWS::SageMaker::Endpoint")
    _, target = dev.one("AWS::ApplicationAutoScaling::ScalableTarget")
    properties = target["Properties"]
    assert properties["ServiceNamespace"] == "sagemaker"
    assert properties["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert properties["ResourceId"] == {
        "Fn::Join": ["", ["endpoint/", {"Fn::GetAtt": [endpoint_id, "EndpointName"]}, "/variant/AllTraffic"]]
    }
    assert (properties["MinCapacity"], properties["MaxCapacity"]) == (2, 4)


def test_scalable_target_uses_the_sagemaker_service_linked_role(dev: Synthesized) -> None:
    _, target = dev.one("AWS::ApplicationAutoScaling::ScalableTarget")
    role = target["Properties"]["RoleARN"]["Fn::Join"][1]
    assert role[-1].endswith(
        ":role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    # No extra role minted for scaling: the only roles are the execution, flow-log and CDK handler roles.
    assert len(dev.of_type("AWS::IAM::Role")) == 3


@pytest.mark.parametrize(("max_rps", "safety"), [(1000.0, 0.5), (2400.0, 0.25), (350.0, 1.0)])
def test_invocations_target_equals_max_rps_times_safety_times_60(max_rps: float, safety: float) -> None:
    scaling = AutoscalingSettings(max_rps_per_instance=max_rps, safety_factor=safety)
    assert scaling.invocations_per_instance_target == pytest.approx(max_rps * safety * 60)


def test_target_tracking_policy_uses_the_formula_and_cooldowns(dev: Synthesized) -> None:
    target_id, _ = dev.one("AWS::ApplicationAutoScaling::ScalableTarget")
    _, policy = dev.one("AWS::ApplicationAutoScaling::ScalingPolicy")
    scaling = dev.settings.autoscaling
    assert policy["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    assert policy["Properties"]["TargetTrackingScalingPolicyConfiguration"] == {
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "TargetValue": scaling.max_rps_per_instance * scaling.safety_factor * 60,
        "ScaleInCooldown": scaling.scale_in_cooldown_seconds,
        "ScaleOutCooldown": scaling.scale_out_cooldown_seconds,
    }
    assert policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 30000


def test_high_resolution_concurrency_policy_is_added_when_configured(tmp_path: Path) -> None:
    base = stages.dev()
    settings = dataclasses.replace(
        base, autoscaling=dataclasses.replace(base.autoscaling, concurrency_target_per_instance=8.0)
    )
    stage = synthesize(settings, tmp_path)
    configs = {
        policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]: policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for policy in stage.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    }
    assert set(configs) == {
        "SageMakerVariantInvocationsPerInstance",
        "SageMakerVariantConcurrentRequestsPerModelHighResolution",
    }
    assert configs["SageMakerVariantConcurrentRequestsPerModelHighResolution"]["TargetValue"] == 8.0


def test_no_high_resolution_policy_by_default(dev: Synthesized) -> None:
    dev.template.resource_count_is("AWS::ApplicationAutoScaling::ScalingPolicy", 1)


def test_autoscaling_can_be_turned_off(tmp_path: Path) -> None:
    base = stages.dev()
    settings = dataclasses.replace(base, autoscaling=dataclasses.replace(base.autoscaling, enabled=False))
    stage = synthesize(settings, tmp_path)
    stage.template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    stage.template.resource_count_is("AWS::ApplicationAutoScaling::ScalingPolicy", 0)
