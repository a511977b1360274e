"""The cdk-nag rule packs every synth runs (an unacknowledged finding stops the synth), and the checkov skips
written on resources for the platform teams that gate templates with checkov (tests/test_checkov.py)."""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import App, CfnResource, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks
from constructs import IConstruct

# checkov's own check ids (CKV_AWS_18, CKV2_AWS_5): the ones its registry runs offline, without a platform key.
CHECKOV_CHECK_ID = re.compile(r"CKV2?_[A-Z0-9]+_[0-9]+", re.ASCII)


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


def checkov_skip(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skip checkov's check ``check_id`` on ``construct``'s CloudFormation resource (the construct itself, or
    its default child) with ``reason``, written in the template beside the resource as checkov reads it
    (``Metadata.checkov.skip``). Like an acknowledgment's, the reason says why the finding is a false positive
    or a documented AWS requirement, for this resource."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(
            f"checkov skip of {check_id} on {construct.node.path}: it has no CloudFormation resource to carry it; "
            "pass the CfnResource itself"
        )
    where = f"checkov skip of {check_id} on {resource.node.path}"
    if not CHECKOV_CHECK_ID.fullmatch(check_id):
        raise ValueError(f"{where}: {check_id!r} is not a checkov check id; allowed: CKV_<FRAMEWORK>_<n> or CKV2_...")
    if not reason.strip():
        raise ValueError(f"{where}: the reason is empty; say why the finding is a false positive or an AWS requirement")
    metadata: dict[str, Any] = dict(resource.get_metadata("checkov") or {})
    skips: list[dict[str, str]] = list(metadata.get("skip", []))
    if any(skip.get("id") == check_id for skip in skips):
        raise ValueError(f"{where}: the resource already skips {check_id}; give one reason")
    resource.add_metadata("checkov", {**metadata, "skip": [*skips, {"id": check_id, "comment": reason.strip()}]})
