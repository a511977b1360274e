"""checkov, the template gate many platform teams run: every stage's template and the CI roles' pass it, and each
skip is written on its resource with its reason (stacks/compliance.checkov_skip), as the cdk-nag acknowledgments are.

checkov runs from its own venv (`make setup-checkov`, locks/checkov.txt), in one run per session (per xdist worker)
over every template, offline: ``--skip-download`` and ``BC_SKIP_MAPPING`` keep it from Prisma Cloud,
``CKV_SKIP_PACKAGE_UPDATE_CHECK`` from PyPI. checkov does not evaluate a check it skips, so a template that carries
skips is scanned in the same run as a copy without them too: the copy shows what each skip hides (a failure, or
nothing: a stale skip). A planted template rides along in that run and proves the checks below catch what they are
for.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from aws_cdk import App, CfnResource, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template
from constructs import Construct

from stacks.compliance import CHECKOV_CHECK_ID, checkov_skip
from stacks.stages import STAGES, github_ci

from .conftest import REPO_ROOT, Synthesized, SynthesizedCi, offline_env

# Subprocesses, moto, checkov or the SageMaker SDK: make test runs it, make test-quick leaves it out.
pytestmark = pytest.mark.slow

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
PINNED_VERSION = next(
    line.split("==", 1)[1].strip()
    for line in (REPO_ROOT / "requirements-checkov.txt").read_text().splitlines()
    if line.startswith("checkov==")
)
CI_ROLES = github_ci().stack_name
TEMPLATES = [*STAGES, CI_ROLES]
PLANTED = "planted"


def _bucket(**properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::S3::Bucket", "Properties": properties}


def _skipped(resource: dict[str, Any], *skips: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "Metadata": {"checkov": {"skip": list(skips)}}}


# One mistake per resource, for the self-checks at the end (CKV_AWS_18: access logging; CKV_AWS_21: versioning).
PLANTED_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Unskipped": _bucket(),
        "SkippedWithReason": _skipped(_bucket(), {"id": "CKV_AWS_18", "comment": "planted: a log bucket"}),
        "SkippedButPasses": _skipped(
            _bucket(VersioningConfiguration={"Status": "Enabled"}),
            {"id": "CKV_AWS_21", "comment": "planted: versioned after all"},
        ),
        "SkippedUnknownCheck": _skipped(_bucket(), {"id": "CKV_AWS_999999", "comment": "planted: no such check"}),
        "SkippedWithoutReason": _skipped(_bucket(), {"id": "CKV_AWS_18", "comment": " "}, {"id": "CKV_AWS_21"}),
    }
}


@dataclass(frozen=True)
class Result:
    """One of checkov's checks on one resource of one template."""

    template: str
    logical_id: str
    check_id: str
    check_name: str
    outcome: str  # PASSED, FAILED or SKIPPED
    comment: str | None  # a skip's reason, as checkov read it

    def line(self) -> str:
        return f"{self.template}: {self.logical_id}: {self.check_id} {self.check_name}"


@dataclass(frozen=True, repr=False)
class Scan:
    """checkov's results on every template as synthesized, and on copies without their skips."""

    templates: dict[str, dict[str, Any]]
    results: list[Result]
    without_skips: list[Result]

    def __repr__(self) -> str:  # short in a failure's traceback
        return f"Scan({len(self.templates)} templates, {len(self.results)}+{len(self.without_skips)} results)"

    def result(self, template: str, logical_id: str, check_id: str, *, skips: bool = True) -> Result | None:
        found = [
            result
            for result in (self.results if skips else self.without_skips)
            if (result.template, result.logical_id, result.check_id) == (template, logical_id, check_id)
        ]
        assert len(found) <= 1, found
        return found[0] if found else None


def skips_in(template: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(logical id, skip entry) of every checkov skip written on a resource."""
    for logical_id, resource in template.get("Resources", {}).items():
        metadata = resource.get("Metadata") or {}
        skips = metadata.get("checkov", {}).get("skip", []) if isinstance(metadata.get("checkov"), dict) else []
        for entry in skips:
            yield logical_id, entry


def without_skips(template: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(template)
    for resource in stripped.get("Resources", {}).values():
        metadata = resource.get("Metadata") or {}
        metadata.pop("checkov", None)
        if "Metadata" in resource and not metadata:
            del resource["Metadata"]
    return stripped


def run_checkov(templates: dict[str, Path], workdir: Path) -> Scan:
    """One checkov run over ``templates`` (name: file) and skip-less copies of those that carry skips."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed in {CHECKOV.parent.parent.name}: make setup-checkov", pytrace=False)
    loaded = {name: json.loads(path.read_text()) for name, path in templates.items()}
    files = {path.resolve(): (name, True) for name, path in templates.items()}
    for name, template in loaded.items():
        if any(True for _ in skips_in(template)):
            copied = workdir / "without-skips" / name / templates[name].name
            copied.parent.mkdir(parents=True)
            copied.write_text(json.dumps(without_skips(template), indent=1))
            files[copied.resolve()] = (name, False)
    env = offline_env(workdir) | {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"}
    command = [str(CHECKOV), "--skip-download", "--framework", "cloudformation", "--output", "json", "--compact"]
    done = subprocess.run(
        [*command, "--file", *map(str, files)], cwd=workdir, env=env, capture_output=True, text=True, check=False
    )
    # 1: some check failed; anything else is checkov's own failure.
    if done.returncode not in (0, 1):
        pytest.fail(f"checkov exited {done.returncode}:\n{done.stderr[-3000:]}", pytrace=False)
    reports = json.loads(done.stdout)
    (report,) = [found for found in (reports if isinstance(reports, list) else [reports]) if found]
    assert report["check_type"] == "cloudformation", report.get("check_type")
    assert report["summary"]["checkov_version"] == PINNED_VERSION, "checkov's venv is stale: make setup-checkov"
    assert report["results"]["parsing_errors"] == [], report["results"]["parsing_errors"]
    results: dict[bool, list[Result]] = {True: [], False: []}
    for outcome in ("passed_checks", "failed_checks", "skipped_checks"):
        for found in report["results"][outcome]:
            name, as_synthesized = files[Path(found["file_abs_path"]).resolve()]
            _, _, logical_id = found["resource"].rpartition(".")
            results[as_synthesized].append(
                Result(
                    template=name,
                    logical_id=logical_id,
                    check_id=found["check_id"],
                    check_name=found["check_name"],
                    outcome=found["check_result"]["result"],
                    comment=found["check_result"].get("suppress_comment"),
                )
            )
    return Scan(templates=loaded, results=results[True], without_skips=results[False])


def failures(scan: Scan, template: str) -> list[str]:
    return sorted(
        result.line() for result in scan.results if result.template == template and result.outcome == "FAILED"
    )


def unreasoned_skips(template: dict[str, Any]) -> list[str]:
    """Skips that are not exactly ``{"id": <checkov check id>, "comment": <a reason>}``."""
    problems = []
    for logical_id, entry in skips_in(template):
        fields = set(entry) if isinstance(entry, dict) else set()
        check_id = entry.get("id") if isinstance(entry, dict) else None
        reason = entry.get("comment") if isinstance(entry, dict) else None
        if fields != {"id", "comment"} or not isinstance(reason, str) or not reason.strip():
            problems.append(f"{logical_id}: {entry!r} gives no reason (checkov_skip writes id and comment)")
        elif not isinstance(check_id, str) or not CHECKOV_CHECK_ID.fullmatch(check_id):
            problems.append(f"{logical_id}: {entry!r} names no checkov check id")
    return problems


def stale_skips(scan: Scan, template: str) -> list[str]:
    """Skips that hide no failure (the check passes, or checkov runs no such check on the resource), skips
    checkov did not read as written, and checks checkov skipped for another reason than a written skip."""
    problems = []
    written = set()
    for logical_id, entry in skips_in(scan.templates[template]):
        check_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(check_id, str):
            continue
        written.add((logical_id, check_id))
        where = f"{logical_id}: skip of {check_id}"
        hidden = scan.result(template, logical_id, check_id, skips=False)
        if hidden is None:
            problems.append(f"{where}: checkov runs no such check on this resource (an unknown id, or another type's)")
        elif hidden.outcome == "PASSED":
            problems.append(f"{where}: the check passes without it ({hidden.check_name}); remove the skip")
        seen = scan.result(template, logical_id, check_id)
        if hidden is not None and (seen is None or seen.outcome != "SKIPPED" or seen.comment != entry.get("comment")):
            problems.append(f"{where}: checkov did not read it as written (it saw {seen})")
    problems += [
        f"{result.line()}: skipped by something else than Metadata.checkov.skip"
        for result in scan.results
        if result.template == template
        and result.outcome == "SKIPPED"
        and (result.logical_id, result.check_id) not in written
    ]
    return problems


@pytest.fixture(scope="session")
def scan(
    synth_stage: Callable[[str], Synthesized],
    github_ci: SynthesizedCi,
    tmp_path_factory: pytest.TempPathFactory,
) -> Scan:
    workdir = tmp_path_factory.mktemp("checkov")
    planted = workdir / "planted" / "Planted.template.json"
    planted.parent.mkdir()
    planted.write_text(json.dumps(PLANTED_TEMPLATE, indent=1))
    templates = {
        name: synth_stage(name).outdir / f"{synth_stage(name).settings.stack_name}.template.json" for name in STAGES
    }
    return run_checkov({**templates, CI_ROLES: github_ci.path, PLANTED: planted}, workdir)


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_template_passes_checkov(scan: Scan, template: str) -> None:
    found = failures(scan, template)
    if found:
        pytest.fail(
            f"checkov {PINNED_VERSION} fails {len(found)} checks; fix the resource, or skip the check on it with "
            "its reason (stacks/compliance.checkov_skip):\n" + "\n".join(found),
            pytrace=False,
        )


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_checkov_skip_gives_its_reason(scan: Scan, template: str) -> None:
    assert unreasoned_skips(scan.templates[template]) == []


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_checkov_skip_hides_a_real_failure(scan: Scan, template: str) -> None:
    assert stale_skips(scan, template) == []


# --- the checks above catch what they are for (the planted template, scanned in the same run) ------------------


def test_a_failed_check_is_reported_with_its_resource_id_and_name(scan: Scan) -> None:
    found = failures(scan, PLANTED)
    assert "planted: Unskipped: CKV_AWS_18 Ensure the S3 bucket has access logging enabled" in found
    assert not [line for line in found if line.startswith("planted: SkippedWithReason: CKV_AWS_18 ")]


def test_a_skip_without_a_reason_is_caught() -> None:
    problems = unreasoned_skips(PLANTED_TEMPLATE)
    assert len(problems) == 2 and all(problem.startswith("SkippedWithoutReason: ") for problem in problems), problems


def test_a_stale_or_unknown_skip_is_caught_and_a_needed_one_is_not(scan: Scan) -> None:
    problems = stale_skips(scan, PLANTED)
    assert any(problem.startswith("SkippedButPasses: skip of CKV_AWS_21: the check passes") for problem in problems)
    assert any(
        problem.startswith("SkippedUnknownCheck: skip of CKV_AWS_999999: checkov runs no") for problem in problems
    )
    assert not [problem for problem in problems if problem.startswith("SkippedWithReason")], problems
    honoured = scan.result(PLANTED, "SkippedWithReason", "CKV_AWS_18")
    assert honoured is not None and (honoured.outcome, honoured.comment) == ("SKIPPED", "planted: a log bucket")


# --- stacks/compliance.checkov_skip ----------------------------------------------------------------------------


def _bucket_in_a_stack() -> tuple[Stack, s3.Bucket]:
    stack = Stack(App(), "Skips")
    return stack, s3.Bucket(stack, "Bucket")


def test_checkov_skip_writes_each_skip_with_its_reason_beside_other_metadata() -> None:
    stack, bucket = _bucket_in_a_stack()
    resource = cast(CfnResource, bucket.node.default_child)
    resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
    checkov_skip(bucket, "CKV_AWS_18", "the access-log destination itself")
    checkov_skip(resource, "CKV_AWS_21", " another reason ")
    written = Template.from_stack(stack).to_json()["Resources"][stack.get_logical_id(resource)]["Metadata"]
    assert written == {
        "cfn-lint": {"config": {"ignore_checks": ["W3005"]}},
        "checkov": {
            "skip": [
                {"id": "CKV_AWS_18", "comment": "the access-log destination itself"},
                {"id": "CKV_AWS_21", "comment": "another reason"},
            ]
        },
    }


@pytest.mark.parametrize(
    ("check_id", "reason", "message"),
    [
        ("CKV_AWS_18", "  ", "the reason is empty"),
        ("AwsSolutions-S1", "a reason", "'AwsSolutions-S1' is not a checkov check id"),
        ("CKV_AWS_21", "twice", "already skips CKV_AWS_21"),
    ],
)
def test_checkov_skip_refuses_a_skip_without_reason_id_or_twice(check_id: str, reason: str, message: str) -> None:
    _, bucket = _bucket_in_a_stack()
    checkov_skip(bucket, "CKV_AWS_21", "once")
    with pytest.raises(ValueError, match=message):
        checkov_skip(bucket, check_id, reason)


def test_checkov_skip_needs_a_cloudformation_resource() -> None:
    stack, _ = _bucket_in_a_stack()
    with pytest.raises(TypeError, match="Skips/Group: it has no CloudFormation resource"):
        checkov_skip(Construct(stack, "Group"), "CKV_AWS_18", "a reason")
