"""GitHub Actions' way into AWS: the OIDC provider and two roles, deployed once per account.

- The read-only role serves `cdk diff` on pull requests: it may assume only the CDK bootstrap lookup role.
- The deploy role serves the main workflow: it may assume only the CDK bootstrap deploy, file- and
  image-publishing roles, plus read the kit's stack outputs and invoke its endpoints for the smoke test, and
  read what the preflight (scripts/preflight.py) checks before a deploy.

Trust is checked on the token's `sub` claim. The repository must send its claims as
`repo:<owner>/<name>:<context>:ref:<ref>` (docs/ci-cd.md), so the deploy role can require both a
protected environment and the deploy branch, and AWS, not only GitHub, enforces them.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Environment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.compliance import nag_arn
from stacks.github_ci_settings import BOOTSTRAP_QUALIFIER, GITHUB_ISSUER, GitHubCiSettings


class GitHubCiStack(Stack):
    """The OIDC provider (or an existing one) and the read-only and deploy roles for the workflows."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: GitHubCiSettings) -> None:
        super().__init__(
            scope,
            construct_id,
            env=Environment(region=settings.regions[0]),
            description="RTB inference kit: GitHub Actions OIDC provider and CI roles",
        )
        if settings.existing_provider_arn is None:
            provider: iam.IOidcProvider = iam.OidcProviderNative(
                self, "GitHubOidcProvider", url=f"https://{GITHUB_ISSUER}", client_ids=["sts.amazonaws.com"]
            )
        else:
            provider = iam.OidcProviderNative.from_oidc_provider_arn(
                self, "GitHubOidcProvider", settings.existing_provider_arn
            )

        readonly = self._role(
            "ReadOnlyRole",
            provider,
            StringLike=settings.pull_request_subject(),
            description=f"cdk diff on pull requests of {settings.repository}",
        )
        iam.ManagedPolicy(
            self,
            "ReadOnlyPolicy",
            roles=[readonly],
            statements=[
                iam.PolicyStatement(
                    sid="AssumeCdkLookupRole",
                    actions=["sts:AssumeRole"],
                    resources=self._bootstrap_roles(settings, ("lookup",)),
                )
            ],
        )

        deploy = self._role(
            "DeployRole",
            provider,
            StringEquals=settings.deploy_subjects(),
            description=f"cdk deploy from {settings.repository}@{settings.deploy_branch} protected environments",
        )
        deploy_policy = iam.ManagedPolicy(
            self,
            "DeployPolicy",
            roles=[deploy],
            statements=[
                iam.PolicyStatement(
                    sid="AssumeCdkDeployRoles",
                    actions=["sts:AssumeRole"],
                    resources=self._bootstrap_roles(settings, ("deploy", "file-publishing", "image-publishing")),
                ),
                iam.PolicyStatement(
                    sid="SmokeTestReadsStackOutputs",
                    actions=["cloudformation:DescribeStacks"],
                    resources=[
                        self._arn(region, "cloudformation", "stack/RtbInference-*/*") for region in settings.regions
                    ],
                ),
                iam.PolicyStatement(
                    sid="SmokeTestInvokesKitEndpoints",
                    actions=["sagemaker:InvokeEndpoint"],
                    # SageMaker lowercases endpoint names in ARNs; CloudFormation names them after the stack.
                    resources=[
                        self._arn(region, "sagemaker", "endpoint/rtbinference-*") for region in settings.regions
                    ],
                ),
                # The preflight's reads. None of these actions has a resource type in the Service Authorization
                # Reference, so only "*" matches; the global aws:RequestedRegion key keeps them to the kit's regions.
                # https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
                iam.PolicyStatement(
                    sid="PreflightReadsAccountLimits",
                    actions=[
                        "servicequotas:ListServiceQuotas",
                        "servicequotas:ListAWSDefaultServiceQuotas",
                        "sagemaker:ListEndpoints",
                        "lambda:GetAccountSettings",
                        "ec2:DescribeVpcEndpoints",
                    ],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:RequestedRegion": list(settings.regions)}},
                ),
                # Other endpoints' instances count against the same quotas, so every endpoint of the account is read.
                iam.PolicyStatement(
                    sid="PreflightCountsEndpointInstances",
                    actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"],
                    resources=[
                        self._arn(region, "sagemaker", resource)
                        for region in settings.regions
                        for resource in ("endpoint/*", "endpoint-config/*")
                    ],
                ),
                iam.PolicyStatement(
                    sid="PreflightReadsBootstrapVersion",
                    actions=["ssm:GetParameter"],
                    resources=[
                        self._arn(region, "ssm", f"parameter/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version")
                        for region in settings.regions
                    ],
                ),
            ],
        )
        Validations.of(deploy_policy).acknowledge(
            *(
                Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{nag_arn(self, service, resource, region=region)}]",
                    reason=reason,
                )
                for region in settings.regions
                for service, resource, reason in (
                    (
                        "cloudformation",
                        "stack/RtbInference-*/*",
                        "Stack ARNs end in an id CloudFormation assigns at creation; limited to the kit's stacks",
                    ),
                    (
                        "sagemaker",
                        "endpoint/rtbinference-*",
                        "Endpoint names are generated by CloudFormation; limited to the kit's endpoints",
                    ),
                    (
                        "sagemaker",
                        "endpoint/*",
                        "The preflight counts the instances of every endpoint of the account against its quotas "
                        "(DescribeEndpoint); read-only, one region",
                    ),
                    (
                        "sagemaker",
                        "endpoint-config/*",
                        "The preflight reads the instance type of every endpoint's configuration "
                        "(DescribeEndpointConfig); read-only, one region",
                    ),
                )
            ),
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason="Service Quotas' List(AWSDefault)ServiceQuotas, sagemaker:ListEndpoints, "
                "lambda:GetAccountSettings and ec2:DescribeVpcEndpoints have no resource types (Service "
                "Authorization Reference): only * matches; read-only, limited to the kit's regions by "
                "aws:RequestedRegion",
            ),
        )

        CfnOutput(self, "ReadOnlyRoleArn", value=readonly.role_arn)
        CfnOutput(self, "DeployRoleArn", value=deploy.role_arn)
        CfnOutput(self, "OidcProviderArn", value=provider.oidc_provider_arn)

    def _role(
        self, construct_id: str, provider: iam.IOidcProvider, *, description: str, **subject: str | list[str]
    ) -> iam.Role:
        ((operator, value),) = subject.items()
        conditions: dict[str, dict[str, str | list[str]]] = {
            "StringEquals": {f"{GITHUB_ISSUER}:aud": "sts.amazonaws.com"}
        }
        conditions.setdefault(operator, {})[f"{GITHUB_ISSUER}:sub"] = value
        return iam.Role(
            self,
            construct_id,
            description=description,
            assumed_by=iam.WebIdentityPrincipal(provider.oidc_provider_arn, conditions=conditions),
        )

    def _bootstrap_roles(self, settings: GitHubCiSettings, kinds: tuple[str, ...]) -> list[str]:
        return [
            self.format_arn(
                service="iam",
                region="",
                resource="role",
                resource_name=f"cdk-{BOOTSTRAP_QUALIFIER}-{kind}-role-{self.account}-{region}",
            )
            for kind in kinds
            for region in settings.regions
        ]

    def _arn(self, region: str, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{region}:{self.account}:{resource}"
