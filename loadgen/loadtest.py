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
omission). A step that fails while its generator was starved (its event loop late, the machine's CPU
stolen or under pressure, its CPU spent, or free users sending late) is client_bound, not an SLO result,
and MAX_RPS a lower bound; errors the endpoint answered stay the endpoint's. After the first failure,
--refine steps halve the gap to the last good step. MAX_RPS is the achieved rate of the best good step
below the lowest failing one (loadgen/knee.py). The report (JSON) and the plot (PNG) go to --out-dir.
Every run is bounded by --max-seconds. Exit 0 when a MAX_RPS was found; otherwise one line on stderr and
exit 1. Each call scores one row (--rows-per-request N: N rows) in the serving profile's format: the
stage's profile, or --profile without a stage (default cpu). Rows have as many values as the model
manifest's features: the stage's artifact's manifest, else --manifest, else the profile's packaged
artifact's; by default the calls send that manifest's reference rows.

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
import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from cliutil import is_loopback_host, is_loopback_url, one_line
from loadgen import knee
from loadgen.generator import Generator, Pacer, error_class
from loadgen.plan import (
    MASTER_PORT,
    MAX_USERS,
    REPO_ROOT,
    Distribution,
    LoadTestError,
    Plan,
    endpoint_of_stage,
    free_port,
    make_session,
    model_manifest,
    parse_rows,
    serving_profile,
    stage_settings,
    users_for,
)
from loadgen.report import run, write_back
from loadgen.runners import run_steps, run_worker, worker_argv
from loadgen.starvation import availability
from modelpack.model_manifest import schema_of
from rtb_client import PROFILES, RequestError, codec_for, predict, runtime_client
from stacks.settings import AutoscalingSettings, SettingsError

# The command, and the parts of the load test it has always offered by these names (each lives in the
# module that imports it here: plan, generator, runners, report).
__all__ = [
    "MASTER_PORT",
    "Distribution",
    "Generator",
    "LoadTestError",
    "Pacer",
    "Plan",
    "build_parser",
    "check_arguments",
    "error_class",
    "main",
    "make_session",
    "prepare",
    "run",
    "run_as_program",
    "run_steps",
    "run_worker",
    "users_for",
    "worker_argv",
    "write_back",
]

DEFAULT_OUT = REPO_ROOT / "bench-results"
MAX_PROCESSES = 64
# The kit client's own timeouts for ad servers (rtb_client.runtime_client's defaults); the read timeout
# grows with a large SLO.
CONNECT_TIMEOUT_SECONDS = 0.5
READ_TIMEOUT_SECONDS = 1.0


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
    rows.add_argument(
        "--rows-per-request", type=int, default=1,
        help="rows each call carries, picked at random from the rows (the same row repeated when there is one); "
        "the report gives requests/s and rows/s, and MAX_RPS stays per request (default: 1)",
    )  # fmt: skip
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
    if args.rows_per_request < 1:
        raise LoadTestError(f"--rows-per-request={args.rows_per_request} is invalid: allowed: 1 or more")
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


def prepare(args: argparse.Namespace, session: Any | None = None) -> Plan:
    """Resolve the stage, endpoint and rows, build the client and check the endpoint answers one call.

    ``session`` is the one that reads the stack's outputs (default: the AWS configuration's)."""
    check_arguments(args)
    settings = stage_settings(args.stage) if args.stage is not None else None
    profile = serving_profile(settings, args.profile)
    most_rows = codec_for(profile).max_rows_per_request
    if args.rows_per_request > most_rows:
        raise LoadTestError(
            f"--rows-per-request={args.rows_per_request} is invalid for profile {profile}: allowed: 1 to {most_rows}, "
            "the rows one of its requests may carry"
        )
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
    # attempts reads as 0.39% after one retry) and place MAX_RPS past the real limit. A call fails on time
    # only well past the SLO, so the latencies past it are measured, not cut off. Only the documented
    # arguments: the client may be any that rtb_client builds.
    read_timeout = min(60.0, max(READ_TIMEOUT_SECONDS, 2 * args.slo_ms / 1000))
    client = runtime_client(
        make_session(region, args.endpoint_url), region=region, pool_size=max(64, most_users + 8), max_attempts=1,
        connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=read_timeout, endpoint_url=args.endpoint_url,
    )  # fmt: skip
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
            predict(client, endpoint_name, (rows * args.rows_per_request)[: args.rows_per_request], schema,
                    profile=profile)  # fmt: skip
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
    drain_seconds = CONNECT_TIMEOUT_SECONDS + read_timeout + 2.0
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
        "rows_per_request": args.rows_per_request,
        "profile": profile,
        "manifest": where,
        "schema": {"features": len(schema.features), "kind": schema.kind, "columns": schema.columns},
        "client": "rtb_client.runtime_client, one per process (pool "
        f"{max(64, most_users + 8)} connections, no retries: every call is one attempt; timeouts "
        f"{CONNECT_TIMEOUT_SECONDS:g} s to connect, {read_timeout:g} s to read), shared by all Locust users",
        "generator_measures": availability(),
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
        rows_per_request=args.rows_per_request,
    )


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
            # The summary above gave the verdict; the exit's one line does not repeat it.
            print("load test failed: no step met the criteria", file=sys.stderr)
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
