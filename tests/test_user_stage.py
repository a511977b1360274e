"""A stage of the user's own is checked like the shipped ones: the README's first customization, done in a
scratch copy of the repository exactly as a user would (copy dev(), rename it, move it to another region).
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import stages

from .conftest import REPO_ROOT

NAME = "scratch-eu"
# The tests that run once per stage: synthesized, nag- and lint-checked, snapshotted, named and valid.
STAGE_CHECKS = (
    "tests/test_snapshots.py",
    "tests/test_compliance.py",
    "tests/test_cfn_lint.py",
    "tests/test_inference_stack.py",
    "tests/test_settings.py",
)
SKIPPED = {".git", ".venv", "node_modules", "cdk.out", ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__"}


def copied_dev_stage() -> str:
    """dev()'s source as a user copies it: a new function, a new name, another region and its AZs."""
    source = inspect.getsource(stages.dev)
    edits = {
        "def dev(": "def scratch_eu(",
        'name="dev"': f'name="{NAME}"',
        '"us-east-1a"': '"eu-west-1a"',
        '"us-east-1b"': '"eu-west-1b"',
        'region="us-east-1"': 'region="eu-west-1"',
    }
    for old, new in edits.items():
        assert old in source, f"dev() no longer contains {old!r}: update this test's copy of it"
        source = source.replace(old, new)
    return f"\n\n{source}\n\nSTAGES[{NAME!r}] = scratch_eu\n"


def run_pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{REPO_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTEST_XDIST_WORKER", None)
    command = [sys.executable, "-m", "pytest", "-v", "-n0", "-p", "no:cacheprovider", *args, "-k", NAME, *STAGE_CHECKS]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scratch") / "kit"
    shutil.copytree(REPO_ROOT, root, ignore=lambda _, names: [name for name in names if name in SKIPPED])
    with (root / "stacks" / "stages.py").open("a", encoding="utf-8") as stages_file:
        stages_file.write(copied_dev_stage())
    return root


def test_a_new_stage_fails_once_asking_to_review_its_snapshot_then_passes_every_stage_check(scratch: Path) -> None:
    first = run_pytest(scratch)
    assert first.returncode == 1, first.stdout[-3000:]
    assert f"stage {NAME!r} has no reviewed snapshot yet" in first.stdout
    assert "--snapshot-update -k scratch-eu" in first.stdout
    failed = [line for line in first.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "test_template_matches_the_reviewed_snapshot[scratch-eu]" in failed[0], failed

    accepted = run_pytest(scratch, "--snapshot-update")
    assert accepted.returncode == 0, accepted.stdout[-3000:]
    snapshot = (
        scratch
        / "tests"
        / "__snapshots__"
        / "test_snapshots"
        / f"test_template_matches_the_reviewed_snapshot[{NAME}].json"
    )
    assert '"eu-west-1a"' in snapshot.read_text(encoding="utf-8")
    # Every per-stage check ran for the new stage, not only the snapshot.
    passed = {line.split("::", 1)[0] for line in accepted.stdout.splitlines() if f"[{NAME}] PASSED" in line}
    assert passed == set(STAGE_CHECKS), accepted.stdout[-3000:]
