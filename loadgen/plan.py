"""A load test's plan and step schedule: what a run sends where (the Plan and the parts it is resolved from)
and Locust's load shape, which offers each step and asks the knee criteria whether to go on."""

from __future__ import annotations

import argparse
import csv
import math
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
import botocore.session
from botocore.exceptions import ClientError

from cliutil import is_loopback_url, one_line
from loadgen import knee
from loadgen.step_tally import Tally, merged
from modelpack.model_manifest import packaged_manifest_path, read_manifest, reference_rows, schema_of
from rtb_client import ModelSchema, Prediction, predict, stack_output
from stacks.settings import StageSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
# Users started per second at a step change (Locust warns above 100); they start within the warm-up.
SPAWN_RATE = 100.0
MAX_USERS = 2000
# Locust's own default master port, for workers on other machines.
MASTER_PORT = 5557


class LoadTestError(Exception):
    """A problem with the request or the target; the message is one line."""


def users_for(offered_rps: float, user_rps: float) -> int:
    """Enough Locust users that none is paced faster than user_rps."""
    return max(1, math.ceil(offered_rps / user_rps - 1e-9))


@dataclass(frozen=True)
class Distribution:
    """A master and its workers: ``processes`` started on this machine, ``remote_workers`` expected from
    others (python -m scripts.loadtest --worker --master-host ...)."""

    processes: int
    remote_workers: int
    bind_host: str
    port: int

    def __post_init__(self) -> None:
        if self.processes < 0 or self.remote_workers < 0 or self.processes + self.remote_workers < 1:
            raise LoadTestError(
                f"processes={self.processes}, remote_workers={self.remote_workers} is invalid: allowed: at "
                "least 1 worker in all (a master with no worker sends nothing)"
            )


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Everything a run needs, resolved and checked before any load is sent."""

    endpoint_name: str
    endpoint_url: str | None
    stage: str | None
    profile: str
    instance_type: str | None
    client: Any
    schema: ModelSchema
    rows: list[list[float]]
    search: knee.Search
    user_rps: float
    arrivals: str
    step_seconds: int
    warmup_seconds: float
    max_seconds: float
    criteria: knee.Criteria
    instances: int
    safety_factor: float
    out_dir: Path
    drain_seconds: float = 3.5
    samples_dir: Path | None = None
    distribution: Distribution | None = None  # None: every call from this process
    rows_per_request: int = 1  # rows each call carries (drawn from ``rows``)
    argv: tuple[str, ...] = ()  # the command line, which local workers reuse
    parameters: dict[str, Any] = field(default_factory=dict)

    def users(self, offered_rps: float) -> int:
        return users_for(offered_rps, self.user_rps)

    def score(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
        """One call as every Locust user makes it: the kit's client, in the profile's format."""
        return predict(self.client, self.endpoint_name, rows, self.schema, profile=self.profile)


# --- where the plan's parts come from ---------------------------------------------------------------------


def model_manifest(settings: StageSettings | None, flag: str | None, profile: str) -> tuple[dict[str, Any], str]:
    """(manifest, its name for messages): the stage's artifact's, else --manifest, else the profile's packaged one."""
    if settings is not None:
        if flag is not None:
            raise LoadTestError("--manifest with --stage: the stage's artifact's manifest describes its endpoint")
        return settings.artifact.manifest, f"{settings.artifact_file}'s manifest"
    path = Path(flag) if flag is not None else packaged_manifest_path(profile)
    return read_manifest(path), str(path)


def parse_rows(args: argparse.Namespace, manifest: dict[str, Any], where: str) -> list[list[float]]:
    """The rows to send, from --row, --rows-file, or the manifest's reference rows; each checked against
    the manifest's schema."""
    schema = schema_of(manifest, where)
    texts: list[tuple[str, list[str]]] = [(f"--row {text!r}", text.split(",")) for text in args.row or []]
    if args.rows_file is not None:
        path = Path(args.rows_file)
        try:
            with path.open(newline="") as handle:
                texts += [(f"{path.name} line {n}", line) for n, line in enumerate(csv.reader(handle), 1) if line]
        except OSError as error:
            raise LoadTestError(f"cannot read --rows-file: {one_line(error)}") from None
    if not texts:
        try:
            rows = reference_rows(manifest, where)
        except ValueError as error:
            raise LoadTestError(f"{one_line(error)}; or give --row or --rows-file") from None
        schema.check_rows(rows)
        return rows
    rows = []
    for where, values in texts:
        try:
            row = [float(value) for value in values]
        except ValueError:
            raise LoadTestError(f"{where} is not a row of numbers: {','.join(values)!r}") from None
        problem = schema.row_problem(row)  # the kit client's own checks: count, finite, float32's range
        if problem is not None:
            raise LoadTestError(f"{where} {problem}")
        rows.append(row)
    return rows


def make_session(region: str | None, endpoint_url: str | None) -> boto3.Session:
    """A session for the runtime client only: its clients go to ``endpoint_url`` when given (every client of
    the session would, so CloudFormation gets a session of its own); a loopback server gets fake credentials."""
    core = botocore.session.get_session()
    if endpoint_url is not None:
        # The kit client takes a session, not a URL: the session's configured endpoint_url reaches it.
        core.get_component("config_store").set_config_variable("endpoint_url", endpoint_url)
    if endpoint_url is not None and is_loopback_url(endpoint_url):
        return boto3.Session(
            botocore_session=core,
            aws_access_key_id="loadtest",
            aws_secret_access_key="loadtest",  # a local server ignores the signature
            region_name=region or "us-east-1",
        )
    return boto3.Session(botocore_session=core, region_name=region)


def endpoint_of_stage(session: Any, settings: StageSettings) -> str:
    """The EndpointName output of the stage's stack; a one-line error if the stack is not deployed."""
    try:
        return stack_output(session.client("cloudformation"), settings.stack_name, "EndpointName")
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if "does not exist" in message:
            raise LoadTestError(
                f"stack {settings.stack_name} is not deployed in {session.region_name} (deploy it with "
                f"'make deploy STAGE={settings.name}', or give --endpoint-name)"
            ) from None
        raise


def stage_settings(name: str) -> StageSettings:
    """The named stage's settings."""
    from stacks.stages import load_stage

    return load_stage(name)


def serving_profile(settings: StageSettings | None, flag: str | None) -> str:
    """The stage's serving profile, else --profile, else cpu; a --profile that contradicts the stage is refused."""
    if settings is None:
        return flag or "cpu"
    profile = settings.profile
    if flag is not None and flag != profile:
        raise LoadTestError(f"--profile {flag} contradicts stage {settings.name}, whose profile is {profile}")
    return profile


def free_port(host: str) -> int:
    """A port nothing listens on now, for a master whose workers all run on this machine."""
    with socket.socket() as probe:
        try:
            probe.bind((host, 0))
        except OSError as error:
            raise LoadTestError(f"--master-bind-host={host} cannot be bound here: {error.strerror}") from None
        return int(probe.getsockname()[1])


# --- the step schedule -------------------------------------------------------------------------------------


class StepLoad(Protocol):
    """Where a step's load is generated: this process (loadgen/generator.py) or Locust workers
    (loadgen/runners.py)."""

    def begin(self, index: int, offered_rps: float, warmup_seconds: float) -> bool:
        """Start step ``index``; False when nothing can send it (no worker left)."""

    def finish(self, index: int) -> list[Tally] | None:
        """Every generator process's tally of step ``index``, or None when one did not report."""


def step_shape(plan: Plan, generators: StepLoad) -> Any:
    """The step schedule (Locust's load shape, on the master): steps of constant offered RPS; after each,
    its calls are drained and tallied and the knee criteria decide whether to go on."""
    from locust import LoadTestShape

    class StepShape(LoadTestShape):
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]  # Locust leaves it unannotated
            self.began = time.perf_counter()
            self.offered: float | None = None  # the current step's
            self.step_start = 0.0
            self.steps: list[knee.StepStats] = []
            self.ended_by: knee.StopReason | None = None
            self.done = False
            self.messages: Counter[str] = Counter()

        def tick(self) -> tuple[int, float] | None:
            if self.done:
                return None
            now = time.perf_counter()
            if self.offered is not None:
                if now - self.step_start < plan.step_seconds - 0.25:
                    return plan.users(self.offered), SPAWN_RATE
                if not self._finish_step(self.offered):
                    return self._stop(knee.StopReason.INTERRUPTED)
            offered = knee.next_offered(self.steps, plan.criteria, plan.search)
            if offered is None:
                return self._stop(knee.StopReason.MAX_STEPS)
            now = time.perf_counter()
            if now - self.began + plan.step_seconds > plan.max_seconds:
                return self._stop(knee.StopReason.TIME_LIMIT)
            self.offered, self.step_start = offered, now
            if not generators.begin(len(self.steps), offered, plan.warmup_seconds):
                return self._stop(knee.StopReason.INTERRUPTED)
            return plan.users(offered), SPAWN_RATE

        def _finish_step(self, offered: float) -> bool:
            tallies = generators.finish(len(self.steps))
            if tallies is None:
                return False
            tally = merged(tallies)
            self.messages += tally.messages
            stats = tally.stats(offered_rps=offered, users=plan.users(offered), rows_per_request=plan.rows_per_request)
            self.steps.append(stats)
            verdict = knee.check_step(stats, plan.criteria)
            print(knee.step_line(len(self.steps) - 1, stats, verdict), flush=True)
            return True

        def _stop(self, reason: knee.StopReason | None) -> tuple[int, float] | None:
            self.ended_by, self.done = reason, True
            return None

    return StepShape()
