"""One stage's deployable unit: network, runtime endpoint, model endpoint and autoscaling."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Environment, Fn, Stack
from constructs import Construct

from stacks.autoscaling import VariantAutoscaling
from stacks.caller_policy import CallerPolicy
from stacks.client_probe import ClientProbes
from stacks.encryption import EncryptionKey
from stacks.model_endpoint import InferenceEndpoint
from stacks.monitoring import EndpointMonitoring
from stacks.network import InferenceNetwork
from stacks.runtime_endpoint import RuntimeVpcEndpoint
from stacks.settings import StageSettings


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
            self, "RuntimeEndpoint", vpc=network.vpc, subnets=network.subnets, client_cidrs=settings.client_cidrs
        )
        inference = InferenceEndpoint(
            self, "Inference", settings=settings, vpc=network.vpc, subnets=network.subnets, encryption_key=key
        )
        callers = CallerPolicy(
            self, "CallerPolicy", endpoint_name=inference.endpoint_name, runtime_endpoint=runtime.endpoint
        )
        network.allow_s3_object_reads(inference.artifact_arns)
        if inference.capture is not None:
            network.allow_s3_object_writes([inference.capture.object_arns])
        if settings.autoscaling.enabled:
            VariantAutoscaling(
                self,
                "Autoscaling",
                endpoint=inference.endpoint,
                variant_name=inference.variant_name,
                settings=settings.autoscaling,
                latency_slo_ms=settings.latency_slo_ms,
            )

        monitoring = EndpointMonitoring(
            self,
            "Monitoring",
            endpoint_name=inference.endpoint_name,
            variant_name=inference.variant_name,
            settings=settings,
            encryption_key=key,
        )
        # On-call hears of a rollback too, not only SageMaker.
        monitoring.notify(inference.rollout.alarms)
        if settings.client_probe.enabled:
            ClientProbes(
                self,
                "ClientProbes",
                settings=settings,
                endpoint_name=inference.endpoint_name,
                subnets=list(network.subnets.subnets or []),
                client_security_group=runtime.client_security_group,
                caller_policy=callers.policy,
                vpc=network.vpc,
                encryption_key=key,
            )

        CfnOutput(self, "EndpointName", value=inference.endpoint.attr_endpoint_name)
        CfnOutput(self, "AlarmTopicArn", value=monitoring.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=monitoring.dashboard.dashboard_name)
        CfnOutput(self, "RuntimeVpcEndpointId", value=runtime.endpoint.vpc_endpoint_id)
        # Entries are "hosted-zone-id:dns-name"; the first is the regional name, then one per AZ.
        CfnOutput(
            self,
            "RuntimeVpcEndpointDnsName",
            value=Fn.select(1, Fn.split(":", Fn.select(0, runtime.endpoint.vpc_endpoint_dns_entries))),
        )
        CfnOutput(self, "RuntimeVpcEndpointDnsEntries", value=Fn.join(",", runtime.endpoint.vpc_endpoint_dns_entries))
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
