"""The Makefile, the front door: targets that run a script or the CDK CLI pass ARGS on, as its header says."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import REPO_ROOT

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
    (last,) = [line for line in dry.stdout.splitlines() if "--planted-argument 7" in line]
    assert last.split()[0] in {".venv/bin/python", "node_modules/.bin/cdk"}, last
