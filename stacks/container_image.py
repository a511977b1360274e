"""The built-in XGBoost container image: a literal URI where the region is known, else a mapping."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnMapping, Fn, Stack
from constructs import Construct

from stacks import catalog


@dataclass(frozen=True)
class ResolvedImage:
    """The image URI and its ECR repository ARN, either of which may be a deploy-time token."""

    uri: str
    repository_arn: str


def resolve_xgboost_image(scope: Construct, *, tag: str, region: str | None) -> ResolvedImage:
    """Pin the image of ``tag``; an environment-agnostic stack looks its registry up per region."""
    stack = Stack.of(scope)
    table = catalog.xgboost_image_table(tag)
    repository = table["repository"]
    if region is not None:
        image = catalog.xgboost_image(tag, region)
        if image is None:  # settings reject this earlier; kept for callers outside StageSettings
            raise ValueError(f"no XGBoost {tag} image in {region}")
        account, uri = image.account, image.uri
    else:
        mapping = CfnMapping(
            scope,
            "XgboostImageRegistry",
            mapping={
                region_name: {"Account": entry["account"], "Host": entry["host"]}
                for region_name, entry in sorted(table["regions"].items())
            },
        )
        account = mapping.find_in_map(Aws.REGION, "Account")
        uri = Fn.join("", [mapping.find_in_map(Aws.REGION, "Host"), f"/{repository}:{tag}"])
    repository_arn = stack.format_arn(service="ecr", account=account, resource="repository", resource_name=repository)
    return ResolvedImage(uri=uri, repository_arn=repository_arn)
