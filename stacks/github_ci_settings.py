"""Who may run the kit's workflows in AWS: the GitHub repository, branch, environments and regions of the CI roles
(the RtbInference-GitHubCi stack, stacks/github_ci.py). Plain settings: loading the stages starts no CDK."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from stacks.settings import SettingsError

GITHUB_ISSUER = "token.actions.githubusercontent.com"
BOOTSTRAP_QUALIFIER = "hnb659fds"  # the CDK default; change with `cdk bootstrap --qualifier`

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_PROVIDER_ARN = re.compile(rf"^arn:aws[a-z-]*:iam::\d{{12}}:oidc-provider/{re.escape(GITHUB_ISSUER)}$")


@dataclass(frozen=True, kw_only=True)
class GitHubCiSettings:
    """Which repository, branch and environments may act in this account, and where."""

    repository: str
    deploy_branch: str = "main"
    # GitHub environments of the deploy jobs; protect them (required reviewers, branch policy).
    deploy_environments: tuple[str, ...] = ("dev", "prod")
    # Regions the stages deploy to: the bootstrap roles are per region.
    regions: tuple[str, ...] = ("us-east-1",)
    # An account has one provider per issuer: name it here if one exists already.
    existing_provider_arn: str | None = None
    stack_name: str = field(default="RtbInference-GitHubCi")

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise SettingsError("github-ci", problems)

    def _problems(self) -> Iterator[str]:
        if not _REPOSITORY.match(self.repository):
            yield f"repository={self.repository!r} is invalid: allowed: 'owner/name' of a GitHub repository"
        if not _NAME.match(self.deploy_branch):
            yield f"deploy_branch={self.deploy_branch!r} is invalid: allowed: a branch name such as 'main'"
        if not self.deploy_environments or not all(_NAME.match(env) for env in self.deploy_environments):
            yield (
                f"deploy_environments={self.deploy_environments!r} is invalid: allowed: one or more GitHub "
                "environment names"
            )
        if not self.regions or not all(_REGION.match(region) for region in self.regions):
            yield f"regions={self.regions!r} is invalid: allowed: one or more region names such as 'us-east-1'"
        if self.existing_provider_arn is not None and not _PROVIDER_ARN.match(self.existing_provider_arn):
            yield (
                f"existing_provider_arn={self.existing_provider_arn!r} is invalid: allowed: "
                f"arn:aws:iam::<account>:oidc-provider/{GITHUB_ISSUER}, or None"
            )

    def deploy_subjects(self) -> list[str]:
        return [
            f"repo:{self.repository}:environment:{env}:ref:refs/heads/{self.deploy_branch}"
            for env in self.deploy_environments
        ]

    def pull_request_subject(self) -> str:
        return f"repo:{self.repository}:pull_request:ref:refs/pull/*"
