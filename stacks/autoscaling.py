"""Application Auto Scaling of the endpoint variant's instance count."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.settings import AutoscalingSettings

_SERVICE_LINKED_ROLE = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


class VariantAutoscaling(Construct):
    """Target tracking on invocations per instance, and optionally on high-resolution concurrency."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint: sagemaker.CfnEndpoint,
        variant_name: str,
        settings: AutoscalingSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # SageMaker endpoints scale through this service-linked role; naming it lets Application
        # Auto Scaling create it on first use instead of CDK minting a role that is never used.
        service_role = iam.Role.from_role_arn(
            self,
            "ServiceLinkedRole",
            stack.format_arn(service="iam", region="", resource="role", resource_name=_SERVICE_LINKED_ROLE),
            mutable=False,
        )
        self.target = appscaling.ScalableTarget(
            self,
            "Target",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{endpoint.attr_endpoint_name}/variant/{variant_name}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=settings.min_capacity,
            max_capacity=settings.max_capacity,
            role=service_role,
        )
        scale_in = Duration.seconds(settings.scale_in_cooldown_seconds)
        scale_out = Duration.seconds(settings.scale_out_cooldown_seconds)
        self.target.scale_to_track_metric(
            "InvocationsPerInstance",
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            target_value=settings.invocations_per_instance_target,
            scale_in_cooldown=scale_in,
            scale_out_cooldown=scale_out,
        )
        if settings.concurrency_target_per_instance is not None:
            # Reacts within seconds to bursts; scale-in happens only when both policies agree.
            self.target.scale_to_track_metric(
                "ConcurrentRequestsHighResolution",
                predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_CONCURRENT_REQUESTS_PER_MODEL_HIGH_RESOLUTION,
                target_value=settings.concurrency_target_per_instance,
                scale_in_cooldown=scale_in,
                scale_out_cooldown=scale_out,
            )
