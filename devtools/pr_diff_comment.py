"""The pull request's `cdk diff` comment: one markdown body for every deployable stage, printed to stdout.

    python scripts/pr_diff_comment.py --diff-dir cdk-diff [--run-url URL] STAGE [STAGE ...]

Reads DIR/<stage>.txt (the output of `cdk diff`, colours or not) and DIR/<stage>.exit (its exit status, if
written). The body starts with MARKER, which the workflow uses to find and update its previous comment, then
summarises each stage (resources added, modified, removed, replaced), warns loudly when a resource that must
never be replaced would be replaced or removed (the VPC, the KMS key, log groups, S3 buckets), warns when the
endpoint is replaced (a new instance type: new endpoint, new name, clients must switch), and puts each
stage's diff in a collapsible block, cut to fit GitHub's 65,536-character limit on a comment. Standard library
only: the workflow runs it before anything else is needed.
"""

from __future__ import annotations

import argparse
import functools
import html
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "<!-- rtb-inference-kit:cdk-diff -->"
MAX_COMMENT_CHARS = 65_536  # GitHub's limit on the body of an issue or pull-request comment
STACK_PREFIX = "RtbInference-"

# Stateful resources whose replacement (or removal) loses data or breaks every client. Their logical ids are
# pinned by tests/test_inference_stack.py::test_stateful_resources_keep_their_logical_ids.
NEVER_REPLACE: dict[str, str] = {
    "AWS::EC2::VPC": "subnets, endpoints and the clients' security group are replaced with it: clients lose access",
    "AWS::KMS::Key": "what was encrypted under the key (flow logs, endpoint volumes) stays readable only with it",
    "AWS::Logs::LogGroup": "the retained log group stays behind, no longer managed by the stack",
    "AWS::S3::Bucket": "a new, empty bucket takes the old one's place",
}
# Replacements that are how SageMaker updates work: a new model or endpoint configuration is created, the
# endpoint switches to it in place (no downtime), and CloudFormation deletes the old one afterwards. True only
# while the endpoint itself is kept: see ENDPOINT_REPLACED.
EXPECTED_REPLACEMENT: dict[str, str] = {
    "AWS::SageMaker::EndpointConfig": "a new endpoint configuration; the endpoint updates in place, no downtime",
    "AWS::SageMaker::Model": "a new model version; the endpoint updates in place, no downtime",
}
# The endpoint is named <stack>-<instance type> (stacks/settings.py), so a new instance type replaces it: a
# second endpoint under a new name, and CloudFormation deletes the old one in its cleanup phase. Never "in place".
ENDPOINT_TYPE = "AWS::SageMaker::Endpoint"
ENDPOINT_REPLACED = (
    "new endpoint, new name, clients must switch: both endpoints serve until CloudFormation's cleanup deletes the "
    "old one at the end of the deploy; its scalable target and scaling policy are replaced with it (cdk diff does "
    "not list them: their ResourceId reads the new name at deploy time)"
)
# With the endpoint replaced, its new configuration and model belong to the new endpoint.
FOR_NEW_ENDPOINT: dict[str, str] = {
    "AWS::SageMaker::EndpointConfig": "a new endpoint configuration for the new endpoint (not an in-place update)",
    "AWS::SageMaker::Model": "a new model for the new endpoint (not an in-place update)",
}

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# `[~] AWS::EC2::VPC Network/Vpc NetworkVpc7FB7348F replace`: prefix, type, construct path (optional, may
# contain spaces), logical id, impact (optional), then an optional refactoring hint `(OR move ...)`.
_RESOURCE = re.compile(r"^\[(?P<op>[+~\-\u2190])\] (?P<type>[A-Za-z0-9]+(?:::[A-Za-z0-9]+)+) (?P<rest>.+)$")
_MOVE = re.compile(r"\s*\(OR move .*\)$")
_IMPACTS = ("may be replaced", "replace", "destroy", "orphan", "import")
_NO_DIFFERENCES = "There were no differences"
_LIST_LIMIT = 40  # replacement and warning lines per stage before "... and N more"


def strip_ansi(text: str) -> str:
    """The text without terminal colour and style codes."""
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class ResourceChange:
    """One resource line of `cdk diff`: what happens to which logical id."""

    op: str  # "+" added, "~" modified, "-" removed, "\u2190" imported
    resource_type: str
    logical_id: str
    path: str  # construct path as cdk prints it, "" when the template has no path metadata
    impact: str  # "" or one of _IMPACTS

    @property
    def replaced(self) -> bool:
        return self.impact in ("replace", "may be replaced")

    @property
    def removed(self) -> bool:
        return self.op == "-"

    @property
    def endangers_state(self) -> bool:
        """A resource that must never be replaced would be replaced or taken out of the stack."""
        return self.resource_type in NEVER_REPLACE and (self.replaced or self.removed)

    def describe(self) -> str:
        where = f" ({self.path})" if self.path else ""
        what = "removed" + (f", {self.impact}" if self.impact else "") if self.removed else self.impact
        return f"{self.resource_type} `{self.logical_id}`{where}: **{what}**"


def endpoint_names(diff_text: str, logical_id: str) -> tuple[str, str] | None:
    """(old, new) EndpointName from the property lines under ``logical_id``'s resource line, if it shows them."""
    lines = strip_ansi(diff_text).splitlines()
    start = next((i for i, line in enumerate(lines) if _RESOURCE.match(line) and f" {logical_id}" in line), None)
    if start is None:
        return None
    old = new = None
    in_name = False
    for line in lines[start + 1 :]:
        if _RESOURCE.match(line) or not line.strip():
            break
        if re.search(r"\[~\] EndpointName\b", line):
            in_name = True
        elif in_name and (value := re.search(r"\[([-+])\] (\S+)$", line.rstrip())):
            if value[1] == "-":
                old = value[2]
            else:
                new = value[2]
    return (old, new) if old and new else None


def parse_changes(diff_text: str) -> list[ResourceChange]:
    """Every resource line of a `cdk diff` output, in order."""
    changes = []
    for line in strip_ansi(diff_text).splitlines():
        match = _RESOURCE.match(line.rstrip())
        if match is None:
            continue
        rest = _MOVE.sub("", match["rest"])
        impact = next((name for name in _IMPACTS if rest.endswith(f" {name}")), "")
        if impact:
            rest = rest[: -len(impact) - 1]
        path, _, logical_id = rest.rpartition(" ")
        changes.append(ResourceChange(match["op"], match["type"], logical_id, path, impact))
    return changes


@dataclass(frozen=True)
class StageDiff:
    """One stage's diff output and exit status, as the workflow left them."""

    stage: str
    text: str | None  # None: the diff step did not run
    exit_code: int | None  # None: no exit-status file

    @property
    def stack(self) -> str:
        return f"{STACK_PREFIX}{self.stage}"

    @property
    def clean_text(self) -> str:
        return strip_ansi(self.text or "").strip("\n")

    @property
    def failed(self) -> bool:
        return self.text is None or (self.exit_code is not None and self.exit_code != 0)

    @functools.cached_property
    def changes(self) -> list[ResourceChange]:
        """Parsed once: the comment reads them for every table, alert and count."""
        return [] if self.text is None else parse_changes(self.text)

    def counts(self) -> dict[str, int]:
        changes = self.changes
        return {
            "added": sum(change.op in ("+", "\u2190") for change in changes),
            "modified": sum(change.op == "~" and not change.replaced for change in changes),
            "removed": sum(change.removed for change in changes),
            "replaced": sum(change.replaced for change in changes),
        }

    @property
    def endpoint_replaced(self) -> bool:
        return any(change.replaced and change.resource_type == ENDPOINT_TYPE for change in self.changes)

    def verdict(self, change: ResourceChange) -> str:
        """What a replacement of ``change`` means in this stage's diff."""
        if change.resource_type == ENDPOINT_TYPE:
            names = endpoint_names(self.text or "", change.logical_id)
            renamed = f"`{names[0]}` \u2192 `{names[1]}`: " if names else ""
            return f"{renamed}{ENDPOINT_REPLACED}"
        if self.endpoint_replaced and change.resource_type in FOR_NEW_ENDPOINT:
            return f"expected: {FOR_NEW_ENDPOINT[change.resource_type]}"
        why = EXPECTED_REPLACEMENT.get(change.resource_type)
        return f"expected: {why}" if why else "review: the old resource is deleted after the new one"

    def result(self) -> str:
        if self.text is None:
            return "**not run** (no diff output: see the workflow log)"
        if self.failed:
            return f"**cdk diff failed** (exit {self.exit_code})"
        changes = self.changes
        if not changes and _NO_DIFFERENCES in self.clean_text:
            return "no differences"
        if any(change.endangers_state for change in changes):
            return "\U0001f6a8 **stateful resource replaced or removed**"
        known = (*EXPECTED_REPLACEMENT, ENDPOINT_TYPE)
        unexpected = [c for c in changes if c.replaced and c.resource_type not in known]
        if unexpected:
            return f"\u26a0\ufe0f {len(unexpected)} replacement(s) to review"
        if self.endpoint_replaced:
            return "\u26a0\ufe0f **endpoint replaced: new endpoint, new name, clients must switch**"
        if any(change.replaced for change in changes):
            return "expected replacements only (SageMaker model / endpoint configuration)"
        return "changes, no replacements" if changes else "changes outside resources only"

    @classmethod
    def read(cls, diff_dir: Path, stage: str) -> StageDiff:
        text_file, exit_file = diff_dir / f"{stage}.txt", diff_dir / f"{stage}.exit"
        text = text_file.read_text(encoding="utf-8", errors="replace") if text_file.is_file() else None
        exit_code = None
        if exit_file.is_file():
            raw = exit_file.read_text().strip()
            exit_code = int(raw) if raw.lstrip("-").isdigit() else -1
        return cls(stage=stage, text=text, exit_code=exit_code)


def _bullets(lines: Sequence[str], indent: str = "") -> list[str]:
    shown = [f"{indent}- {line}" for line in lines[:_LIST_LIMIT]]
    if len(lines) > _LIST_LIMIT:
        shown.append(f"{indent}- ... and {len(lines) - _LIST_LIMIT} more (see the diff below)")
    return shown


def _alert(kind: str, title: str, lines: Iterable[str]) -> list[str]:
    return [f"> [!{kind}]", f"> {title}", *(f"> {line}" for line in lines), ""]


def _header(stages: Sequence[StageDiff]) -> list[str]:
    out = [MARKER, "## `cdk diff` against the deployed stacks", ""]
    danger = [
        f"`{diff.stage}`: {change.describe()} \u2014 {NEVER_REPLACE[change.resource_type]}"
        for diff in stages
        for change in diff.changes
        if change.endangers_state
    ]
    if danger:
        out += _alert(
            "CAUTION",
            "**A resource that must never be replaced would be replaced or removed.** Do not merge until this is "
            "understood and intended: check the construct ids of the VPC, the KMS key and the log groups "
            "(tests/test_inference_stack.py::test_stateful_resources_keep_their_logical_ids).",
            _bullets(danger),
        )
    endpoints = [
        f"`{diff.stage}`: {change.describe()} \u2014 {diff.verdict(change)}"
        for diff in stages
        for change in diff.changes
        if change.replaced and change.resource_type == ENDPOINT_TYPE
    ]
    if endpoints:
        out += _alert(
            "WARNING",
            "**The endpoint is replaced: new endpoint, new name, clients must switch.** Clients that do not read "
            "the stack's `EndpointName` output lose the endpoint when the deploy's cleanup deletes the old one.",
            _bullets(endpoints),
        )
    failed = [diff for diff in stages if diff.failed]
    if failed:
        out += _alert(
            "WARNING",
            "**No diff for " + ", ".join(f"`{diff.stage}`" for diff in failed) + "**: the change to that stage is "
            "unknown, not empty. See the workflow log.",
            [],
        )
    out += [
        "| stage | stack | result | added | modified | removed | replaced |",
        "|---|---|---|--:|--:|--:|--:|",
    ]
    for diff in stages:
        counts = diff.counts()
        numbers = " | ".join(str(counts[key]) for key in ("added", "modified", "removed", "replaced"))
        out.append(f"| `{diff.stage}` | `{diff.stack}` | {diff.result()} | {numbers} |")
    out.append("")
    replacements = []
    for diff in stages:
        for change in diff.changes:
            if change.replaced and not change.endangers_state:
                replacements.append(f"`{diff.stage}`: {change.describe()} \u2014 {diff.verdict(change)}")
    if replacements:
        out += ["**Replacements** (CloudFormation creates the new resource, then deletes the old one):", ""]
        out += [*_bullets(replacements), ""]
    return out


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _details(diff: StageDiff, body: str, omitted_lines: int, run_url: str | None) -> list[str]:
    counts = diff.counts()
    summary = (
        f"<b>{html.escape(diff.stage)}</b>: {html.escape(diff.stack)}: "
        f"{counts['added']} added, {counts['modified']} modified, {counts['removed']} removed, "
        f"{counts['replaced']} replaced"
    )
    fence = _fence(body)
    out = ["<details>", f"<summary>{summary}</summary>", "", f"{fence}text", body, fence]
    if omitted_lines:
        where = f"the [workflow run]({run_url})" if run_url else "the workflow log"
        out.append(f"{omitted_lines} more line(s) not shown (comment size limit): the full diff is in {where}.")
    return [*out, "", "</details>", ""]


def _cut(text: str, budget: int) -> tuple[str, int]:
    """The longest run of whole lines of ``text`` within ``budget`` characters, and the lines left out."""
    if len(text) <= budget:
        return text, 0
    lines = text.splitlines()
    kept, used = [], 0
    for line in lines:
        if used + len(line) + 1 > budget:
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept), len(lines) - len(kept)


def render(stages: Sequence[StageDiff], *, run_url: str | None = None, limit: int = MAX_COMMENT_CHARS) -> str:
    """The comment body: header, summary table, warnings, then each stage's diff cut to fit ``limit``."""
    header = "\n".join(_header(stages)) + "\n"
    footer = (
        "<sub>`cdk diff --method=template` with the read-only CI role, against the templates deployed now"
        + (f"; [workflow run]({run_url})" if run_url else "")
        + ". This comment is updated on every push.</sub>\n"
    )
    bodies = [diff.clean_text or "(empty output)" for diff in stages]
    # Fixed cost of each block (wrappers, the "lines not shown" note), then share what is left fairly:
    # small diffs are shown whole, the rest split the remainder.
    overhead = [len("\n".join(_details(diff, "", 10**6, run_url))) + 16 for diff in stages]
    budget = limit - len(header) - len(footer) - sum(overhead)
    allowance = [0] * len(stages)
    pending = sorted(range(len(stages)), key=lambda index: len(bodies[index]))
    while pending:
        share = max(budget, 0) // len(pending)
        index = pending.pop(0)
        allowance[index] = min(len(bodies[index]), share)
        budget -= allowance[index]
    blocks = []
    for diff, body, allowed in zip(stages, bodies, allowance, strict=True):
        shown, omitted = _cut(body, allowed)
        blocks += _details(diff, shown, omitted, run_url)
    comment = header + "\n".join(blocks) + footer
    if len(comment) > limit:  # only with an absurd number of warnings: never exceed the API's limit
        note = "\n\n(cut to GitHub's comment size limit)\n"
        comment = comment[: limit - len(note)] + note
    return comment


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stages", nargs="+", metavar="STAGE", help="stages in the order to show them")
    parser.add_argument("--diff-dir", type=Path, required=True, help="folder of <stage>.txt and <stage>.exit")
    parser.add_argument("--run-url", help="link to the workflow run, for the full logs")
    args = parser.parse_args(argv)
    stages = [StageDiff.read(args.diff_dir, stage) for stage in args.stages]
    sys.stdout.write(render(stages, run_url=args.run_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
