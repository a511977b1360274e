"""One stage's deployable unit: network, runtime endpoint, model endpoints (shards) and their autoscaling."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from stacks.autoscaling import VariantAutoscaling
from stacks.caller_policy import CallerPolicy
from stacks.client_probe import ClientProbes
from stacks.encryption import EncryptionKey
from stacks.handlers.zonal_dns import az_attribute
from stacks.model_endpoint import InferenceEndpoint
from stacks.monitoring import EndpointMonitoring
from stacks.network import InferenceNetwork
from stacks.runtime_endpoint import RuntimeVpcEndpoint
from stacks.settings import StageSettings
from stacks.zonal_dns import RuntimeZonalDnsNames


class InferenceStack(Stack):
    """Private, low-latency SageMaker real-time inference for one stage. Only wires constructs."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: StageSettings, **kwargs: Any) -> None:
        self._client_azs = list(settings.client_azs)
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=settings.account, region=settings.region),
            description=f"RTB inference kit: private real-time XGBoost endpoint ({settings.name})",
            **kwargs,
        )
        key = EncryptionKey(self, "Encryption").key
        network = InferenceNetwork(self, "Network", settings=settings, encryption_key=key)
        runtime = RuntimeVpcEndpoint(
            self,
            "RuntimeEndpoint",
            vpc=network.vpc,
            subnets=network.subnets,
            client_cidrs=settings.client_cidrs,
            existing=settings.runtime_endpoint,
        )
        client_azs = list(settings.client_azs) or [subnet.availability_zone for subnet in network.subnets.subnets or []]
        zonal = RuntimeZonalDnsNames(
            self,
            "ZonalDnsNames",
            vpc_endpoint_id=runtime.endpoint.vpc_endpoint_id,
            availability_zones=client_azs,
            encryption_key=key,
            log_retention_days=settings.log_retention_days,
        )
        inference = InferenceEndpoint(
            self, "Inference", settings=settings, vpc=network.vpc, subnets=network.subnets, encryption_key=key
        )
        callers = CallerPolicy(
            self,
            "CallerPolicy",
            endpoint_names=[shard.name for shard in inference.shards],
            runtime_endpoint=runtime.endpoint,
        )
        network.allow_s3_object_reads(inference.artifact_arns)
        if inference.capture is not None:
            network.allow_s3_object_writes([inference.capture.object_arns])
        if settings.autoscaling.enabled:
            # Each shard scales on its own, between the same bounds: the counts in the settings are per shard.
            for index, shard in enumerate(inference.shards):
                VariantAutoscaling(
                    self if index == 0 else Construct(self, f"Shard{index}"),
                    "Autoscaling",
                    endpoint=shard.endpoint,
                    variant_name=inference.variant_name,
                    settings=settings.autoscaling,
                    latency_slo_ms=settings.latency_slo_ms,
                )

        monitoring = EndpointMonitoring(
            self,
            "Monitoring",
            endpoint_names=[shard.name for shard in inference.shards],
            variant_name=inference.variant_name,
            settings=settings,
            encryption_key=key,
        )
        # On-call hears of a rollback too, not only SageMaker.
        for shard in inference.shards:
            monitoring.notify(shard.rollout.alarms)
        probes = None
        if settings.client_probe.enabled:
            # The probe measures the client path (its AZ's interface of the runtime endpoint, DNS, TLS, SigV4, the
            # caller policy), which every shard shares, on shard 0; each shard's own latency and errors are
            # SageMaker's metrics, alarmed per shard above (docs/settings.md#shards).
            probes = ClientProbes(
                self,
                "ClientProbes",
                settings=settings,
                endpoint_name=inference.endpoint_name,
                subnets=list(network.subnets.subnets or []),
                client_security_group=runtime.client_security_group,
                zonal_dns_names=zonal.json,
                caller_policy=callers.policy,
                vpc=network.vpc,
                encryption_key=key,
            )

        if inference.compilation is not None:
            # Neo's documented source for Inferentia is a model exported by PyTorch 1.9 or earlier; the kit's is
            # traced by a newer torch (docs/profiles.md). The compile is the first thing the deploy proves: the
            # network, the runtime endpoint and everything after them wait for it, so a model Neo refuses fails
            # the first deploy in minutes, before anything billed by the hour exists.
            waiting = [network, runtime, zonal, callers, monitoring, *([probes] if probes else [])]
            for construct in waiting:
                construct.node.add_dependency(inference.compilation.resource)

        CfnOutput(self, "EndpointName", value=inference.endpoint.attr_endpoint_name)
        if len(inference.shards) > 1:
            # Every shard's name, shard 0 first (a JSON list): clients read it when it is there, else EndpointName.
            # Only with shards, so that a one-endpoint stage's template stays as it was.
            CfnOutput(
                self,
                "EndpointNames",
                value=self.to_json_string([shard.endpoint.attr_endpoint_name for shard in inference.shards]),
                description="Every shard's endpoint name, shard 0 first (JSON list)",
            )
        CfnOutput(self, "AlarmTopicArn", value=monitoring.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=monitoring.dashboard.dashboard_name)
        CfnOutput(self, "RuntimeVpcEndpointId", value=runtime.endpoint.vpc_endpoint_id)
        # The endpoint-specific regional name answers with every AZ's interface, like private DNS.
        CfnOutput(self, "RuntimeVpcEndpointDnsName", value=zonal.regional)
        # What ad servers connect to, by AZ (rtb_client.runtime_endpoint_url reads the JSON): each AZ's own
        # interface, so the connection stays in the caller's AZ. One export per AZ for the ad servers' stacks.
        CfnOutput(self, "RuntimeZonalDnsNames", value=zonal.json)
        for az in settings.client_azs:
            CfnOutput(
                self,
                f"RuntimeZonalDnsName{az_attribute(az)}",
                value=zonal.name_for(az),
                description=f"The runtime endpoint's zonal DNS name in {az}",
                export_name=f"{self.stack_name}-RuntimeZonalDnsName-{az}",
            )
        CfnOutput(
            self,
            "ClientSecurityGroupId",
            value=runtime.client_security_group.security_group_id,
            export_name=f"{self.stack_name}-ClientSecurityGroupId",
        )
        # For the ad servers' instance profile or task role, next to the client security group.
        CfnOutput(
            self,
            "CallerPolicyArn",
            value=callers.policy.managed_policy_arn,
            export_name=f"{self.stack_name}-CallerPolicyArn",
        )

    @property
    def availability_zones(self) -> list[str]:
        """The client AZs, known at synth: no AZ lookup, so synth needs no credentials."""
        return self._client_azs or super().availability_zones
