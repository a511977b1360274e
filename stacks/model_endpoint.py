"""The model artifact, its execution role, and the SageMaker Model, EndpointConfig and Endpoint."""

from __future__ import annotations

from aws_cdk import Acknowledgment, ArnFormat, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.compliance import nag_arn
from stacks.container_image import resolve_xgboost_image
from stacks.settings import StageSettings

VARIANT_NAME = "AllTraffic"
HTTPS = ec2.Port.tcp(443)


class XgboostEndpoint(Construct):
    """A real-time endpoint serving the model with the built-in XGBoost container, inside the VPC."""

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
        self.artifact_arn = self.artifact.bucket.arn_for_objects(self.artifact.s3_object_key)
        image = resolve_xgboost_image(self, tag=settings.image_tag, region=settings.region)

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

        self.role, self.execution_policy = self._execution_role(
            vpc, image.repository_arn, encryption_key if settings.kms_encryption else None
        )
        selected = vpc.select_subnets(subnets=subnets.subnets)
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.uri, model_data_url=self.artifact.s3_object_url, mode="SingleModel"
            ),
            vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                security_group_ids=[self.security_group.security_group_id], subnets=selected.subnet_ids
            ),
            enable_network_isolation=True,
        )
        # SageMaker uses the role as soon as the model exists; its policy must be attached first.
        self.model.node.add_dependency(self.execution_policy)

        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=self.model.attr_model_name,
                    instance_type=settings.instance_type,
                    initial_instance_count=settings.initial_instance_count,
                    initial_variant_weight=1.0,
                    routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                        routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                    ),
                    container_startup_health_check_timeout_in_seconds=settings.container_startup_timeout_seconds,
                    model_data_download_timeout_in_seconds=settings.model_download_timeout_seconds,
                )
            ],
            kms_key_id=encryption_key.key_arn if settings.kms_encryption else None,
        )
        if not settings.kms_encryption:
            # Settings allow this only for instance types with local NVMe storage.
            reason = (
                f"{settings.instance_type} keeps the model on local NVMe instance storage, which the instance "
                "encrypts in hardware; SageMaker rejects KmsKeyId for such types (CreateEndpointConfig API)"
            )
            Validations.of(self.endpoint_config).acknowledge(
                *(
                    Acknowledgment(id=f"{pack}::{pack}-SageMakerEndpointConfigurationKMSKeyConfigured", reason=reason)
                    for pack in ("NIST.800.53.R5", "HIPAA.Security")
                )
            )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            # Keep the autoscaled instance count (and weights) when a new EndpointConfig rolls out.
            retain_all_variant_properties=True,
        )
        self.variant_name = VARIANT_NAME

    def _execution_role(
        self, vpc: ec2.IVpc, repository_arn: str, key: kms.IKey | None
    ) -> tuple[iam.Role, iam.ManagedPolicy]:
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker execution role of the RTB inference endpoint",
        )
        log_groups = "/aws/sagemaker/Endpoints/*"
        statements = [
            iam.PolicyStatement(sid="ReadModelArtifact", actions=["s3:GetObject"], resources=[self.artifact_arn]),
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
                actions=[
                    "ecr:GetAuthorizationToken",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="PublishEndpointMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
            iam.PolicyStatement(
                sid="ManageNetworkInterfacesInThisVpc",
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                resources=["*"],
                conditions={
                    "ArnEquals": {"ec2:Vpc": stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id)}
                },
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
        # A managed policy, not an inline one (NIST 800-53 / HIPAA IAMNoInlinePolicy).
        policy = iam.ManagedPolicy(self, "ExecutionPolicy", roles=[role], statements=statements)
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason=(
                    "ecr:GetAuthorizationToken, cloudwatch:PutMetricData and the ec2:Describe* calls have no "
                    "resource-level permissions (IAM service authorization reference); PutMetricData is "
                    "limited to SageMaker namespaces and ENI create/delete to this VPC by conditions"
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
