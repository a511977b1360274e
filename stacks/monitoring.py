"""What an on-call engineer watches: a dashboard per endpoint, SLO alarms, and an encrypted alarm topic.

SageMaker reports ModelLatency and OverheadLatency in microseconds; the dashboard shows milliseconds and
the alarms compare microseconds. It publishes no instance-count metric, so the count is derived as
Invocations / InvocationsPerInstance (the latter is invocations divided by instances in service).

No alarm judges a percentile on fewer samples than CloudWatch's rule asks (stacks/sample_counts.py): the
SageMaker-side percentiles count only in minutes with enough invocations (``with_enough_samples``), and the
client-seen p99 is taken over a window that holds enough probe calls (``window_minutes``).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.client_probe import NAMESPACE as CLIENT_PATH_NAMESPACE
from stacks.client_probe import az_id
from stacks.sample_counts import min_samples, window_minutes
from stacks.settings import ClientProbeSettings, StageSettings

_MINUTE = Duration.minutes(1)
_PERCENTILES = ("p50", "p90", "p99")
# The SLO's percentile: p99 under latency_slo_ms.
SLO_PERCENTILE = "p99"


def with_enough_samples(
    expression: str,
    metrics: dict[str, cloudwatch.IMetric],
    *,
    samples: cloudwatch.Metric,
    statistic: str,
    label: str,
    period: Duration,
) -> cloudwatch.MathExpression:
    """``expression`` (over percentile ``statistic`` metrics) only in periods in which ``samples``, the
    SampleCount of the calls they describe, reaches ``min_samples(statistic)``; no datapoint otherwise.

    CloudWatch's IF drops a datapoint whose condition is false when no third argument is given ("IF(TS
    Comparison Operator S, scalar2 | metric2, scalar3 | metric3)": "an empty time series, if ... scalar3/metric3
    is omitted", https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html), so an
    alarm sees a missing datapoint, not a low-sample percentile."""
    inner = cloudwatch.MathExpression(expression=expression, using_metrics=metrics, period=period)
    return cloudwatch.MathExpression(
        expression=f"IF(samples >= {min_samples(statistic)}, value)",
        using_metrics={"samples": samples, "value": inner},
        label=label,
        period=period,
    )


def client_latency_window(probe: ClientProbeSettings, statistic: str = SLO_PERCENTILE) -> Duration:
    """The period over which the probe's calls number enough for ``statistic`` (a p99 needs 1,000 calls)."""
    return Duration.minutes(window_minutes(probe.burst_size, probe.schedule_minutes, statistic))


class EndpointMonitoring(Construct):
    """Dashboard, alarms (latency SLO, error rate, pinned at max capacity) and the topic they notify."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        variant_name: str,
        settings: StageSettings,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self._variant = {"EndpointName": endpoint_name, "VariantName": variant_name}
        # CloudWatch must be able to use the key to publish to the encrypted topic.
        encryption_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToTheEncryptedTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name="RTB inference alarms", master_key=encryption_key, enforce_ssl=True
        )
        self._endpoint_name = endpoint_name
        self._probe_period = Duration.minutes(settings.client_probe.schedule_minutes)
        self._latency_window = client_latency_window(settings.client_probe)
        self._median_window = client_latency_window(settings.client_probe, "p50")
        # The client path is watched only where the probe runs: one set of alarms per client AZ.
        self._probe_azs = list(settings.client_azs) if settings.client_probe.enabled else []
        self.alarms = [
            self._latency_alarm(settings.latency_slo_ms),
            self._error_rate_alarm(settings.error_rate_alarm),
            self._max_capacity_alarm(settings),
            *(alarm for az in self._probe_azs for alarm in self._client_path_alarms(az, settings.latency_slo_ms)),
        ]
        self.notify(self.alarms)
        self.dashboard = self._dashboard(settings)

    def notify(self, alarms: list[cloudwatch.Alarm]) -> None:
        """Send these alarms' ALARM and OK transitions to the topic."""
        action = cloudwatch_actions.SnsAction(self.topic)
        for alarm in alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

    def _metric(self, name: str, statistic: str, namespace: str = "AWS/SageMaker") -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace, metric_name=name, dimensions_map=self._variant, statistic=statistic, period=_MINUTE
        )

    def client_path_metric(
        self, az: str, name: str, statistic: str, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """A metric the probe in ``az`` publishes (handlers/client_probe.py), per its schedule unless given."""
        return cloudwatch.Metric(
            namespace=CLIENT_PATH_NAMESPACE,
            metric_name=name,
            dimensions_map={"EndpointName": self._endpoint_name, "AvailabilityZone": az},
            statistic=statistic,
            period=period or self._probe_period,
        )

    def _client_path_alarms(self, az: str, slo_ms: float) -> list[cloudwatch.Alarm]:
        """What the ad servers in ``az`` would see: slow answers, failed calls, a cross-AZ path, a silent probe."""
        suffix = az_id(az)
        every = f"every {self._probe_period.to_minutes()} min"

        def alarm(
            construct_id: str,
            metric: cloudwatch.Metric,
            threshold: float,
            description: str,
            *,
            datapoints: int = 3,
            missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
            comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            low_samples: str | None = None,
        ) -> cloudwatch.Alarm:
            return metric.create_alarm(
                self,
                f"{construct_id}{suffix}",
                alarm_description=f"{az}: {description}",
                threshold=threshold,
                evaluation_periods=5 if datapoints > 1 else 1,
                datapoints_to_alarm=datapoints,
                comparison_operator=comparison,
                treat_missing_data=missing,
                evaluate_low_sample_count_percentile=low_samples,
            )

        window = int(self._latency_window.to_minutes())
        return [
            # A p99 over a window that holds at least 1,000 probe calls (CloudWatch's rule), which CloudWatch
            # slides by a minute at every evaluation ("For any period of one minute or longer, an alarm is
            # evaluated every minute": https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
            # AlarmThatSendsEmail.html). A window that fell short (runs missing) leaves the state as it is: the
            # missing-probe alarm speaks for those runs.
            alarm(
                "ClientLatencyAlarm",
                self.client_path_metric(az, "ClientRoundTrip", SLO_PERCENTILE, self._latency_window),
                slo_ms,
                f"client-seen {SLO_PERCENTILE} round trip above the {slo_ms:g} ms SLO over the last {window} min of "
                f"probe runs (at least {min_samples(SLO_PERCENTILE)} calls, {every})",
                datapoints=1,
                low_samples="ignore",
            ),
            alarm(
                "ClientErrorsAlarm",
                self.client_path_metric(az, "ProbeErrors", "Sum"),
                0,
                "probe invocations failed (timeout, non-200 or an answer that does not decode) in 3 of 5 runs",
            ),
            alarm(
                "ClientCrossAzAlarm",
                self.client_path_metric(az, "CrossAzAnswers", "Maximum"),
                0,
                "the probe connected to an address outside this AZ's subnet: clients on this AZ's zonal DNS name "
                "cross AZs (check the RuntimeZonalDnsNames output and the runtime endpoint's subnets)",
                datapoints=1,
            ),
            alarm(
                "ClientProbeMissingAlarm",
                self.client_path_metric(az, "ProbeRequests", "SampleCount"),
                1,
                "no probe run reported in 3 of 5 periods: the client path is not being measured",
                missing=cloudwatch.TreatMissingData.BREACHING,
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            ),
        ]

    def _latency_ms(self, name: str, percentile: str) -> cloudwatch.MathExpression:
        metric_id = f"{name.lower()}_{percentile}"  # ids must be unique within one graph
        return cloudwatch.MathExpression(
            expression=f"{metric_id} / 1000",
            using_metrics={metric_id: self._metric(name, percentile)},
            label=f"{name} {percentile} (ms)",
            period=_MINUTE,
        )

    def _instances(self) -> cloudwatch.MathExpression:
        return cloudwatch.MathExpression(
            expression="IF(per > 0, calls / per, 0)",
            using_metrics={
                "calls": self._metric("Invocations", "Sum"),
                "per": self._metric("InvocationsPerInstance", "Sum"),
            },
            label="instances in service (derived)",
            period=_MINUTE,
        )

    def _latency_alarm(self, slo_ms: float) -> cloudwatch.Alarm:
        # p99 of model plus p99 of overhead: an upper bound of the p99 SageMaker adds, in microseconds. Every
        # invocation reports both, so ModelLatency's SampleCount is the calls behind each.
        p99 = SLO_PERCENTILE
        math = with_enough_samples(
            "model + overhead",
            {"model": self._metric("ModelLatency", p99), "overhead": self._metric("OverheadLatency", p99)},
            samples=self._metric("ModelLatency", "SampleCount"),
            statistic=p99,
            label=f"{p99} ModelLatency + {p99} OverheadLatency (us), minutes with {min_samples(p99)}+ calls",
            period=_MINUTE,
        )
        return self._three_of_five(
            "LatencySloAlarm",
            math,
            threshold=slo_ms * 1000,
            description=(
                f"{p99} of model + overhead latency above the {slo_ms:g} ms SLO in 3 of 5 minutes (minutes with "
                f"fewer than {min_samples(p99)} invocations are not judged: CloudWatch's low-sample rule)"
            ),
        )

    def _error_rate_alarm(self, max_rate: float) -> cloudwatch.Alarm:
        return self._three_of_five_alarm(
            "ErrorRateAlarm",
            "IF(calls > 0, errors / calls, 0)",
            {"errors": self._metric("Invocation5XXErrors", "Sum"), "calls": self._metric("Invocations", "Sum")},
            label="5XX share of invocations",
            threshold=max_rate,
            description=f"5XX errors above {max_rate:.2%} of invocations in 3 of 5 minutes",
        )

    def _three_of_five_alarm(
        self,
        construct_id: str,
        expression: str,
        metrics: dict[str, cloudwatch.IMetric],
        *,
        label: str,
        threshold: float,
        description: str,
    ) -> cloudwatch.Alarm:
        """Above the threshold in 3 of 5 one-minute periods: one slow minute is not an incident."""
        math = cloudwatch.MathExpression(expression=expression, using_metrics=metrics, label=label, period=_MINUTE)
        return self._three_of_five(construct_id, math, threshold=threshold, description=description)

    def _three_of_five(
        self, construct_id: str, math: cloudwatch.MathExpression, *, threshold: float, description: str
    ) -> cloudwatch.Alarm:
        return math.create_alarm(
            self,
            construct_id,
            alarm_description=description,
            threshold=threshold,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _max_capacity_alarm(self, settings: StageSettings) -> cloudwatch.Alarm:
        scaling = settings.autoscaling
        ceiling = scaling.max_capacity if scaling.enabled else settings.initial_instance_count
        minutes = settings.max_capacity_alarm_minutes
        return self._instances().create_alarm(
            self,
            "AtMaxCapacityAlarm",
            alarm_description=(
                f"{ceiling} instances (the most autoscaling may run) for {minutes} minutes: raise "
                "autoscaling.max_capacity or measure MAX_RPS again"
            ),
            threshold=ceiling,
            evaluation_periods=minutes,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _client_path_row(self, slo: cloudwatch.HorizontalAnnotation) -> list[cloudwatch.IWidget]:
        """Client-seen latency per AZ beside SageMaker's own p99, each percentile over a period that holds
        enough calls for CloudWatch's rule: the gap is the client path (PrivateLink, TLS, the network)."""
        p99_window = int(self._latency_window.to_minutes())
        p50_window = int(self._median_window.to_minutes())
        sagemaker_p99 = cloudwatch.MathExpression(
            expression="(model + overhead) / 1000",
            using_metrics={
                "model": self._metric("ModelLatency", SLO_PERCENTILE),
                "overhead": self._metric("OverheadLatency", SLO_PERCENTILE),
            },
            label=f"SageMaker-seen: {SLO_PERCENTILE} ModelLatency + {SLO_PERCENTILE} OverheadLatency (ms)",
            period=self._probe_period,
        )
        return [
            cloudwatch.GraphWidget(
                title=f"Client-seen latency (ms): p99 over {p99_window} min, p50 over {p50_window} min; SageMaker-seen",
                left=[
                    *(
                        self.client_path_metric(az, "ClientRoundTrip", SLO_PERCENTILE, self._latency_window).with_(
                            label=f"client-seen {SLO_PERCENTILE} in {az} ({p99_window} min)"
                        )
                        for az in self._probe_azs
                    ),
                    *(
                        self.client_path_metric(az, "ClientRoundTrip", "p50", self._median_window).with_(
                            label=f"client-seen p50 in {az} ({p50_window} min)"
                        )
                        for az in self._probe_azs
                    ),
                    sagemaker_p99,
                ],
                left_annotations=[slo],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Client path per AZ: probe errors and cross-AZ connections",
                left=[
                    self.client_path_metric(az, "ProbeErrors", "Sum").with_(label=f"probe errors in {az}")
                    for az in self._probe_azs
                ],
                right=[
                    self.client_path_metric(az, "CrossAzAnswers", "Maximum").with_(label=f"cross-AZ connection in {az}")
                    for az in self._probe_azs
                ],
                width=12,
            ),
        ]

    def _dashboard(self, settings: StageSettings) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        slo = cloudwatch.HorizontalAnnotation(value=settings.latency_slo_ms, label="SLO")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="ModelLatency (ms)",
                left=[self._latency_ms("ModelLatency", p) for p in _PERCENTILES],
                left_annotations=[slo],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="OverheadLatency (ms)",
                left=[self._latency_ms("OverheadLatency", p) for p in _PERCENTILES],
                left_annotations=[slo],
                width=12,
            ),
        )
        if self._probe_azs:
            dashboard.add_widgets(*self._client_path_row(slo))
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Invocations and errors (per minute)",
                left=[self._metric("Invocations", "Sum")],
                right=[self._metric("Invocation4XXErrors", "Sum"), self._metric("Invocation5XXErrors", "Sum")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Invocations per instance (per minute)",
                left=[self._metric("InvocationsPerInstance", "Sum")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=settings.autoscaling.invocations_per_instance_target, label="scaling target"
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Instances in service (derived) and concurrency",
                left=[self._instances()],
                right=[self._metric("ConcurrentRequestsPerModel", "Maximum")],
                width=8,
            ),
        )
        instance = "/aws/sagemaker/Endpoints"
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="CPU, memory and GPU (%)",
                left=[
                    self._metric("CPUUtilization", "Average", instance),
                    self._metric("MemoryUtilization", "Average", instance),
                    self._metric("GPUUtilization", "Average", instance),
                ],
                width=12,
            ),
            cloudwatch.SingleValueWidget(
                title="Instances in service now (derived)", metrics=[self._instances()], width=12
            ),
        )
        return dashboard
