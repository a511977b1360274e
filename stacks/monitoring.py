"""What an on-call engineer watches: a dashboard, SLO alarms per endpoint (shard), and an encrypted alarm topic.

SageMaker reports ModelLatency and OverheadLatency in microseconds; the dashboard shows milliseconds and
the alarms compare microseconds. It publishes no instance-count metric, so the count is derived as
Invocations / InvocationsPerInstance (the latter is invocations divided by instances in service).

No alarm judges a percentile on fewer samples than CloudWatch's rule asks (stacks/sample_counts.py): the
SageMaker-side percentiles count only in minutes with enough invocations (``with_enough_samples``), and the
client-seen p99 is taken over a window that holds enough probe calls (``window_minutes``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    """Dashboard, alarms (latency SLO, error rate, pinned at max capacity) per shard, and the topic they notify.

    Shard 0's alarms sit here, as a one-endpoint stage's always did; shard k's in "Shard<k>". The dashboard shows
    each shard's rows in turn; the client path (probed on shard 0, which shares it with every shard) once."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_names: Sequence[str],
        variant_name: str,
        settings: StageSettings,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        endpoint_name = endpoint_names[0]
        self._endpoint_names = list(endpoint_names)
        self._variant_name = variant_name
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
            *self._shard_alarms(self, endpoint_name, settings),
            *(alarm for az in self._probe_azs for alarm in self._client_path_alarms(az, settings.latency_slo_ms)),
        ]
        for index, name in enumerate(self._endpoint_names[1:], start=1):
            self.alarms.extend(self._shard_alarms(Construct(self, f"Shard{index}"), name, settings))
        self.notify(self.alarms)
        self.dashboard = self._dashboard(settings)

    def notify(self, alarms: list[cloudwatch.Alarm]) -> None:
        """Send these alarms' ALARM and OK transitions to the topic."""
        action = cloudwatch_actions.SnsAction(self.topic)
        for alarm in alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

    def _metric(
        self, name: str, statistic: str, namespace: str = "AWS/SageMaker", endpoint: str | None = None
    ) -> cloudwatch.Metric:
        """A metric of ``endpoint``'s variant (shard 0's unless given)."""
        dimensions = {"EndpointName": endpoint or self._endpoint_name, "VariantName": self._variant_name}
        return cloudwatch.Metric(
            namespace=namespace, metric_name=name, dimensions_map=dimensions, statistic=statistic, period=_MINUTE
        )

    def _shard_alarms(self, scope: Construct, endpoint: str, settings: StageSettings) -> list[cloudwatch.Alarm]:
        """The SLO, error-rate and capacity alarms of one shard's endpoint; with shards, each names its endpoint."""
        named = "" if len(self._endpoint_names) == 1 else f"{endpoint}: "
        return [
            self._latency_alarm(scope, endpoint, settings.latency_slo_ms, named),
            self._error_rate_alarm(scope, endpoint, settings.error_rate_alarm, named),
            self._max_capacity_alarm(scope, endpoint, settings, named),
        ]

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

    def _latency_ms(self, name: str, percentile: str, endpoint: str) -> cloudwatch.MathExpression:
        metric_id = f"{name.lower()}_{percentile}"  # ids must be unique within one graph
        return cloudwatch.MathExpression(
            expression=f"{metric_id} / 1000",
            using_metrics={metric_id: self._metric(name, percentile, endpoint=endpoint)},
            label=f"{name} {percentile} (ms)",
            period=_MINUTE,
        )

    def _instances(self, endpoint: str) -> cloudwatch.MathExpression:
        return cloudwatch.MathExpression(
            expression="IF(per > 0, calls / per, 0)",
            using_metrics={
                "calls": self._metric("Invocations", "Sum", endpoint=endpoint),
                "per": self._metric("InvocationsPerInstance", "Sum", endpoint=endpoint),
            },
            label="instances in service (derived)",
            period=_MINUTE,
        )

    def _latency_alarm(self, scope: Construct, endpoint: str, slo_ms: float, named: str) -> cloudwatch.Alarm:
        # p99 of model plus p99 of overhead: an upper bound of the p99 SageMaker adds, in microseconds. Every
        # invocation reports both, so ModelLatency's SampleCount is the calls behind each.
        p99 = SLO_PERCENTILE
        metric = self._shard_metric(endpoint)
        math = with_enough_samples(
            "model + overhead",
            {"model": metric("ModelLatency", p99), "overhead": metric("OverheadLatency", p99)},
            samples=metric("ModelLatency", "SampleCount"),
            statistic=p99,
            label=f"{p99} ModelLatency + {p99} OverheadLatency (us), minutes with {min_samples(p99)}+ calls",
            period=_MINUTE,
        )
        return self._three_of_five(
            scope,
            "LatencySloAlarm",
            math,
            threshold=slo_ms * 1000,
            description=(
                f"{named}{p99} of model + overhead latency above the {slo_ms:g} ms SLO in 3 of 5 minutes (minutes "
                f"with fewer than {min_samples(p99)} invocations are not judged: CloudWatch's low-sample rule)"
            ),
        )

    def _shard_metric(self, endpoint: str) -> Callable[[str, str], cloudwatch.Metric]:
        return lambda name, statistic: self._metric(name, statistic, endpoint=endpoint)

    def _error_rate_alarm(self, scope: Construct, endpoint: str, max_rate: float, named: str) -> cloudwatch.Alarm:
        metric = self._shard_metric(endpoint)
        return self._three_of_five_alarm(
            scope,
            "ErrorRateAlarm",
            "IF(calls > 0, errors / calls, 0)",
            {"errors": metric("Invocation5XXErrors", "Sum"), "calls": metric("Invocations", "Sum")},
            label="5XX share of invocations",
            threshold=max_rate,
            description=f"{named}5XX errors above {max_rate:.2%} of invocations in 3 of 5 minutes",
        )

    def _three_of_five_alarm(
        self,
        scope: Construct,
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
        return self._three_of_five(scope, construct_id, math, threshold=threshold, description=description)

    def _three_of_five(
        self,
        scope: Construct,
        construct_id: str,
        math: cloudwatch.MathExpression,
        *,
        threshold: float,
        description: str,
    ) -> cloudwatch.Alarm:
        return math.create_alarm(
            scope,
            construct_id,
            alarm_description=description,
            threshold=threshold,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _max_capacity_alarm(
        self, scope: Construct, endpoint: str, settings: StageSettings, named: str
    ) -> cloudwatch.Alarm:
        scaling = settings.autoscaling
        ceiling = scaling.max_capacity if scaling.enabled else settings.initial_instance_count
        minutes = settings.max_capacity_alarm_minutes
        more = " or add a shard" if named else ""
        return self._instances(endpoint).create_alarm(
            scope,
            "AtMaxCapacityAlarm",
            alarm_description=(
                f"{named}{ceiling} instances (the most autoscaling may run) for {minutes} minutes: raise "
                f"autoscaling.max_capacity{more} or measure MAX_RPS again"
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
        for index, endpoint in enumerate(self._endpoint_names):
            self._shard_rows(dashboard, endpoint, settings, slo, client_path=index == 0 and bool(self._probe_azs))
        return dashboard

    def _shard_rows(
        self,
        dashboard: cloudwatch.Dashboard,
        endpoint: str,
        settings: StageSettings,
        slo: cloudwatch.HorizontalAnnotation,
        *,
        client_path: bool,
    ) -> None:
        """One shard's rows: latency, traffic and capacity, resources; each title names the shard's endpoint when
        there are several. The client path's row follows the latency row of the shard the probe calls."""
        named = "" if len(self._endpoint_names) == 1 else f"{endpoint}: "
        metric = self._shard_metric(endpoint)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{named}ModelLatency (ms)",
                left=[self._latency_ms("ModelLatency", p, endpoint) for p in _PERCENTILES],
                left_annotations=[slo],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title=f"{named}OverheadLatency (ms)",
                left=[self._latency_ms("OverheadLatency", p, endpoint) for p in _PERCENTILES],
                left_annotations=[slo],
                width=12,
            ),
        )
        if client_path:
            dashboard.add_widgets(*self._client_path_row(slo))
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{named}Invocations and errors (per minute)",
                left=[metric("Invocations", "Sum")],
                right=[metric("Invocation4XXErrors", "Sum"), metric("Invocation5XXErrors", "Sum")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{named}Invocations per instance (per minute)",
                left=[metric("InvocationsPerInstance", "Sum")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=settings.autoscaling.invocations_per_instance_target, label="scaling target"
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{named}Instances in service (derived) and concurrency",
                left=[self._instances(endpoint)],
                right=[metric("ConcurrentRequestsPerModel", "Maximum")],
                width=8,
            ),
        )
        instance = "/aws/sagemaker/Endpoints"
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{named}CPU, memory and GPU (%)",
                left=[
                    self._metric("CPUUtilization", "Average", instance, endpoint),
                    self._metric("MemoryUtilization", "Average", instance, endpoint),
                    self._metric("GPUUtilization", "Average", instance, endpoint),
                ],
                width=12,
            ),
            cloudwatch.SingleValueWidget(
                title=f"{named}Instances in service now (derived)", metrics=[self._instances(endpoint)], width=12
            ),
        )
