"""Application Auto Scaling of the endpoint variant's instance count."""

from __future__ import annotations

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.monitoring import SLO_PERCENTILE, with_enough_samples
from stacks.sample_counts import min_samples
from stacks.settings import AutoscalingSettings

_SERVICE_LINKED_ROLE = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
# (multiple of the SLO, instances added): 1 to 1.5x the SLO adds one instance; beyond 1.5x the fleet is
# well past its latency knee, where queueing grows fast, so add two at once rather than one per cooldown.
_LATENCY_STEPS = ((1.0, 1), (1.5, 2))
# Two breaching minutes in a row: one slow minute (a GC pause, a cold connection pool) is not a trend.
_LATENCY_EVALUATION_MINUTES = 2
# About the time a new ml.c5 instance takes to download the model and pass its health check: scaling out
# again before the last step's instances serve would read the same latency and overshoot.
_LATENCY_STEP_COOLDOWN = Duration.minutes(5)


class VariantAutoscaling(Construct):
    """Target tracking on invocations per instance; optional concurrency and latency policies; scheduled actions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint: sagemaker.CfnEndpoint,
        variant_name: str,
        settings: AutoscalingSettings,
        latency_slo_ms: float,
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
        if settings.latency_step_scaling:
            self._scale_out_on_latency(endpoint.attr_endpoint_name, variant_name, latency_slo_ms)
        for action in settings.scheduled:
            # The cron runs in the stage's time zone, so the floor follows the local day through DST changes.
            self.target.scale_on_schedule(
                action.name,
                schedule=appscaling.Schedule.expression(action.cron),
                min_capacity=action.min_capacity,
                max_capacity=action.max_capacity,
                time_zone=TimeZone.of(settings.time_zone),
            )

    def _scale_out_on_latency(self, endpoint_name: str, variant_name: str, slo_ms: float) -> None:
        """Step scaling on the variant's p99 ModelLatency (microseconds) against the SLO, in minutes with enough
        calls for a p99 (a quiet minute gives no datapoint, and no datapoints leave the alarm in
        INSUFFICIENT_DATA, which scales nothing)."""

        def model_latency(statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="ModelLatency",
                dimensions_map={"EndpointName": endpoint_name, "VariantName": variant_name},
                statistic=statistic,
                period=Duration.minutes(1),
            )

        latency = with_enough_samples(
            "latency",
            {"latency": model_latency(SLO_PERCENTILE)},
            samples=model_latency("SampleCount"),
            statistic=SLO_PERCENTILE,
            label=f"{SLO_PERCENTILE} ModelLatency (us), minutes with {min_samples(SLO_PERCENTILE)}+ calls",
            period=Duration.minutes(1),
        )
        slo_us = slo_ms * 1000
        # Scale-out only: the interval below the SLO changes nothing, so CDK creates no lower alarm and
        # scale-in stays with target tracking, which removes instances only when traffic allows it.
        steps = [appscaling.ScalingInterval(upper=slo_us, change=0)]
        steps += [appscaling.ScalingInterval(lower=slo_us * factor, change=change) for factor, change in _LATENCY_STEPS]
        self.target.scale_on_metric(
            "LatencyAboveSlo",
            metric=latency,
            scaling_steps=steps,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=_LATENCY_STEP_COOLDOWN,
            evaluation_periods=_LATENCY_EVALUATION_MINUTES,
            metric_aggregation_type=appscaling.MetricAggregationType.AVERAGE,
        )
