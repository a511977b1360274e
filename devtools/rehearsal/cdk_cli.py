"""Where a stage is bootstrapped and deployed (Target), and the pinned CDK CLI's two runs there: without any AWS
or CDK setting of the caller, in their own process group, stopped when a check fails or at the deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devtools.rehearsal.base import ACCOUNT, FAKE_CREDENTIALS, HOST, REPO_ROOT, RehearsalError, progress, remaining

if TYPE_CHECKING:
    from stacks.settings import StageSettings

NODE_BIN = REPO_ROOT / "node_modules" / ".bin"
CDK = NODE_BIN / "cdk"
# Where an environment-agnostic stage (region None) is rehearsed unless --region names another: the region
# the shipped stages use. Any region works whose container image the stage's profile publishes.
DEFAULT_REGION = "us-east-1"
# `cdk bootstrap` writes its version here, in the region it bootstraps; `cdk deploy` reads it in the stack's.
BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION_PARAMETER = f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


# --- where the stage goes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The stage's stack, and the account and region it is bootstrapped and deployed in."""

    stage: str
    stack: str
    account: str
    region: str
    # The container image the model must run in this region (environment-agnostic: the template's mapping).
    image: str

    @property
    def environment(self) -> str:
        """The environment ``cdk bootstrap`` takes: the one the stack deploys to."""
        return f"aws://{self.account}/{self.region}"

    @property
    def runtime_service(self) -> str:
        return f"com.amazonaws.{self.region}.sagemaker.runtime"

    @property
    def s3_service(self) -> str:
        return f"com.amazonaws.{self.region}.s3"


def target_of(settings: StageSettings, *, region: str | None = None) -> Target:
    """Where ``settings`` is rehearsed; RehearsalError naming what the rehearsal cannot do for this stage.

    ``region`` picks the region of an environment-agnostic stage (default DEFAULT_REGION); a stage that
    names its region is rehearsed there and nowhere else.
    """
    where = f"stage {settings.name!r}"
    if settings.serving.compiled:
        raise RehearsalError(
            f"{where}: the {settings.profile} profile compiles its model with SageMaker Neo during the deploy, "
            "which moto does not have and this script has no stand-in for; tests/test_deploy_rehearsal.py "
            "rehearses it in-process with the uncompiled model"
        )
    if settings.vpc_id is not None:
        raise RehearsalError(
            f"{where}: it uses the existing VPC {settings.vpc_id}, which an empty moto account does not have; "
            "tests/test_deploy_rehearsal.py rehearses it in-process against a copy of the looked-up VPC"
        )
    if settings.account is not None and settings.account != ACCOUNT:
        raise RehearsalError(
            f"{where}: it deploys to account {settings.account}, moto serves only its default account {ACCOUNT}; "
            "set account=None (or that id) in a copy of the stage to rehearse it"
        )
    if region is not None and settings.region is not None and region != settings.region:
        raise RehearsalError(f"{where} deploys to {settings.region}: --region applies only to stages without one")
    chosen = settings.region or region or DEFAULT_REGION
    registry = settings.serving.registry(settings.container_version)
    found = registry.image(chosen)
    if found is None:  # a stage's own region is validated with its settings already
        image = f"{settings.serving.image_label} {settings.container_version} image"
        raise RehearsalError(
            f"{where}: --region {chosen}: SageMaker publishes no {image} there (the template's image mapping "
            f"has no entry for it); allowed: one of {', '.join(sorted(registry.regions))}"
        )
    return Target(stage=settings.name, stack=settings.stack_name, account=ACCOUNT, region=chosen, image=found[1])


def load_target(stage: str, *, region: str | None = None) -> Target:
    """The target of stage ``stage`` as stacks/stages.py defines it; RehearsalError if it is unknown or invalid."""
    from stacks.settings import SettingsError
    from stacks.stages import load_stage

    try:
        settings = load_stage(stage)
    except SettingsError as error:
        raise RehearsalError("; ".join([str(error).splitlines()[0].rstrip(":"), *error.problems])) from None
    return target_of(settings, region=region)


# --- the environment of the CLI ----------------------------------------------------------------------------


def isolated_environment(
    base: Mapping[str, str], *, endpoint_url: str, region: str, cdk_home: Path, dead_proxy: str
) -> dict[str, str]:
    """``base`` without any AWS, CDK or proxy setting, plus fake credentials aimed at moto, in ``region``.

    ``region`` is the CLI's default region: where an environment-agnostic stack goes, and where the SDK
    calls of both commands are signed for. Requests to localhost go straight to moto; any other goes to
    ``dead_proxy``, which refuses connections.
    """
    env = {
        name: value
        for name, value in base.items()
        if not name.upper().startswith(("AWS_", "CDK_")) and name.upper() not in PROXY_VARIABLES
    }
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "CDK_HOME": str(cdk_home),
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "CDK_DISABLE_VERSION_CHECK": "true",
            "PATH": os.pathsep.join([str(NODE_BIN), base.get("PATH", os.defpath)]),
        }
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = env[name.lower()] = dead_proxy
    env["NO_PROXY"] = env["no_proxy"] = f"localhost,{HOST}"
    return env


def cli_commands(target: Target, output: Path) -> list[tuple[str, list[str]]]:
    """The two CLI runs, named: bootstrap of the environment the stack deploys to, then deploy of the stack.

    moto keeps each region's state apart, like AWS: bootstrapping another region than the stack's leaves the
    stack's region without the bootstrap stack, bucket and version parameter.
    """
    common = ["-c", f"stage={target.stage}", "--no-lookups", "--no-notices", "--output", str(output)]
    return [
        ("cdk bootstrap", ["bootstrap", target.environment, *common]),
        ("cdk deploy", ["deploy", target.stack, "--require-approval", "never", *common]),
    ]


# --- the runs -------------------------------------------------------------------------------------------


def run_cli(what: str, args: list[str], *, env: Mapping[str, str], deadline: float, check: Callable[[], None]) -> None:
    """Run the pinned CDK CLI in its own process group; stop it when ``check`` raises, at the deadline or on Ctrl-C.

    Its output is passed through; the last line names the cause when it fails.
    """
    progress(f"{what}: cdk {' '.join(args)}")
    process = subprocess.Popen(
        [str(CDK), *args],
        cwd=REPO_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    last_line: list[str] = []
    echo = threading.Thread(target=pass_through, args=(process, last_line), daemon=True)
    echo.start()
    try:
        while process.poll() is None:
            check()
            remaining(deadline, what)
            time.sleep(0.2)
    finally:
        stop_process_group(process)
        echo.join(timeout=5)
    if process.returncode != 0:
        cause = f": {last_line[0]}" if last_line else " (its output is above)"
        raise RehearsalError(f"{what} exited with status {process.returncode}{cause}")
    check()


def pass_through(process: subprocess.Popen[bytes], last_line: list[str]) -> None:
    """Copy the CLI's output to ours, keeping its last non-blank line in ``last_line``."""
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode(errors="replace")
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.strip():
            last_line[:] = [line.strip()]


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s, to the CLI and everything it started (the app's Python, node)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue
