"""The Makefile, the front door: targets that run a script or the CDK CLI pass ARGS on, as its header says, and
its commands speak once and plainly: a diff without credentials says so in one line, a synth ends with the kit's."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, offline_env

# Subprocesses, moto, checkov or the SageMaker SDK: make test runs it, make test-quick leaves it out.
pytestmark = pytest.mark.slow

PASS_ARGS = (
    "bench",
    "bench-client",
    "bench-model",
    "bench-generator",
    "rehearse",
    "preflight",
    "diff",
    "deploy",
    "destroy",
    "tables",
    "triton-model",
    "inf1-model",
)


@pytest.mark.parametrize("target", PASS_ARGS)
def test_target_passes_args_to_its_command(target: str) -> None:
    # -n prints the commands without running them (nor the setup they depend on).
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", target, "ARGS=--planted-argument 7"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    # The target's own command is the last to take ARGS (diff's credentials check reads them first).
    last = [line for line in dry.stdout.splitlines() if "--planted-argument 7" in line][-1]
    assert last.split()[0] in {".venv/bin/python", "node_modules/.bin/cdk"}, last


# --- make diff without credentials ---------------------------------------------------------------------------

NO_CREDENTIALS = (
    "make diff: no AWS credentials found (environment, shared files, SSO, container or instance role); "
    "sign in (aws sso login, or AWS_PROFILE=NAME) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "then run make diff STAGE=dev again"
)


@pytest.fixture
def refused_url() -> Iterator[str]:
    """An endpoint URL on 127.0.0.1 that refuses connections: a port bound, never listened on."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


def run_diff(
    tmp_path: Path, refused_url: str, *args: str, target: str = "diff", **environ: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """make diff STAGE=dev on a machine with no AWS configuration, offline: no instance role to ask (IMDS off),
    AWS calls to a refused port, and a stand-in CLI that only records that it was started. -o setup: nothing is
    installed."""
    started = tmp_path / "cdk-started"
    cli = tmp_path / "cdk"
    cli.write_text(f'#!/bin/sh\necho "$@" > {started}\n')
    cli.chmod(0o755)
    env = {**offline_env(tmp_path), "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": refused_url, **environ}
    command = ["make", "--no-print-directory", "-o", "setup", target, "STAGE=dev", f"CDK={cli}", *args]
    run = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return run, started


@pytest.mark.parametrize("target", ["diff", "deploy", "destroy"])
def test_without_credentials_it_says_so_once_and_fails_before_the_cli_starts(
    tmp_path: Path, refused_url: str, target: str
) -> None:
    run, started = run_diff(tmp_path, refused_url, target=target)
    assert run.returncode != 0
    assert run.stdout.count("no AWS credentials") == 1, run.stdout
    message, make_status = run.stdout.splitlines()
    assert message == NO_CREDENTIALS.replace("make diff", f"make {target}")
    assert make_status.startswith("make: *** [Makefile:") and make_status.endswith(f": {target}] Error 1")
    assert not started.exists()


def test_diff_with_a_profile_that_is_not_there_says_so_once(tmp_path: Path, refused_url: str) -> None:
    run, started = run_diff(tmp_path, refused_url, AWS_PROFILE="nosuch")
    assert run.returncode != 0
    message, _ = run.stdout.splitlines()
    assert message == (
        "make diff: no usable AWS credentials (The config profile (nosuch) could not be found); "
        + NO_CREDENTIALS.split("; ", 1)[1]
    )
    assert not started.exists()


@pytest.mark.parametrize(
    ("args", "environ"),
    [
        ((), {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example"}),
        (("ARGS=--profile elsewhere",), {}),
    ],
    ids=["credentials-in-the-environment", "profile-in-ARGS"],
)
def test_diff_with_credentials_or_a_profile_for_the_cli_runs_the_cli(
    tmp_path: Path, refused_url: str, args: tuple[str, ...], environ: dict[str, str]
) -> None:
    run, started = run_diff(tmp_path, refused_url, *args, **environ)
    assert run.returncode == 0, run.stdout
    assert "no AWS credentials" not in run.stdout
    assert started.read_text().startswith("diff RtbInference-dev -c stage=dev")


# --- make synth ----------------------------------------------------------------------------------------------

SKIPPED = {".git", ".venv", ".venv-checkov", "node_modules", "cdk.out", ".hypothesis"}
SKIPPED |= {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


@pytest.fixture(scope="module")
def kit_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the repository with its venv and node_modules linked in: make synth there replaces the
    copy's cdk.out, not the one people and other tests read."""
    root = tmp_path_factory.mktemp("makefile") / "kit"
    shutil.copytree(REPO_ROOT, root, ignore=lambda _, names: [name for name in names if name in SKIPPED])
    for linked in (".venv", "node_modules"):
        (root / linked).symlink_to(REPO_ROOT / linked)
    return root


def test_synth_ends_with_the_kits_line_and_every_stack_still_passes_the_clis_checks(kit_copy: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    run = subprocess.run(
        ["make", "--no-print-directory", "-o", "setup", "synth", "STAGE=dev"],
        cwd=kit_copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    lines = run.stdout.splitlines()
    assert [line for line in lines if "Supply a stack id" in line] == []
    assert lines[-1] == "synthesized stage dev into cdk.out/ (cdk-nag and cfn-lint clean)"
    # One CLI run per stack keeps it quiet. The CLI reports cdk-nag findings (and construct errors) only for the
    # stacks it selects, and the app does not fail on them: every stack of the assembly must be one run's selection.
    manifest = json.loads((kit_copy / "cdk.out" / "manifest.json").read_text())
    stacks = {name for name, item in manifest["artifacts"].items() if item["type"] == "aws:cloudformation:stack"}
    selected = [line.split()[-1] for line in lines if line.startswith("node_modules/.bin/cdk synth ")]
    assert sorted(selected) == sorted(stacks)
