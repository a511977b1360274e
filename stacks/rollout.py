"""Deployment guardrails: endpoint updates roll out blue/green (a new fleet beside the old one, then traffic shifted
to it) or rolling (batches of new instances taking the old ones' place), and roll back on the new fleet's alarms.

The alarms watch the new fleet only: SageMaker publishes its metrics with the new EndpointConfigName
as a dimension once it takes traffic, so an old fleet that already errs does not block every rollout.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.monitoring import SLO_PERCENTILE, with_enough_samples
from stacks.sample_counts import min_samples
from stacks.settings import RolloutSettings, StageSettings
from stacks.settings_checks import rollback_batch_percent

_MINUTE = Duration.minutes(1)


class GuardedRollout(Construct):
    """The rollback alarms on the new fleet and the endpoint's deployment config (blue/green or rolling)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        variant_name: str,
        endpoint_config_name: str,
        settings: StageSettings,
        execution_role: iam.IRole,
        first_shard: GuardedRollout | None = None,
    ) -> None:
        """``first_shard``: the first shard's guard, whose policy then lets SageMaker read this one's alarms too."""
        super().__init__(scope, construct_id)
        self._rollout = settings.rollout
        self._new_fleet = {
            "EndpointName": endpoint_name,
            "VariantName": variant_name,
            "EndpointConfigName": endpoint_config_name,
        }
        # With shards, each alarm's description names its shard's endpoint.
        self._named = f"{endpoint_name}: " if settings.shards > 1 else ""
        self.alarms: list[cloudwatch.Alarm] = []
        self.policy: iam.ManagedPolicy | None = None
        self.read_alarms: iam.PolicyStatement | None = None
        if not self._rollout.auto_rollback:
            return
        self.alarms = [
            self._alarm(
                "NewFleetErrorRateAlarm",
                # Average of a 0/1-per-request count is the share of requests answered 5XX.
                self._metric("Invocation5XXErrors", "Average"),
                threshold=settings.error_rate_alarm,
                description=f"Rollback: the new fleet answers more than {settings.error_rate_alarm:.2%} 5XX",
            ),
            self._alarm(
                "NewFleetLatencyAlarm",
                # Microseconds; only minutes in which the new fleet answered enough calls for a p99.
                with_enough_samples(
                    "latency",
                    {"latency": self._metric("ModelLatency", SLO_PERCENTILE)},
                    samples=self._metric("ModelLatency", "SampleCount"),
                    statistic=SLO_PERCENTILE,
                    label=f"new fleet's {SLO_PERCENTILE} ModelLatency (us), minutes with "
                    f"{min_samples(SLO_PERCENTILE)}+ calls",
                    period=_MINUTE,
                ),
                threshold=settings.latency_slo_ms * 1000,
                description=(
                    f"Rollback: the new fleet's {SLO_PERCENTILE} ModelLatency is above {settings.latency_slo_ms:g} ms "
                    f"(minutes with fewer than {min_samples(SLO_PERCENTILE)} calls are not judged)"
                ),
            ),
        ]
        arns = [self._alarm_arn(alarm) for alarm in self.alarms]
        if first_shard is not None and first_shard.read_alarms is not None:
            first_shard.read_alarms.add_resources(*arns)
            self.policy, self.read_alarms = first_shard.policy, first_shard.read_alarms
            return
        # SageMaker reads the alarms with the execution role. A policy of its own, not the model's:
        # the alarms name the endpoint config, which names the model, which waits for its policy.
        self.read_alarms = iam.PolicyStatement(
            sid="ReadRollbackAlarms", actions=["cloudwatch:DescribeAlarms"], resources=arns
        )
        self.policy = iam.ManagedPolicy(
            self, "ReadRollbackAlarms", roles=[execution_role], statements=[self.read_alarms]
        )

    def _alarm_arn(self, alarm: cloudwatch.Alarm) -> str:
        # The same ARN as GetAtt Arn, built from the name: moto (make rehearse) skips alarms and cannot
        # resolve their attributes, only their Ref.
        return Stack.of(self).format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=alarm.alarm_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _metric(self, name: str, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name=name,
            dimensions_map=self._new_fleet,
            statistic=statistic,
            period=_MINUTE,
        )

    def _alarm(
        self, construct_id: str, metric: cloudwatch.IMetric, *, threshold: float, description: str
    ) -> cloudwatch.Alarm:
        # Two minutes in a row: quick enough to stop a canary within one baking period.
        return cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            alarm_description=self._named + description,
            threshold=threshold,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def deployment_config(self) -> sagemaker.CfnEndpoint.DeploymentConfigProperty:
        rollout = self._rollout
        rollback = (
            sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name) for alarm in self.alarms]
            )
            if self.alarms
            else None
        )
        if rollout.strategy == "rolling":
            return sagemaker.CfnEndpoint.DeploymentConfigProperty(
                auto_rollback_configuration=rollback, rolling_update_policy=_rolling_update(rollout)
            )
        return sagemaker.CfnEndpoint.DeploymentConfigProperty(
            auto_rollback_configuration=rollback,
            blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                traffic_routing_configuration=_traffic_routing(rollout),
                termination_wait_in_seconds=rollout.termination_wait_seconds,
                maximum_execution_timeout_in_seconds=rollout.max_execution_timeout_seconds,
            ),
        )


def _traffic_routing(rollout: RolloutSettings) -> sagemaker.CfnEndpoint.TrafficRoutingConfigProperty:
    step = sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=rollout.step_percent)
    return sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
        type=rollout.traffic_shifting,
        wait_interval_in_seconds=rollout.wait_interval_seconds,
        canary_size=step if rollout.traffic_shifting == "CANARY" else None,
        linear_step_size=step if rollout.traffic_shifting == "LINEAR" else None,
    )


def _rolling_update(rollout: RolloutSettings) -> sagemaker.CfnEndpoint.RollingUpdatePolicyProperty:
    """Batches of the variant's instances: each is started, takes traffic, bakes while the alarms watch, and then as
    many old instances go; a rollback brings old ones back in batches too, so neither way needs a second fleet. What
    SageMaker's guide recommends "if you have large models or a large endpoint with many instances"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-rolling.html)."""

    def share(percent: int) -> sagemaker.CfnEndpoint.CapacitySizeProperty:
        # A share, not a count: autoscaling moves the count, and the batch follows it.
        return sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=percent)

    return sagemaker.CfnEndpoint.RollingUpdatePolicyProperty(
        maximum_batch_size=share(rollout.rolling_batch_percent),
        wait_interval_in_seconds=rollout.wait_interval_seconds,
        maximum_execution_timeout_in_seconds=rollout.max_execution_timeout_seconds,
        # Left out, SageMaker rolls back 100% at once: the whole old fleet again beside the new one.
        rollback_maximum_batch_size=share(rollback_batch_percent(rollout)),
    )
