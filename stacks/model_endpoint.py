"""The model artifact, its execution role, and each shard's SageMaker Model, EndpointConfig and Endpoint."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Annotations, ArnFormat, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.compilation import NeoCompilation
from stacks.compliance import nag_arn
from stacks.container_image import resolve_image
from stacks.data_capture import CaptureBucket
from stacks.rollout import GuardedRollout
from stacks.settings import REPO_ROOT, StageSettings
from stacks.teardown import NetworkInterfaceCleanup

VARIANT_NAME = "AllTraffic"
SHADOW_VARIANT_NAME = "Shadow"
HTTPS = ec2.Port.tcp(443)


@dataclass(frozen=True)
class EndpointShard:
    """One of a stage's identical endpoints, with the resources that are its own."""

    name: str
    model: sagemaker.CfnModel
    endpoint_config: sagemaker.CfnEndpointConfig
    rollout: GuardedRollout
    endpoint: sagemaker.CfnEndpoint


class InferenceEndpoint(Construct):
    """The stage's real-time endpoints (one per shard, shard 0's attributes also here) serving the model with the
    profile's container, inside the VPC."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.artifact = s3_assets.Asset(self, "ModelArtifact", path=str(settings.artifact_path))
        artifacts = [self.artifact]
        shadow_artifact = None
        if settings.shadow is not None:
            shadow_artifact = s3_assets.Asset(
                self, "ShadowArtifact", path=str(REPO_ROOT / settings.shadow.model_artifact)
            )
            artifacts.append(shadow_artifact)
        self.artifact_arns = [artifact.bucket.arn_for_objects(artifact.s3_object_key) for artifact in artifacts]
        profile = settings.serving
        image = resolve_image(self, profile=profile, version=settings.container_version, region=settings.region)
        model_data_url = self.artifact.s3_object_url
        self.compilation: NeoCompilation | None = None
        if profile.compiled:
            # The model serves what Neo compiles from the traced artifact, not the artifact itself.
            self.compilation = NeoCompilation(
                self,
                "Compilation",
                traced=self.artifact,
                neo=settings.artifact.manifest["neo"],
                encryption_key=encryption_key,
                log_retention_days=settings.log_retention_days,
            )
            model_data_url = self.compilation.model_data_url
            self.artifact_arns = [self.compilation.compiled_objects]

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="SageMaker model instances: no inbound; HTTPS out for the model download",
            allow_all_outbound=False,
        )
        # In the kit's VPC the subnets route only inside the VPC and to the S3 gateway endpoint, which
        # admits the artifact alone; in an existing VPC, to whatever S3 path it has. The S3 prefix
        # list id, the narrower peer, would need an account lookup at synth. The container itself is
        # network-isolated: this path serves SageMaker's download of the artifact.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "Model artifact download from S3")

        self.capture: CaptureBucket | None = None
        if settings.data_capture.enabled:
            self.capture = CaptureBucket(
                self, "DataCapture", settings=settings.data_capture, encryption_key=encryption_key
            )
        self._key_arn = encryption_key.key_arn
        selected = vpc.select_subnets(subnets=subnets.subnets)
        self.role, self.execution_policy = self._execution_role(
            vpc,
            selected.subnets,
            image.repository_arn,
            encryption_key if settings.kms_encryption else None,
            self.capture.write_statements() if self.capture is not None else [],
        )
        if self.capture is not None:
            self.capture.acknowledge_writes(self.execution_policy)
        if self.compilation is not None:
            self.compilation.acknowledge_reads(self.execution_policy)
        self.cleanup = NetworkInterfaceCleanup(
            self,
            "NetworkInterfaceCleanup",
            vpc=vpc,
            security_group=self.security_group,
            encryption_key=encryption_key,
            log_retention_days=settings.log_retention_days,
            # SageMaker releases its interfaces with the execution role: keep it until they are gone.
            delete_after=[*selected.subnets, self.role, self.execution_policy],
        )
        self._vpc_config = sagemaker.CfnModel.VpcConfigProperty(
            security_group_ids=[self.security_group.security_group_id], subnets=selected.subnet_ids
        )
        self._image_uri = image.uri
        self.variant_name = VARIANT_NAME
        # One identical endpoint per shard. Shard 0's constructs sit here, as a one-endpoint stage's always did, so
        # its logical ids (and a one-shard stage's template) stay as they were; shard k's sit in "Shard<k>".
        self.shards: list[EndpointShard] = []
        for index, name in enumerate(settings.endpoint_names):
            scope = self if index == 0 else Construct(self, f"Shard{index}")
            shard = self._shard(scope, settings, name, model_data_url, shadow_artifact)
            if self.shards:
                # Shard by shard: CloudFormation updates (and creates) this endpoint only once the one before it is
                # done, so a shard whose update fails and rolls back stops the stack update before the next shard
                # starts, and the shards not yet updated keep serving the old model ("Override default
                # parallelism when creating, updating, or deleting resources",
                # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html).
                shard.endpoint.add_resource_dependency(self.shards[-1].endpoint)
            self.shards.append(shard)
        first = self.shards[0]
        self.model, self.endpoint_config, self.endpoint = first.model, first.endpoint_config, first.endpoint
        self.rollout, self.endpoint_name = first.rollout, first.name
        if not profile.guardrails:
            Annotations.of(self).add_warning_v2(
                "rtb:NoDeploymentGuardrails",
                f"the {profile.name} profile's instances ({settings.instance_type}) have no SageMaker deployment "
                "guardrails: endpoint updates shift all traffic at once, without canary steps or automatic "
                "rollback (the rollback alarms still notify the alarm topic)",
            )

    def _model(
        self, scope: Construct, construct_id: str, data_url: str, environment: dict[str, str]
    ) -> sagemaker.CfnModel:
        created = sagemaker.CfnModel(
            scope,
            construct_id,
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self._image_uri,
                model_data_url=data_url,
                mode="SingleModel",
                environment=environment or None,
            ),
            vpc_config=self._vpc_config,
            enable_network_isolation=True,
        )
        # SageMaker uses the role as soon as the model exists; its policy must be attached first.
        # Deleted before the interface cleanup runs (stacks/teardown.py).
        created.node.add_dependency(self.execution_policy, self.cleanup.resource)
        return created

    def _shard(
        self,
        scope: Construct,
        settings: StageSettings,
        name: str,
        model_data_url: str,
        shadow_artifact: s3_assets.Asset | None,
    ) -> EndpointShard:
        """One shard's model (and shadow model), endpoint config, rollout guard and endpoint, in ``scope``."""
        profile = settings.serving
        environment = dict(profile.environment)
        model = self._model(scope, "Model", model_data_url, environment)
        endpoint_config = sagemaker.CfnEndpointConfig(
            scope,
            "EndpointConfig",
            production_variants=[
                self._variant(settings, VARIANT_NAME, model, settings.instance_type, settings.initial_instance_count)
            ],
            shadow_production_variants=(
                [
                    self._variant(
                        settings,
                        SHADOW_VARIANT_NAME,
                        self._model(scope, "ShadowModel", shadow_artifact.s3_object_url, environment),
                        settings.shadow.instance_type or settings.instance_type,
                        settings.shadow.instance_count,
                        # Relative to the production variant's weight of 1: the share of requests copied.
                        weight=settings.shadow.sampling_percent / 100,
                    )
                ]
                if settings.shadow is not None and shadow_artifact is not None
                else None
            ),
            data_capture_config=(
                self.capture.config(content_type=profile.content_type) if self.capture is not None else None
            ),
            kms_key_id=self._key_arn if settings.kms_encryption else None,
        )
        if not settings.kms_encryption:
            # Settings allow this only for instance types with local NVMe storage.
            reason = (
                f"{settings.instance_type} keeps the model on local NVMe instance storage, which the instance "
                "encrypts in hardware; SageMaker rejects KmsKeyId for such types (CreateEndpointConfig API)"
            )
            Validations.of(endpoint_config).acknowledge(
                *(
                    Acknowledgment(id=f"{pack}::{pack}-SageMakerEndpointConfigurationKMSKeyConfigured", reason=reason)
                    for pack in ("NIST.800.53.R5", "HIPAA.Security")
                )
            )
        rollout = GuardedRollout(
            scope,
            "Rollout",
            endpoint_name=name,
            variant_name=VARIANT_NAME,
            endpoint_config_name=endpoint_config.attr_endpoint_config_name,
            settings=settings,
            execution_role=self.role,
            # One policy lets SageMaker read every shard's rollback alarms: a role holds few managed policies.
            first_shard=self.shards[0].rollout if self.shards else None,
        )
        endpoint = sagemaker.CfnEndpoint(
            scope,
            "Endpoint",
            endpoint_name=name,
            endpoint_config_name=endpoint_config.attr_endpoint_config_name,
            # Keep the autoscaled instance count (and weights) when a new EndpointConfig rolls out.
            retain_all_variant_properties=True,
            deployment_config=rollout.deployment_config() if profile.guardrails else None,
        )
        if rollout.policy is not None:
            # SageMaker reads the rollback alarms with the execution role during the update.
            endpoint.node.add_dependency(rollout.policy)
        return EndpointShard(
            name=name, model=model, endpoint_config=endpoint_config, rollout=rollout, endpoint=endpoint
        )

    @staticmethod
    def _variant(
        settings: StageSettings,
        name: str,
        model: sagemaker.CfnModel,
        instance_type: str,
        count: int,
        *,
        weight: float = 1.0,
    ) -> sagemaker.CfnEndpointConfig.ProductionVariantProperty:
        return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=name,
            model_name=model.attr_model_name,
            instance_type=instance_type,
            initial_instance_count=count,
            initial_variant_weight=weight,
            routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                routing_strategy="LEAST_OUTSTANDING_REQUESTS"
            ),
            container_startup_health_check_timeout_in_seconds=settings.container_startup_timeout_seconds,
            model_data_download_timeout_in_seconds=settings.model_download_timeout_seconds,
            inference_ami_version=settings.serving.inference_ami_version,
        )

    def _execution_role(
        self,
        vpc: ec2.IVpc,
        subnets: list[ec2.ISubnet],
        repository_arn: str,
        key: kms.IKey | None,
        extra: list[iam.PolicyStatement],
    ) -> tuple[iam.Role, iam.ManagedPolicy]:
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com",
                # Confused-deputy guard in the form SageMaker documents for inference: the ARN must read
                # exactly arn:<partition>:sagemaker:<region>:<account>:* (not a model's or endpoint's ARN).
                conditions={"ArnLike": {"aws:SourceArn": stack.format_arn(service="sagemaker", resource="*")}},
            ),
            description="SageMaker execution role of the RTB inference endpoint",
        )
        ec2_arn = functools.partial(stack.format_arn, service="ec2")
        interfaces = ec2_arn(resource="network-interface", resource_name="*")
        log_groups = "/aws/sagemaker/Endpoints/*"
        statements = [
            iam.PolicyStatement(sid="ReadModelArtifact", actions=["s3:GetObject"], resources=self.artifact_arns),
            iam.PolicyStatement(
                sid="PullContainerImage",
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[repository_arn],
            ),
            iam.PolicyStatement(
                sid="WriteEndpointLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=log_groups,
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            iam.PolicyStatement(
                sid="UnscopableReadsAndToken",
                # The describe calls SageMaker's "Give SageMaker hosted endpoints access to resources in your
                # Amazon VPC" lists for the execution role; none has resource-level permissions.
                actions=[
                    "ecr:GetAuthorizationToken",
                    "ec2:DescribeVpcEndpoints",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeNetworkInterfaces",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="PublishEndpointMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
            # EC2 authorizes each resource of CreateNetworkInterface on its own: the new interface, the
            # subnet and the security group. The action table lists ec2:Vpc for the subnet and the group,
            # not for the new interface, so a VPC condition would deny the interface: name the model's
            # subnets and group instead, and new interfaces of this account and region by pattern.
            iam.PolicyStatement(
                sid="CreateNetworkInterfacesInTheModelSubnets",
                actions=["ec2:CreateNetworkInterface"],
                resources=[
                    *(ec2_arn(resource="subnet", resource_name=subnet.subnet_id) for subnet in subnets),
                    ec2_arn(resource="security-group", resource_name=self.security_group.security_group_id),
                    interfaces,
                ],
            ),
            # An existing interface carries ec2:Vpc (listed for these actions' network-interface rows).
            iam.PolicyStatement(
                sid="ManageNetworkInterfacesInThisVpc",
                actions=[
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                resources=[interfaces],
                conditions={"ArnEquals": {"ec2:Vpc": ec2_arn(resource="vpc", resource_name=vpc.vpc_id)}},
            ),
        ]
        if key is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="EncryptStorageVolume",
                    actions=["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
                    resources=[key.key_arn],
                )
            )
        statements.extend(extra)
        # A managed policy, not an inline one (NIST 800-53 / HIPAA IAMNoInlinePolicy).
        policy = iam.ManagedPolicy(self, "ExecutionPolicy", roles=[role], statements=statements)
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason=(
                    "ecr:GetAuthorizationToken, cloudwatch:PutMetricData and the ec2:Describe* calls have no "
                    "resource-level permissions (IAM service authorization reference); PutMetricData is "
                    "limited to SageMaker namespaces by a condition"
                ),
            ),
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{nag_arn(stack, 'ec2', 'network-interface/*')}]",
                reason=(
                    "SageMaker creates the model's network interfaces, so their ids are unknown; creation is "
                    "limited to the model's subnets and security group, the other calls to this VPC"
                ),
            ),
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{nag_arn(stack, 'logs', 'log-group:' + log_groups)}]",
                reason=(
                    "SageMaker names the log group after the endpoint, whose name CloudFormation generates "
                    "after this role exists; scoped to SageMaker endpoint log groups of this account and region"
                ),
            ),
        )
        return role, policy
