"""The profile's container image: a literal URI where the region is known, else a per-region mapping."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnMapping, Fn, Stack
from constructs import Construct

from stacks.profiles import Profile

# Logical ids of the mapping an environment-agnostic stack carries, per profile (stable across releases).
_MAPPING_IDS = {"cpu": "XgboostImageRegistry", "gpu": "TritonImageRegistry", "inferentia": "NeoImageRegistry"}


@dataclass(frozen=True)
class ResolvedImage:
    """The image URI and its ECR repository ARN, either of which may be a deploy-time token."""

    uri: str
    repository_arn: str


def resolve_image(scope: Construct, *, profile: Profile, version: str, region: str | None) -> ResolvedImage:
    """Pin the profile's image ``version``; an environment-agnostic stack looks its registry up per region."""
    stack = Stack.of(scope)
    registry = profile.registry(version)
    if region is not None:
        found = registry.image(region)
        if found is None:  # settings reject this earlier; kept for callers outside StageSettings
            raise ValueError(f"no {profile.name} image {version} in {region}")
        account, uri = found
    else:
        mapping = CfnMapping(
            scope,
            _MAPPING_IDS[profile.name],
            mapping={
                region_name: {"Account": entry["account"], "Host": entry["host"]}
                for region_name, entry in sorted(registry.regions.items())
            },
        )
        account = mapping.find_in_map(Aws.REGION, "Account")
        uri = Fn.join("", [mapping.find_in_map(Aws.REGION, "Host"), f"/{registry.repository}:{registry.tag}"])
    repository_arn = stack.format_arn(
        service="ecr", account=account, resource="repository", resource_name=registry.repository
    )
    return ResolvedImage(uri=uri, repository_arn=repository_arn)
