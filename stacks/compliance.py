"""The cdk-nag rule packs every synth runs; an unacknowledged finding stops the synth."""

from __future__ import annotations

from aws_cdk import App, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks


def add_compliance_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app), HIPAASecurityChecks(app))


def nag_arn(stack: Stack, service: str, resource: str, *, region: str | None = None) -> str:
    """An ARN of this stack's account (and region, unless given) as cdk-nag prints it in a finding id."""
    partition, stack_region, account = (
        f"<{name}>" if Token.is_unresolved(value) else value
        for name, value in (
            ("AWS::Partition", stack.partition),
            ("AWS::Region", stack.region),
            ("AWS::AccountId", stack.account),
        )
    )
    region = region or stack_region
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"
