"""cfn-lint on every stage's synthesized template: no errors, and only the warnings allowed below.

Informational findings (I*) are not asked for. An environment-agnostic template is linted for
us-east-1, the region the deploy rehearsal uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cfnlint.api import lint

from stacks.settings import StageSettings

from .conftest import Synthesized

# Subprocesses, moto, checkov or the SageMaker SDK: make test runs it, make test-quick leaves it out.
pytestmark = pytest.mark.slow

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Finding:
    """One cfn-lint match, with the resource it is on (if any) resolved from the template."""

    rule: str
    message: str
    path: tuple[str | int, ...]
    line: int
    logical_id: str | None
    resource_type: str | None

    def __str__(self) -> str:
        where = f"{self.logical_id} ({self.resource_type})" if self.logical_id else "/".join(map(str, self.path))
        return f"{self.rule} line {self.line} at {where}: {self.message}"


@dataclass(frozen=True)
class AllowedWarning:
    """Why a warning is accepted, on which resource types, and on which stages and findings."""

    reason: str
    resource_types: frozenset[str]
    applies: Callable[[StageSettings, Finding], bool]


def _pinned_client_az(settings: StageSettings, finding: Finding) -> bool:
    return bool(settings.client_azs) and any(f"'{az}'" in finding.message for az in settings.client_azs)


# rule id -> why it is accepted. Each entry is limited to the resource types its reason is about, so
# the same rule firing anywhere else still fails the test.
ALLOWED_WARNINGS: dict[str, AllowedWarning] = {
    # "Avoid hardcoding availability zones": the subnets are placed in the clients' AZs on purpose
    # (client_azs), so calls stay inside one AZ. Only stages with client_azs, only subnets, only those AZs.
    "W3010": AllowedWarning(
        reason="subnets deliberately in the clients' Availability Zones (client_azs): calls stay in one AZ",
        resource_types=frozenset({"AWS::EC2::Subnet"}),
        applies=_pinned_client_az,
    ),
}

# Checks the template itself tells cfn-lint to skip (resource Metadata "cfn-lint"), which this test's
# allow-list never sees: rule id -> (resource type, logical-id prefix, why). stacks/network.py adds the
# one entry: CDK's generated handler of Custom::VpcRestrictDefaultSG repeats as DependsOn the role its
# GetAtt already implies (W3005); harmless, and generated code the kit cannot change.
TEMPLATE_SUPPRESSIONS: dict[str, tuple[str, str, str]] = {
    "W3005": (
        "AWS::Lambda::Function",
        "CustomVpcRestrictDefaultSGCustomResourceProviderHandler",
        "CDK-generated handler repeats its role as DependsOn",
    ),
}


def lint_stage(stage: Synthesized) -> list[Finding]:
    """cfn-lint's default rules (errors and warnings) on the stage's template, for its region."""
    region = stage.settings.region or DEFAULT_REGION
    resources = stage.template_json["Resources"]
    # The file as synthesized, so line numbers point into cdk.out's template.
    matches = lint((stage.outdir / f"{stage.settings.stack_name}.template.json").read_text(), regions=[region])
    findings = []
    for match in matches:
        path = tuple(match.path) if getattr(match, "path", None) else ()
        logical_id = str(path[1]) if len(path) > 1 and path[0] == "Resources" else None
        resource_type = resources.get(logical_id, {}).get("Type") if logical_id else None
        findings.append(
            Finding(
                rule=match.rule.id,
                message=match.message,
                path=path,
                line=match.linenumber,
                logical_id=logical_id,
                resource_type=resource_type,
            )
        )
    return findings


@pytest.fixture(scope="module")
def findings_of() -> Callable[[Synthesized], list[Finding]]:
    """Lint each stage at most once per module."""
    cache: dict[str, list[Finding]] = {}

    def get(stage: Synthesized) -> list[Finding]:
        if stage.settings.name not in cache:
            cache[stage.settings.name] = lint_stage(stage)
        return cache[stage.settings.name]

    return get


def report(findings: list[Finding], settings: StageSettings | None = None) -> str:
    """One finding a line; with ``settings``, allowed warnings carry their reason."""
    lines = []
    for finding in findings:
        allowed = settings is not None and finding.rule.startswith("W") and is_allowed(settings, finding)
        lines.append(f"{finding}  [allowed: {ALLOWED_WARNINGS[finding.rule].reason}]" if allowed else str(finding))
    return "\n".join(lines) or "(none)"


def is_allowed(settings: StageSettings, finding: Finding) -> bool:
    allowed = ALLOWED_WARNINGS.get(finding.rule)
    return (
        allowed is not None and finding.resource_type in allowed.resource_types and allowed.applies(settings, finding)
    )


def test_template_has_no_cfn_lint_errors(
    any_stage: Synthesized, findings_of: Callable[[Synthesized], list[Finding]]
) -> None:
    findings = findings_of(any_stage)
    errors = [finding for finding in findings if finding.rule.startswith("E")]
    assert not errors, f"cfn-lint errors in {any_stage.settings.stack_name}:\n{report(findings)}"


def test_template_has_only_allow_listed_cfn_lint_warnings(
    any_stage: Synthesized, findings_of: Callable[[Synthesized], list[Finding]]
) -> None:
    findings = findings_of(any_stage)
    warnings = [finding for finding in findings if finding.rule.startswith("W")]
    unexpected = [finding for finding in warnings if not is_allowed(any_stage.settings, finding)]
    assert not unexpected, (
        f"cfn-lint warnings not in ALLOWED_WARNINGS (or outside the resource types and stages an entry is "
        f"for) in {any_stage.settings.stack_name}:\n{report(unexpected)}\n\n"
        f"all findings:\n{report(findings, any_stage.settings)}"
    )


def test_template_silences_only_the_known_cfn_lint_checks(any_stage: Synthesized) -> None:
    template = any_stage.template_json
    assert "cfn-lint" not in template.get("Metadata", {}), "a template-wide cfn-lint config hides every resource"
    unexpected = [
        (logical_id, resource["Type"], check)
        for logical_id, resource in template["Resources"].items()
        for check in resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        if check not in TEMPLATE_SUPPRESSIONS
        or resource["Type"] != TEMPLATE_SUPPRESSIONS[check][0]
        or not logical_id.startswith(TEMPLATE_SUPPRESSIONS[check][1])
    ]
    assert not unexpected, f"resources that tell cfn-lint to skip checks not in TEMPLATE_SUPPRESSIONS: {unexpected}"


def test_allow_list_does_not_cover_other_resources_or_stages(dev: Synthesized, portable: Synthesized) -> None:
    def finding(rule: str, resource_type: str, message: str, logical_id: str = "Some") -> Finding:
        path = ("Resources", logical_id, "Properties", "AvailabilityZone")
        return Finding(rule, message, path, 1, logical_id, resource_type)

    pinned = finding("W3010", "AWS::EC2::Subnet", "Avoid hardcoding availability zones 'us-east-1a'")
    assert is_allowed(dev.settings, pinned)
    assert not is_allowed(portable.settings, pinned), "portable has no client AZs to pin"
    assert not is_allowed(dev.settings, finding("W3010", "AWS::EC2::Instance", pinned.message))
    other_az = finding("W3010", "AWS::EC2::Subnet", "Avoid hardcoding availability zones 'us-east-1c'")
    assert not is_allowed(dev.settings, other_az), "only the stage's client AZs are deliberate"
