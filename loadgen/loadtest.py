"""Load-test a SageMaker real-time endpoint to its latency knee with Locust; report MAX_RPS and the target.

    python -m scripts.loadtest --stage dev                                   # the stage's deployed endpoint
    python -m scripts.loadtest --stage dev --write-back                      # ... and record MAX_RPS per instance
    python -m scripts.loadtest --endpoint-url http://127.0.0.1:8080 --slo-ms 100 --step-seconds 5
    python -m scripts.loadtest --endpoint-url http://127.0.0.1:8080 --slo-ms 100 --step-seconds 5 --profile gpu

The last two load a local ``python -m scripts.fake_endpoint`` (started with --profile gpu for the second),
no AWS configuration needed: its 4 workers x 20 ms serve 200 RPS, and 20 ms of service alone would miss
the default 20 ms SLO, hence --slo-ms. The first two need AWS credentials for the stage's account.

Steps of constant offered load rise from --start-rps by --step-rps: Locust users (offered / --user-rps of
them) take their start times from one schedule paced at the offered rate. After each step one line shows
offered and achieved RPS, p50/p90/p99 and errors. A step fails when its p99 is over the SLO, its error rate
over the bound, or its achieved rate under --min-achieved of the offered one (latency is timed from each
call's slot in the schedule, so a call that waited for a free user counts the wait: no coordinated
omission; a failing step whose generator sent late with users free is client_bound, not an SLO result);
after the first failure,
--refine steps halve the gap to the last good step. MAX_RPS is the achieved rate of the best good step
below the lowest failing one (loadgen/knee.py). The report (JSON) and the plot (PNG) go to --out-dir.
Every run is bounded by --max-seconds. Exit 0 when a MAX_RPS was found; otherwise one line on stderr and
exit 1. Each call scores one row in the serving profile's format: the stage's profile, or --profile
without a stage (default cpu). Rows have as many values as the model manifest's features: the stage's
artifact's manifest, else --manifest, else the profile's packaged artifact's; by default the calls send
that manifest's reference rows.

The Locust users share one kit client (the rtb_client package) per process: that is how ad servers call
the endpoint (one pooled, kept-alive client per process), so the test measures the same path, and
clients are not built while load is running. Its pool is sized to the most users, so no call waits for
or reopens a connection. At each step's end no more slots are claimed and the calls in flight drain
before the step is tallied: a call counts in the step whose window holds its slot, and no step inherits
the previous one's queue.

One process drives a few hundred RPS (make bench-generator). For more, Locust's master and workers:

    python -m scripts.loadtest --endpoint-url http://127.0.0.1:8080 --slo-ms 100 --processes 2
    python -m scripts.loadtest --stage prod --processes 0 --expect-workers 4 --master-bind-host 10.0.1.10
    python -m scripts.loadtest --stage prod --worker --master-host 10.0.1.10          # on each generator host

The master owns the step schedule and sends each step's rate, split evenly, to its workers; each worker
paces its share and returns its step's latency HdrHistograms and counts (loadgen/step_tally.py), which
the master adds up exactly. --processes N starts N workers on this machine (their logs go to the run's
directory); --expect-workers waits for workers started by hand on other hosts with the same target and
request options.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import boto3
import botocore
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import is_loopback_host, is_loopback_url, one_line, use_pinned_node  # noqa: E402
from loadgen import knee  # noqa: E402
from loadgen.step_tally import Tally, merged  # noqa: E402
from modelpack.model_manifest import packaged_manifest_path, read_manifest, reference_rows, schema_of  # noqa: E402
from rtb_client import (  # noqa: E402
    PROFILES,
    ModelSchema,
    Prediction,
    RequestError,
    predict,
    runtime_client,
    stack_output,
)
from stacks.settings import AutoscalingSettings, SettingsError, StageSettings  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "bench-results"
# Users started per second at a step change (Locust warns above 100); they start within the warm-up.
SPAWN_RATE = 100.0
MAX_USERS = 2000
# Between steps a user polls for the next step's first slot this often.
PAUSED_POLL_SECONDS = 0.005
# Distributed runs: how long the master waits for its workers to connect, and for a step's tallies
# beyond the drain (one message each over the network).
WORKER_CONNECT_SECONDS = 120
WORKER_REPORT_SLACK_SECONDS = 10.0
# Locust's own default master port, for workers on other machines.
MASTER_PORT = 5557
MAX_PROCESSES = 64


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
    argv: tuple[str, ...] = ()  # the command line, which local workers reuse
    parameters: dict[str, Any] = field(default_factory=dict)

    def users(self, offered_rps: float) -> int:
        return users_for(offered_rps, self.user_rps)

    def score(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
        """One call as every Locust user makes it: the kit's client, in the profile's format."""
        return predict(self.client, self.endpoint_name, rows, self.schema, profile=self.profile)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.loadtest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    target = parser.add_argument_group("target")
    target.add_argument("--stage", help="a stage of stacks/stages.py: its endpoint, region, instances and safety")
    target.add_argument("--endpoint-name", help="the endpoint (default: the stage stack's EndpointName output)")
    target.add_argument(
        "--endpoint-url",
        help="send to this URL instead of the regional runtime: a local fake endpoint, or a runtime VPC endpoint's "
        "zonal DNS name (https://...)",
    )
    target.add_argument("--region", help="default: the stage's region, else the AWS configuration")
    target.add_argument(
        "--profile", choices=PROFILES, help="the serving profile's request format (default: the stage's, else cpu)"
    )
    target.add_argument("--instances", type=int, help="instances behind the endpoint (default: the stage's initial "
                        "instance count, or 1 without a stage)")  # fmt: skip
    target.add_argument("--safety", type=float, help="safety factor for the target (default: the stage's, or 0.5)")
    rows = parser.add_argument_group("requests")
    rows.add_argument(
        "--row",
        action="append",
        help="a CSV row of as many numbers as the manifest's features (repeatable; default: the manifest's "
        "reference rows)",
    )
    rows.add_argument(
        "--manifest",
        help="the model manifest that gives the rows' features and the answers' shape (default: the stage's "
        "artifact's, else the profile's packaged artifact's); not with --stage",
    )
    rows.add_argument("--rows-file", help="a CSV file of rows (no header); each call sends one, picked at random")
    criteria = parser.add_argument_group("criteria")
    criteria.add_argument("--slo-ms", type=float, default=20.0, help="p99 latency SLO (default: 20, the kit's goal)")
    criteria.add_argument("--max-error-rate", type=float, default=0.01, help="error bound (default: 0.01)")
    criteria.add_argument(
        "--min-achieved", type=float, default=0.9, help="a step must achieve this share of its offered RPS (0.9)"
    )
    criteria.add_argument(
        "--max-lateness-ms",
        type=float,
        default=10.0,
        help="a failing step is the generator's (client_bound) when free users sent this late, p99 (default: 10)",
    )
    shape = parser.add_argument_group("load shape and bounds")
    shape.add_argument("--start-rps", type=float, default=50.0, help="offered RPS of the first step (default: 50)")
    shape.add_argument("--step-rps", type=float, default=50.0, help="added per step (default: 50)")
    shape.add_argument("--max-rps", type=float, help="the highest step (default: --max-steps decides)")
    shape.add_argument("--max-steps", type=int, default=40, help="at most this many rising steps (default: 40)")
    shape.add_argument(
        "--refine", type=int, default=2, help="steps that then halve the gap between the last good and the first "
        "failing rate (default: 2)"
    )  # fmt: skip
    shape.add_argument("--step-seconds", type=int, default=20, help="whole seconds per step, at least 2 (default: 20)")
    shape.add_argument("--warmup-seconds", type=float, help="left out of each step's numbers (default: a fifth)")
    shape.add_argument(
        "--user-rps", type=float, help="offered RPS per Locust user; users = offered / this (default: 1000 / (2 x "
        "SLO ms), so the users keep the pace while latency is under twice the SLO)"
    )  # fmt: skip
    shape.add_argument(
        "--arrivals", choices=("paced", "poisson"), default="paced",
        help="paced: evenly spaced calls, finds the throughput knee (default); poisson: random gaps, like many "
        "independent clients (a lower, burst-aware knee)",
    )  # fmt: skip
    shape.add_argument("--max-seconds", type=float, default=900.0, help="hard bound on the run (default: 900)")
    scale = parser.add_argument_group(
        "scale out (Locust master and workers; each worker takes an even share of every step's rate)"
    )
    scale.add_argument(
        "--processes", type=int, default=1,
        help="generator processes on this machine: above 1, this command is the master and starts them as "
        "workers (default: 1, every call from this process); 0 with --expect-workers: a master only",
    )  # fmt: skip
    scale.add_argument(
        "--expect-workers", type=int, default=0,
        help="workers on other machines to wait for (they run this command's target and request options "
        "with --worker --master-host THIS_HOST); needs --master-bind-host (default: 0)",
    )  # fmt: skip
    scale.add_argument(
        "--master-bind-host", default="127.0.0.1",
        help="the master's address for workers (default: 127.0.0.1; a private address for other machines)",
    )  # fmt: skip
    scale.add_argument(
        "--master-port", type=int,
        help=f"the master's port (default: a free one for local workers only, else {MASTER_PORT})",
    )  # fmt: skip
    scale.add_argument("--worker", action="store_true", help="run as a worker of the master at --master-host")
    scale.add_argument("--master-host", help="with --worker: the master's address")
    output = parser.add_argument_group("output")
    output.add_argument("--out-dir", help="where report.json and latency.png go (default: bench-results/loadtest-...)")
    output.add_argument(
        "--samples-dir",
        help="each generator process appends every counted call (step, outcome, latency from the slot ms, "
        "service ms) to DIR/samples-PID.csv: the raw data behind the report's histograms",
    )
    output.add_argument(
        "--write-back",
        action="store_true",
        help="record MAX_RPS per instance for --stage in stacks/data/measurements.json (the next deploy uses it)",
    )
    return parser


def _positive(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise LoadTestError(f"{name}={value} is invalid: allowed: greater than 0")


def check_arguments(args: argparse.Namespace) -> None:
    """Semantic checks of the options, before any AWS call."""
    if args.stage is None and args.endpoint_name is None and args.endpoint_url is None:
        raise LoadTestError("give --stage, --endpoint-name or --endpoint-url")
    if args.write_back and args.stage is None:
        raise LoadTestError("--write-back needs --stage: a measurement is recorded for a stage's own endpoint")
    if args.write_back and args.endpoint_url and is_loopback_url(args.endpoint_url):
        raise LoadTestError("--write-back with a loopback --endpoint-url: a local server is not the stage's endpoint")
    for name in ("slo_ms", "start_rps", "step_rps", "max_rps", "max_seconds", "user_rps", "max_lateness_ms"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    if args.step_seconds < 2:
        raise LoadTestError(f"--step-seconds={args.step_seconds} is invalid: allowed: 2 or more (Locust ticks at 1 s)")
    if args.warmup_seconds is not None and not 0 <= args.warmup_seconds < args.step_seconds - 0.5:
        raise LoadTestError(f"--warmup-seconds={args.warmup_seconds} is invalid: allowed: 0 to under the step")
    if args.instances is not None and args.instances < 1:
        raise LoadTestError(f"--instances={args.instances} is invalid: allowed: 1 or more")
    if args.endpoint_url is not None and urlsplit(args.endpoint_url).scheme not in ("http", "https"):
        raise LoadTestError(f"--endpoint-url={args.endpoint_url!r} is invalid: allowed: an http:// or https:// URL")
    if not 0 <= args.processes <= MAX_PROCESSES:
        raise LoadTestError(f"--processes={args.processes} is invalid: allowed: 0 to {MAX_PROCESSES}")
    if args.expect_workers < 0:
        raise LoadTestError(f"--expect-workers={args.expect_workers} is invalid: allowed: 0 or more")
    if args.processes == 0 and args.expect_workers == 0:
        raise LoadTestError("--processes=0 is invalid: allowed: 0 only with --expect-workers (a master only)")
    if args.expect_workers and is_loopback_host(args.master_bind_host):
        raise LoadTestError(
            f"--expect-workers with --master-bind-host={args.master_bind_host}: workers on other machines cannot "
            "reach a loopback address; give this machine's private address"
        )
    if args.master_port is not None and not 1 <= args.master_port <= 65535:
        raise LoadTestError(f"--master-port={args.master_port} is invalid: allowed: 1 to 65535")
    if args.worker:
        if args.master_host is None:
            raise LoadTestError("--worker needs --master-host: the address of the master it takes steps from")
        if args.processes != 1 or args.expect_workers or args.write_back:
            raise LoadTestError("--worker takes no --processes, --expect-workers or --write-back: the master's")
    elif args.master_host is not None:
        raise LoadTestError("--master-host is for --worker; a master binds --master-bind-host")


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


def _load_stage(name: str) -> StageSettings:
    # Loading the stages starts jsii (the CI roles stack is defined there): only when a stage is named.
    use_pinned_node()
    from stacks.stages import load_stage

    return load_stage(name)


def _profile(settings: StageSettings | None, flag: str | None) -> str:
    """The stage's serving profile, else --profile, else cpu; a --profile that contradicts the stage is refused."""
    if settings is None:
        return flag or "cpu"
    profile = settings.profile
    if flag is not None and flag != profile:
        raise LoadTestError(f"--profile {flag} contradicts stage {settings.name}, whose profile is {profile}")
    return profile


def prepare(args: argparse.Namespace, session: Any | None = None) -> Plan:
    """Resolve the stage, endpoint and rows, build the client and check the endpoint answers one call.

    ``session`` is the one that reads the stack's outputs (default: the AWS configuration's)."""
    check_arguments(args)
    settings = _load_stage(args.stage) if args.stage is not None else None
    profile = _profile(settings, args.profile)
    manifest, where = model_manifest(settings, args.manifest, profile)
    schema = schema_of(manifest, where)
    rows = parse_rows(args, manifest, where)
    autoscaling = settings.autoscaling if settings is not None else AutoscalingSettings()
    region = args.region or (settings.region if settings is not None else None)
    local = args.endpoint_url is not None and is_loopback_url(args.endpoint_url)
    if args.endpoint_name is not None:
        endpoint_name = args.endpoint_name
    elif settings is not None and not local:
        endpoint_name = endpoint_of_stage(session or boto3.Session(region_name=region), settings)
    else:
        endpoint_name = "fake-endpoint"
    criteria = knee.Criteria(
        slo_p99_ms=args.slo_ms,
        max_error_rate=args.max_error_rate,
        min_achieved_ratio=args.min_achieved,
        max_generator_lateness_ms=args.max_lateness_ms,
    )
    user_rps = args.user_rps or 1000.0 / (2 * args.slo_ms)
    search = knee.Search(
        start_rps=args.start_rps,
        step_rps=args.step_rps,
        max_rps=args.max_rps,
        max_steps=args.max_steps,
        refine=args.refine,
    )
    most_users = users_for(max(search.coarse()), user_rps)
    if most_users > MAX_USERS:
        raise LoadTestError(
            f"the top step needs {most_users} Locust users (over {MAX_USERS}); raise --user-rps or lower --max-rps"
        )
    # One attempt per call: a retried 5XX would hide the server's error share (a 6.25% share of failing first
    # attempts reads as 0.39% after one retry) and place MAX_RPS past the real limit.
    client = runtime_client(
        make_session(region, args.endpoint_url), region=region, pool_size=max(64, most_users + 8), max_attempts=1
    )
    instances = args.instances or (settings.initial_instance_count if settings is not None else 1)
    safety = args.safety if args.safety is not None else autoscaling.safety_factor
    knee.invocations_target(1.0, safety)  # the same bounds as the stage setting, before the run
    warmup = args.warmup_seconds if args.warmup_seconds is not None else args.step_seconds / 5
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    label = args.stage or ("local" if local else endpoint_name)
    out_dir = Path(args.out_dir) if args.out_dir else DEFAULT_OUT / f"loadtest-{label}-{started}"
    try:
        # A wrong name, URL or format fails first; a master that sends nothing (--processes 0) may sit
        # outside the clients' path, and each of its workers makes this check.
        if args.processes:
            predict(client, endpoint_name, rows[:1], schema, profile=profile)
    except (ClientError, BotoCoreError, RequestError) as error:
        raise LoadTestError(f"endpoint {endpoint_name} did not answer a first request: {one_line(error)}") from None
    samples_dir = None if args.samples_dir is None else Path(args.samples_dir)
    if samples_dir is not None:
        try:
            samples_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LoadTestError(f"--samples-dir={args.samples_dir} cannot be created: {one_line(error)}") from None
    distribution = None
    if args.processes != 1 or args.expect_workers:
        port = args.master_port or (MASTER_PORT if args.expect_workers else free_port(args.master_bind_host))
        distribution = Distribution(args.processes, args.expect_workers, args.master_bind_host, port)
    # A step's calls end within the client's timeouts; the drain waits that long, and a little more.
    drain_seconds = client.meta.config.connect_timeout + client.meta.config.read_timeout + 2.0
    parameters = {
        "processes": 1 if distribution is None else distribution.processes + distribution.remote_workers,
        "drain_seconds": drain_seconds,
        "start_rps": args.start_rps,
        "step_rps": args.step_rps,
        "max_rps": args.max_rps,
        "max_steps": args.max_steps,
        "refine": args.refine,
        "step_seconds": args.step_seconds,
        "warmup_seconds": warmup,
        "user_rps": user_rps,
        "arrivals": args.arrivals,
        "max_seconds": args.max_seconds,
        "rows": len(rows),
        "profile": profile,
        "manifest": where,
        "schema": {"features": len(schema.features), "kind": schema.kind, "columns": schema.columns},
        "client": "rtb_client.runtime_client, one per process (pool "
        f"{max(64, most_users + 8)} connections, no retries: every call is one attempt), shared by all Locust users",
    }
    return Plan(
        endpoint_name=endpoint_name,
        endpoint_url=args.endpoint_url,
        stage=args.stage,
        profile=profile,
        instance_type=settings.instance_type if settings is not None else None,
        client=client,
        schema=schema,
        rows=rows,
        search=search,
        user_rps=user_rps,
        arrivals=args.arrivals,
        step_seconds=args.step_seconds,
        warmup_seconds=warmup,
        max_seconds=args.max_seconds,
        criteria=criteria,
        instances=instances,
        safety_factor=safety,
        out_dir=out_dir,
        drain_seconds=drain_seconds,
        samples_dir=samples_dir,
        distribution=distribution,
        argv=tuple(getattr(args, "argv", ())),
        parameters=parameters,
    )


def free_port(host: str) -> int:
    """A port nothing listens on now, for a master whose workers all run on this machine."""
    with socket.socket() as probe:
        try:
            probe.bind((host, 0))
        except OSError as error:
            raise LoadTestError(f"--master-bind-host={host} cannot be bound here: {error.strerror}") from None
        return int(probe.getsockname()[1])


class Pacer:
    """The offered rate: one schedule of slots (intended send times) shared by all users, each of whom takes
    the next one.

    Paced arrivals are evenly spaced at 1/rate, so the offered rate is exact and the endpoint's throughput
    knee shows sharply; Poisson arrivals have random (exponential) gaps with the same mean, like many
    independent ad servers. A slot is never skipped: when every user was busy, the next free user sends the
    late slot at once and its latency counts from the slot, as an open-loop client's would (skipping it
    would hide the wait: coordinated omission). The schedule restarts at each step (``set_rate``).
    (Per-user pacing with random phases, Locust's constant_throughput, fixes each user's phase for the whole
    step: a few users that happen to line up send bursts all step long, which at 50% load gave a p99 2.5
    times the service time.)
    """

    def __init__(self, *, poisson: bool = False, seed: int | None = None) -> None:
        self.poisson = poisson
        self.interval = 1.0
        self._next: float | None = None
        self._random = random.Random(seed)

    def set_rate(self, rps: float) -> None:
        """A new step: this rate, and a schedule that starts at the next claim (no backlog carried over)."""
        self.interval = 1.0 / rps
        self._next = None

    def claim(self, now: float) -> float:
        """Claim the next slot: its intended send time, which may already have passed."""
        if self._next is None:
            self._next = now
        else:
            self._next += self._random.expovariate(1.0 / self.interval) if self.poisson else self.interval
        return self._next

    def delay(self, now: float) -> float:
        """Claim the next slot; the seconds to wait for it (0 for a late one)."""
        return max(0.0, self.claim(now) - now)


def error_class(error: BaseException | None) -> str:
    """ "ok", "5xx" or "4xx" (the endpoint's HTTP answer), or "client" (a timeout, a refused answer)."""
    if error is None:
        return "ok"
    status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    if isinstance(status, int) and 500 <= status <= 599:
        return "5xx"
    if isinstance(status, int) and 400 <= status <= 499:
        return "4xx"
    return "client"


@dataclass
class _Step:
    """The step a generator process is running: its tally and the window of slots it counts."""

    index: int
    tally: Tally
    warm_until: float
    began: float
    cpu_began: float
    paused_at: float = math.inf
    samples: list[str] = field(default_factory=list)  # counted calls as CSV lines, with --samples-dir


class Generator:
    """This process's share of the offered load: its pacer, the current step's tally and the calls whose
    slots were claimed but not yet recorded.

    A call belongs to the step whose slot it took and is counted when the slot lies in the step's window
    (after the warm-up, before the pause), however late it completes: at a step's end the generator stops
    claiming slots and drains the calls in flight before the tally is closed, so no step inherits the
    previous one's queue. Calls still unfinished when the drain runs out are counted as failed."""

    def __init__(self, *, poisson: bool, drain_seconds: float, samples_dir: Path | None = None) -> None:
        self.pacer = Pacer(poisson=poisson)
        self.drain_seconds = drain_seconds
        self.samples_path = None if samples_dir is None else samples_dir / f"samples-{os.getpid()}.csv"
        self.step: _Step | None = None
        self.paused = True
        self.claims: dict[int, Any] = {}  # id(user) -> user, for users holding a slot not yet recorded

    @classmethod
    def for_plan(cls, plan: Plan) -> Generator:
        return cls(poisson=plan.arrivals == "poisson", drain_seconds=plan.drain_seconds, samples_dir=plan.samples_dir)

    def begin(self, index: int, rate: float, warmup_seconds: float) -> None:
        now = time.perf_counter()
        self.pacer.set_rate(rate)
        self.step = _Step(index, Tally(), now + warmup_seconds, now, time.process_time())
        self.paused = False

    def claim(self, user: Any) -> tuple[float, _Step] | None:
        """The next slot and its step, or None between steps."""
        if self.paused or self.step is None:
            return None
        self.claims[id(user)] = user
        return self.pacer.claim(time.perf_counter()), self.step

    def record(self, user: Any, step: _Step, slot: float, error: BaseException | None, **timings: float) -> None:
        """A claimed slot's call is over (``timings``: latency_ms, service_ms, lateness_ms)."""
        self.claims.pop(id(user), None)
        if step.warm_until <= slot < step.paused_at:
            message = "" if error is None else f"{type(error).__name__}: {one_line(error)[:200]}"
            kind = error_class(error)
            step.tally.record(kind, message=message, **timings)
            if self.samples_path is not None:
                step.samples.append(f"{step.index + 1},{kind},{timings['latency_ms']!r},{timings['service_ms']!r}\n")

    def _in_flight(self) -> int:
        # A user stopped while waiting for its slot (fewer users at a step's start) never records it.
        self.claims = {key: user for key, user in self.claims.items() if not getattr(user.greenlet, "dead", True)}
        return len(self.claims)

    def drain(self, sleep: Any) -> Tally:
        """End the step: claim no more slots, wait for the calls in flight (at most drain_seconds, sleeping
        with ``sleep``), close the tally with the window and CPU, and return it."""
        step = self.step
        if step is None:
            raise LoadTestError("a step was ended before it began")
        now = time.perf_counter()
        self.paused, step.paused_at = True, now
        cpu = 100 * (time.process_time() - step.cpu_began) / max(now - step.began, 1e-9)
        deadline = now + self.drain_seconds
        while self._in_flight() and time.perf_counter() < deadline:
            sleep(0.005)
        unfinished = self._in_flight()
        if unfinished:
            step.tally.other_errors += unfinished
            step.tally.messages[f"unfinished after the {self.drain_seconds:g} s drain"] += unfinished
            step.samples += [f"{step.index + 1},unfinished,nan,nan\n"] * (unfinished if self.samples_path else 0)
            self.claims.clear()  # counted: the next step does not wait for them
        step.tally.close(max(step.paused_at - step.warm_until, 1e-9), cpu)
        if self.samples_path is not None:
            with self.samples_path.open("a") as handle:
                handle.writelines(step.samples)
        return step.tally


def _user_class(plan: Plan, generator: Generator) -> type:
    """The Locust user: calls InvokeEndpoint through the kit's client in slots claimed from ``generator``.
    The master and every worker build it by this name, which is how Locust assigns users to workers."""
    import gevent
    from locust import User, task

    class SageMakerRuntimeUser(User):
        slot: tuple[float, _Step] | None = None  # the claimed slot (intended send time) and its step
        ready = 0.0  # when this user could send it: the slot, or later if it was busy

        def _claim(self) -> float:
            now = time.perf_counter()
            self.slot = generator.claim(self)
            if self.slot is None:
                return PAUSED_POLL_SECONDS
            self.ready = max(self.slot[0], now)
            return self.ready - now

        def on_start(self) -> None:
            gevent.sleep(self._claim())

        def wait_time(self) -> float:
            return self._claim()

        @task
        def invoke(self) -> None:
            if self.slot is None:
                return
            (slot, step), self.slot = self.slot, None
            row = random.choice(plan.rows)
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                plan.score([row])
            except Exception as caught:  # every failure is a failed call, never the end of the test
                error = caught
            ended = time.perf_counter()
            generator.record(
                self, step, slot, error,
                latency_ms=(ended - slot) * 1000,  # from the slot: the wait for a free user counts
                service_ms=(ended - started) * 1000,
                lateness_ms=max(0.0, started - self.ready) * 1000,
            )  # fmt: skip

    return SageMakerRuntimeUser


class InProcess:
    """The steps' load generated in this process (the default, one process)."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    def begin(self, index: int, offered_rps: float, warmup_seconds: float) -> None:
        self.generator.begin(index, offered_rps, warmup_seconds)

    def finish(self, index: int) -> list[Tally]:
        import gevent

        return [self.generator.drain(gevent.sleep)]


class Workers:
    """The steps' load generated by Locust workers: the master sends each step's rate, split evenly, and
    collects every worker's tally of it (messages "kit_step", "kit_finish", "kit_tally")."""

    def __init__(self, runner: Any, drain_seconds: float) -> None:
        self.runner = runner
        self.wait_seconds = drain_seconds + WORKER_REPORT_SLACK_SECONDS
        self.tallies: dict[int, list[Tally]] = {}
        self.count = 0
        runner.register_message("kit_tally", self._on_tally)

    def _on_tally(self, environment: Any, msg: Any, **_: Any) -> None:
        self.tallies.setdefault(int(msg.data["index"]), []).append(Tally.from_message(msg.data["tally"]))

    def begin(self, index: int, offered_rps: float, warmup_seconds: float) -> None:
        self.count = self.runner.worker_count
        data = {"index": index, "rate": offered_rps / self.count, "warmup": warmup_seconds}
        self.runner.send_message("kit_step", data)

    def finish(self, index: int) -> list[Tally] | None:
        """Every worker's tally of step ``index``, or None when one did not report in time."""
        import gevent

        self.runner.send_message("kit_finish", {"index": index})
        deadline = time.perf_counter() + self.wait_seconds
        while len(self.tallies.get(index, [])) < self.count and time.perf_counter() < deadline:
            gevent.sleep(0.01)
        tallies = self.tallies.pop(index, [])
        if len(tallies) < self.count:
            print(f"load test stopped: {len(tallies)} of {self.count} workers reported step {index + 1}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return None
        return tallies


def _require_gevent() -> None:
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        raise LoadTestError("run the load test as a program (python -m scripts.loadtest): Locust needs gevent first")


def _shape(plan: Plan, generators: InProcess | Workers) -> Any:
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
            generators.begin(len(self.steps), offered, plan.warmup_seconds)
            return plan.users(offered), SPAWN_RATE

        def _finish_step(self, offered: float) -> bool:
            tallies = generators.finish(len(self.steps))
            if tallies is None:
                return False
            tally = merged(tallies)
            self.messages += tally.messages
            stats = tally.stats(offered_rps=offered, users=plan.users(offered))
            self.steps.append(stats)
            verdict = knee.check_step(stats, plan.criteria)
            print(knee.step_line(len(self.steps) - 1, stats, verdict), flush=True)
            return True

        def _stop(self, reason: knee.StopReason | None) -> tuple[int, float] | None:
            self.ended_by, self.done = reason, True
            return None

    return StepShape()


def run_steps(plan: Plan) -> tuple[list[knee.StepStats], knee.StopReason | None, Counter[str]]:
    """Drive the steps with Locust, in this process or on workers; returns the steps, why they ended, and
    the errors seen."""
    _require_gevent()
    import gevent
    from locust.env import Environment
    from locust.runners import STATE_STOPPED

    generator = Generator.for_plan(plan)
    user = _user_class(plan, generator)
    environment = Environment(user_classes=[user], stop_timeout=None)
    workers: list[subprocess.Popen[bytes]] = []
    runner: Any
    generators: InProcess | Workers
    if plan.distribution is None:
        runner = environment.create_local_runner()
        generators = InProcess(generator)
    else:
        from locust.exception import RPCError

        try:
            runner = environment.create_master_runner(plan.distribution.bind_host, plan.distribution.port)
        except RPCError as error:  # the address is not this machine's, or the port is taken
            raise LoadTestError(
                f"--master-bind-host={plan.distribution.bind_host} --master-port={plan.distribution.port}: "
                f"{one_line(error)}"
            ) from None
        generators = Workers(runner, plan.drain_seconds)
    shape = _shape(plan, generators)
    environment.shape_class = shape
    deadline = time.monotonic() + plan.max_seconds + 10
    try:
        if plan.distribution is not None:
            workers = _start_local_workers(plan)
            _wait_for_workers(plan, runner, workers)
        runner.start_shape()
        while not shape.done and runner.state != STATE_STOPPED and time.monotonic() < deadline:
            gevent.sleep(0.1)
        if not shape.done:
            shape.ended_by = knee.StopReason.TIME_LIMIT
    except KeyboardInterrupt:
        shape.ended_by = knee.StopReason.INTERRUPTED
    finally:
        runner.quit()
        _stop_local_workers(workers)
    return shape.steps, shape.ended_by, shape.messages


def _start_local_workers(plan: Plan) -> list[subprocess.Popen[bytes]]:
    """--processes N: N workers on this machine, each ``python -m scripts.loadtest`` with the run's target
    and request options; their output goes to worker-N.log in the run's directory."""
    assert plan.distribution is not None
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    bind = plan.distribution.bind_host
    host = "127.0.0.1" if bind in ("0.0.0.0", "*", "") else bind  # where this machine reaches it
    argv = [*worker_argv(plan.argv), "--worker", "--master-host", host, "--master-port", str(plan.distribution.port)]
    # The master's working directory, so relative paths in the options (--rows-file, --samples-dir) mean
    # the same files; the kit's modules by path.
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    started = []
    for number in range(1, plan.distribution.processes + 1):
        with (plan.out_dir / f"worker-{number}.log").open("wb") as log:
            started.append(subprocess.Popen(
                [sys.executable, "-m", "scripts.loadtest", *argv], cwd=Path.cwd(), env=environment, stdout=log,
                stderr=subprocess.STDOUT,
            ))  # fmt: skip
    return started


def _wait_for_workers(plan: Plan, runner: Any, workers: list[subprocess.Popen[bytes]]) -> None:
    import gevent

    assert plan.distribution is not None
    expected = plan.distribution.processes + plan.distribution.remote_workers
    print(
        f"master at {plan.distribution.bind_host}:{plan.distribution.port}: waiting for {expected} workers "
        f"({plan.distribution.processes} started here, at most {WORKER_CONNECT_SECONDS} s)",
        flush=True,
    )
    deadline = time.monotonic() + WORKER_CONNECT_SECONDS
    while runner.worker_count < expected:
        for number, process in enumerate(workers, 1):
            if process.poll() is not None:
                log = (plan.out_dir / f"worker-{number}.log").read_text(errors="replace").strip().splitlines()
                raise LoadTestError(f"worker {number} exited before the run: {log[-1] if log else 'no output'}")
        if time.monotonic() > deadline:
            raise LoadTestError(
                f"{runner.worker_count} of {expected} workers connected to the master at "
                f"{plan.distribution.bind_host}:{plan.distribution.port} within {WORKER_CONNECT_SECONDS} s"
            )
        gevent.sleep(0.1)
    print(f"{expected} workers connected; the offered rate is split evenly between them", flush=True)


def _stop_local_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The options a worker does not take from the master's command line: the step schedule is the master's.
MASTER_ONLY = {"--processes": True, "--expect-workers": True, "--master-bind-host": True, "--master-port": True,
               "--write-back": False, "--out-dir": True}  # fmt: skip


def worker_argv(argv: Sequence[str]) -> list[str]:
    """The master's command line without the options only the master takes (each maps to whether it has a
    value), for its local workers."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in MASTER_ONLY:
            skip = MASTER_ONLY[name] and "=" not in arg
            continue
        kept.append(arg)
    return kept


def run_worker(plan: Plan, master_host: str, master_port: int) -> None:
    """--worker: generate this process's share of each step the master starts, and report its tally."""
    _require_gevent()
    import gevent
    from locust.env import Environment

    generator = Generator.for_plan(plan)
    environment = Environment(user_classes=[_user_class(plan, generator)], stop_timeout=None)
    runner = environment.create_worker_runner(master_host, master_port)

    def report(index: int) -> None:
        tally = generator.drain(gevent.sleep)
        runner.send_message("kit_tally", {"index": index, "tally": tally.to_message()})

    def on_step(environment: Any, msg: Any, **_: Any) -> None:
        generator.begin(int(msg.data["index"]), float(msg.data["rate"]), float(msg.data["warmup"]))

    def on_finish(environment: Any, msg: Any, **_: Any) -> None:
        gevent.spawn(report, int(msg.data["index"]))

    runner.register_message("kit_step", on_step)
    runner.register_message("kit_finish", on_finish)
    print(f"worker connected to {master_host}:{master_port}; waiting for the master's steps", flush=True)
    runner.greenlet.join(timeout=plan.max_seconds + WORKER_CONNECT_SECONDS + 60)


def write_back(plan: Plan, report: dict[str, Any], *, path: Path | None = None) -> dict[str, Any]:
    """Record MAX_RPS per instance for the plan's stage (stacks/measurements.py validates and writes)."""
    from loadgen.write_back import record_max_rps

    result = report["result"]
    if plan.stage is None or plan.instance_type is None:
        raise LoadTestError("--write-back needs --stage")
    if result["max_rps_per_instance"] is None:
        raise LoadTestError("nothing to write back: no step met the criteria")
    source = (
        f"scripts/loadtest.py {report['started_at']}: endpoint {plan.endpoint_name}, MAX_RPS {result['max_rps']:.1f}"
        f" over {result['instances']} instance(s), p99 SLO {plan.criteria.slo_p99_ms:g} ms,"
        f" stopped: {result['stop_reason']}{' (lower bound)' if result['lower_bound'] else ''}"
    )
    return record_max_rps(
        plan.stage, float(result["max_rps_per_instance"]), instance_type=plan.instance_type, source=source, path=path
    )


def git_commit() -> str | None:
    """The commit the kit ran from (with "+dirty" for uncommitted changes); None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def run(plan: Plan) -> dict[str, Any]:
    """The steps, then the report and the plot; returns the report."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    began = time.monotonic()
    search = plan.search
    print(
        f"load test of {plan.endpoint_name} ({plan.profile}) at {plan.endpoint_url or 'the regional runtime'}: "
        f"p99 <= {plan.criteria.slo_p99_ms:g} ms, errors <= {plan.criteria.max_error_rate:.1%}, achieved >= "
        f"{plan.criteria.min_achieved_ratio:.0%} of offered; steps of {plan.step_seconds} s (first "
        f"{plan.warmup_seconds:g} s not counted) from {search.start_rps:g} RPS by {search.step_rps:g} "
        f"(at most {len(search.coarse())}, then {search.refine} refining), {plan.arrivals} arrivals, "
        f"at most {plan.max_seconds:g} s",
        flush=True,
    )
    steps, ended_by, errors = run_steps(plan)
    found = knee.find_knee(steps, plan.criteria, ended_by=ended_by)
    import locust

    report = knee.build_report(
        steps=steps,
        knee=found,
        criteria=plan.criteria,
        instances=plan.instances,
        safety_factor=plan.safety_factor,
        endpoint={"name": plan.endpoint_name, "url": plan.endpoint_url, "stage": plan.stage, "profile": plan.profile},
        parameters=plan.parameters,
    )
    report |= {
        "run_id": plan.out_dir.name,
        "verdict": knee.verdict_in_words(report),
        "git_commit": git_commit(),
        "started_at": started_at,
        "duration_seconds": round(time.monotonic() - began, 1),
        "errors_seen": dict(errors.most_common(5)),
        "versions": {"locust": locust.__version__, "botocore": botocore.__version__},
    }
    knee.write_report(report, plan.out_dir / "report.json")
    knee.plot_report(report, plan.out_dir / "latency.png")
    for line in knee.result_lines(report):
        print(line)
    print(f"report: {plan.out_dir / 'report.json'}\nplot:   {plan.out_dir / 'latency.png'}")
    return report


def main(argv: Sequence[str] | None = None, *, session: Any | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        plan = prepare(args, session)
        if args.worker:
            run_worker(plan, args.master_host, args.master_port or MASTER_PORT)
            return 0
        report = run(plan)
        if report["result"]["max_rps"] is None:
            print(f"load test failed: {report['result']['detail']}", file=sys.stderr)
            return 1
        if args.write_back:
            try:
                entry = write_back(plan, report)
            except (SettingsError, ValueError) as error:
                raise LoadTestError(f"write-back refused, nothing written: {one_line(error)}") from None
            target = knee.invocations_target(entry["max_rps_per_instance"], plan.safety_factor)
            print(
                f"wrote stacks/data/measurements.json: {plan.stage} = {json.dumps(entry)}; the next "
                f"'make deploy STAGE={plan.stage}' sets SageMakerVariantInvocationsPerInstance to {target:.0f}"
            )
    except (LoadTestError, SettingsError, RequestError, ClientError, BotoCoreError, ValueError, OSError) as error:
        print(f"load test failed: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


def run_as_program() -> NoReturn:
    """scripts/loadtest.py, once gevent has patched the standard library: main(), then leave without the
    interpreter's finalization (under gevent, logging's handler cleanup there prints a harmless "greenlet is being
    finalized" traceback after the run's last line)."""
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
