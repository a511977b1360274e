"""The load test against a local endpoint of known capacity, the fake endpoint itself, and bad input.

Locust patches the process with gevent when imported, so the load test runs in a subprocess; the tests
here only call the parts of scripts/loadtest.py that fail (or finish) before Locust is needed.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from devtools.fake_endpoint import FakeEndpoint, Model, stand_in
from loadgen import knee, loadtest
from loadgen.step_tally import Tally, histogram
from modelpack.model_manifest import read_manifest
from rtb_client import ModelSchema, Prediction, predict, runtime_client
from stacks.measurements import measured_max_rps
from stacks.stages import load_stage

from .conftest import REPO_ROOT

# The sample model's committed manifest: its sample row and features are the only 7 values here.
SAMPLE_MANIFEST = read_manifest(REPO_ROOT / "model_artifacts" / "model-manifest.json")
SCHEMA = ModelSchema.from_manifest(SAMPLE_MANIFEST)
SAMPLE = [float(value) for value in SAMPLE_MANIFEST["sample_payload"].split(",")]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Bounds on waits for things that must happen; they fail a hung test, they never measure one.
HANG_GUARD_SECONDS = 30.0


@pytest.fixture(autouse=True)
def _no_locust_in_this_process() -> Iterator[None]:
    """Guard: Locust (and its gevent monkey patching) must never load into the pytest process."""
    yield
    assert "locust" not in sys.modules


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    with FakeEndpoint(workers=4, service_time=0.005) as server:
        yield server


def _client(url: str) -> Any:
    # Timeouts past any stall of a busy machine: these tests are about answers, not time.
    return runtime_client(loadtest.make_session(None, url), connect_timeout=30.0, read_timeout=30.0)


def _answers(model: Model, rows: list[list[float]]) -> list[Prediction]:
    """What the fake endpoint's model answers, as the client returns it."""
    return [row[0] if model.schema.columns == 1 else tuple(row) for row in model.scores(rows)]


# --- the fake endpoint -------------------------------------------------------------------------------


def test_the_fake_endpoint_answers_botocore_with_one_prediction_per_row(endpoint: FakeEndpoint) -> None:
    rows = [SAMPLE, [1.0, 23.0, 10.0, 50.0, 35.0, 370.0, 7.0]]
    assert predict(_client(endpoint.url), "any-name", rows, SCHEMA) == _answers(endpoint.model, rows)
    assert endpoint.stats.served == 1


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the test has caused; the bound only turns a hang into a failure."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


def test_the_fake_endpoint_serves_only_workers_requests_at_once() -> None:
    # The test holds every request in service (an injected sleep) until 8 have arrived: 4 workers serve 4
    # of them and the other 4 wait in the queue, however slow or busy the machine.
    release = threading.Event()
    held: list[float] = []

    def hold(seconds: float) -> None:
        held.append(seconds)
        release.wait(HANG_GUARD_SECONDS)

    with (
        FakeEndpoint(workers=4, service_time=0.05, clock=lambda: 0.0, sleep=hold) as server,
        ThreadPoolExecutor(8) as pool,
    ):
        client = _client(server.url)
        calls = [pool.submit(predict, client, "ep", [SAMPLE], SCHEMA) for _ in range(8)]
        try:
            _wait_for(lambda: server.stats.in_service == 4 and server.waiting == 4, "4 in service and 4 waiting")
        finally:
            release.set()
        answers = [call.result(timeout=HANG_GUARD_SECONDS) for call in calls]
    assert server.capacity_rps == 80.0
    assert answers == [_answers(server.model, [SAMPLE])] * 8
    assert (server.stats.served, server.stats.max_in_service, server.stats.in_service) == (8, 4, 0)
    assert server.stats.max_waiting >= 4
    # Each request is held for the service time less its scoring (none on a clock that does not move).
    assert held == [0.05] * 8


def test_the_fake_endpoint_throttles_past_its_queue_bound_and_botocore_retries_once() -> None:
    with (
        FakeEndpoint(workers=1, service_time=0.005, max_queue=0) as server,
        pytest.raises(ClientError, match=r"ServiceUnavailable.*reached max retries: 1"),
    ):
        predict(_client(server.url), "ep", [SAMPLE], SCHEMA)
    assert server.stats.rejected == 2


def test_the_fake_endpoint_rejects_what_the_container_and_runtime_would(endpoint: FakeEndpoint) -> None:
    client = _client(endpoint.url)
    count = len(SCHEMA.features) + 1
    too_many = ",".join(["1"] * count).encode()
    with pytest.raises(ClientError, match=rf"ModelError.*{count} features, the model was trained with {count - 1}"):
        client.invoke_endpoint(EndpointName="ep", ContentType="text/csv", Body=too_many)
    with pytest.raises(ClientError, match=r"ModelError.*a value is beyond float32's range"):
        client.invoke_endpoint(EndpointName="ep", ContentType="text/csv", Body=b"1e39")
    with pytest.raises(ClientError, match=r"ModelError.*the rows have different numbers of values"):
        client.invoke_endpoint(EndpointName="ep", ContentType="text/csv", Body=b"1,2\n1\n")
    with pytest.raises(ClientError, match=r"ModelError.*\(415\).*application/json is not supported"):
        client.invoke_endpoint(EndpointName="ep", ContentType="application/json", Body=b"{}")
    with (
        FakeEndpoint(workers=1, service_time=0.001, endpoint_name="right") as named,
        pytest.raises(ClientError, match=r"ValidationError.*Endpoint wrong of account 000000000000 not found"),
    ):
        predict(_client(named.url), "wrong", [SAMPLE], SCHEMA)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "0.0.0.0"}, "host='0.0.0.0' is invalid: allowed: a loopback address"),
        ({"workers": 0}, "workers=0 is invalid"),
        ({"service_time": 0.0}, "service_time=0.0 is invalid"),
    ],
)
def test_the_fake_endpoint_refuses_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FakeEndpoint(**kwargs)


@pytest.mark.slow
def test_the_fake_endpoint_cli_serves_for_a_bounded_time() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.fake_endpoint", "--port", "0", "--workers", "2", "--service-ms", "10",
         "--seconds", "0.3"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 workers x 10 ms = 200 RPS capacity" in result.stdout
    assert "served 0, rejected 0 (503)" in result.stdout


def test_the_endpoint_url_reaches_the_kit_client_through_the_session(endpoint: FakeEndpoint) -> None:
    session = loadtest.make_session(None, endpoint.url)
    # A client given only the session calls the local server (seen from the server, whatever client it is).
    assert predict(runtime_client(session), "ep", [SAMPLE], SCHEMA) == _answers(endpoint.model, [SAMPLE])
    assert endpoint.stats.served == 1
    assert session.region_name == "us-east-1"
    assert session.get_credentials().access_key == "loadtest"  # a loopback server needs no real credentials


# --- the pacer -----------------------------------------------------------------------------------------


def test_paced_arrivals_are_evenly_spaced_and_late_slots_are_never_skipped() -> None:
    pacer = loadtest.Pacer()
    pacer.set_rate(100.0)
    assert pacer.claim(1000.0) == 1000.0
    # Two users waiting at once take consecutive slots.
    assert [round(pacer.delay(1000.0), 6) for _ in range(2)] == [0.01, 0.02]
    # After a stall (every user busy), the late slots are sent at once and keep their intended times: the
    # latency of each counts from its slot (no coordinated omission).
    assert [round(pacer.claim(1000.5), 6) for _ in range(2)] == [1000.03, 1000.04]
    assert pacer.delay(1000.5) == 0.0
    # A new step starts a new schedule: no backlog from the last one.
    pacer.set_rate(50.0)
    assert pacer.claim(2000.0) == 2000.0
    assert round(pacer.delay(2000.0), 6) == 0.02


def test_poisson_arrivals_keep_the_mean_rate() -> None:
    pacer = loadtest.Pacer(poisson=True, seed=7)
    pacer.set_rate(200.0)
    # Claimed all at once, the n-th start time is the sum of n random gaps.
    gaps = [pacer.delay(0.0) for _ in range(20_000)]
    assert gaps[-1] / 20_000 == pytest.approx(1 / 200, rel=0.03)
    assert len({round(b - a, 9) for a, b in itertools.pairwise(gaps)}) > 1000  # not evenly spaced


# --- bad input: one line on stderr, exit 1, before any load ---------------------------------------------


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], session: Any = None) -> str:
    assert loadtest.main(argv, session=session) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("load test failed: ")
    return err.removeprefix("load test failed: ").strip()


def test_an_unknown_stage_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    error = _fails(capsys, ["--stage", "nope"])
    assert error.startswith("stage 'nope' has 1 invalid setting(s): - stage='nope' is not defined; allowed: one of [")


class _Session:
    """A boto3 session whose CloudFormation client is stubbed."""

    region_name = "us-east-1"

    def __init__(self, cloudformation: Any) -> None:
        self._cloudformation = cloudformation

    def client(self, name: str) -> Any:
        assert name == "cloudformation"
        return self._cloudformation


def test_a_stage_whose_stack_is_not_deployed_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    cloudformation = session.client("cloudformation")
    with Stubber(cloudformation) as stub:
        stub.add_client_error(
            "describe_stacks",
            service_error_code="ValidationError",
            service_message="Stack with id RtbInference-dev does not exist",
            http_status_code=400,
            expected_params={"StackName": "RtbInference-dev"},
        )
        error = _fails(capsys, ["--stage", "dev"], session=_Session(cloudformation))
        stub.assert_no_pending_responses()
    assert error == (
        "stack RtbInference-dev is not deployed in us-east-1 (deploy it with 'make deploy STAGE=dev', "
        "or give --endpoint-name)"
    )


def test_an_endpoint_that_does_not_answer_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = _fails(capsys, ["--endpoint-url", f"http://127.0.0.1:{port}"])
    assert error.startswith(f"endpoint fake-endpoint did not answer a first request: Could not connect to the endpoint "
                            f'URL: "http://127.0.0.1:{port}/endpoints/fake-endpoint/invocations"')  # fmt: skip


def test_an_endpoint_name_the_runtime_does_not_know_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeEndpoint(workers=1, service_time=0.001, endpoint_name="right") as server:
        error = _fails(capsys, ["--endpoint-url", server.url, "--endpoint-name", "wrong"])
    assert error.startswith("endpoint wrong did not answer a first request: An error occurred (ValidationError)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--row", "2,0,x,7,3,20,2"], "--row '2,0,x,7,3,20,2' is not a row of numbers: '2,0,x,7,3,20,2'"),
        (
            ["--row", "2,0,0,7,3,20"],
            "--row '2,0,0,7,3,20' has 6 values; the model takes 7: dow, hour, IndexAdvertiserID, IndexDomain, "
            "IndexRegionID, IndexCityID, device_type_id",
        ),
        (["--row", "2,0,0,7,3,20,2,9"], "--row '2,0,0,7,3,20,2,9' has 8 values; the model takes 7"),
        (
            ["--row", "2,0,0,7,3,20,nan"],
            "--row '2,0,0,7,3,20,nan' value 6 (device_type_id) is nan; allowed: finite numbers within float32's",
        ),
        (["--manifest", "nowhere.json"], "cannot read the manifest nowhere.json: No such file or directory"),
        (["--write-back"], "--write-back needs --stage: a measurement is recorded for a stage's own endpoint"),
        (["--stage", "dev", "--write-back"], "--write-back with a loopback --endpoint-url: a local server is not"),
        (["--step-seconds", "1"], "--step-seconds=1 is invalid: allowed: 2 or more"),
        (["--slo-ms", "0"], "--slo-ms=0.0 is invalid: allowed: greater than 0"),
        (["--max-lateness-ms", "0"], "--max-lateness-ms=0.0 is invalid: allowed: greater than 0"),
        (["--safety", "2"], "safety_factor=2.0 is invalid: allowed: greater than 0 and at most 1"),
        (["--processes", "0"], "--processes=0 is invalid: allowed: 0 only with --expect-workers (a master only)"),
        (["--processes", "65"], "--processes=65 is invalid: allowed: 0 to 64"),
        (["--expect-workers", "2"], "--expect-workers with --master-bind-host=127.0.0.1: workers on other"),
        (["--worker"], "--worker needs --master-host: the address of the master it takes steps from"),
        (["--worker", "--master-host", "10.0.0.5", "--processes", "2"], "--worker takes no --processes"),
        (["--master-host", "10.0.0.5"], "--master-host is for --worker; a master binds --master-bind-host"),
        (["--master-port", "70000"], "--master-port=70000 is invalid: allowed: 1 to 65535"),
        (["--rows-per-request", "0"], "--rows-per-request=0 is invalid: allowed: 1 or more"),
        (
            ["--profile", "inferentia", "--rows-per-request", "2"],
            "--rows-per-request=2 is invalid for profile inferentia: allowed: 1 to 1, the rows one of its requests "
            "may carry",
        ),
    ],
)
def test_bad_rows_and_options_are_one_line(
    capsys: pytest.CaptureFixture[str], endpoint: FakeEndpoint, argv: list[str], message: str
) -> None:
    assert _fails(capsys, ["--endpoint-url", endpoint.url, *argv]).startswith(message)
    assert endpoint.stats.served == 0  # refused before any request


def test_a_rows_file_line_with_the_wrong_feature_count_is_named(
    capsys: pytest.CaptureFixture[str], endpoint: FakeEndpoint, tmp_path: Path
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("2,0,0,7,3,20,2\n1,23,10,50,35,370\n")
    error = _fails(capsys, ["--endpoint-url", endpoint.url, "--rows-file", str(rows)])
    assert error.startswith("rows.csv line 2 has 6 values; the model takes 7")


@pytest.mark.slow
def test_a_gpu_endpoint_is_load_tested_in_the_kserve_format_and_a_format_mismatch_fails_before_load(
    capsys: pytest.CaptureFixture[str], endpoint: FakeEndpoint
) -> None:
    rows = [SAMPLE, [1.0, 23.0, 10.0, 50.0, 35.0, 370.0, 7.0]]
    with FakeEndpoint(workers=2, service_time=0.001, profile="gpu") as gpu:
        plan = loadtest.prepare(loadtest.build_parser().parse_args(["--endpoint-url", gpu.url, "--profile", "gpu"]))
        # What every Locust user calls, in the gpu format: the first-request check plus this call.
        assert plan.score(rows) == _answers(gpu.model, rows)
        assert (plan.profile, plan.parameters["profile"], gpu.stats.served, gpu.stats.model_errors) == (
            "gpu",
            "gpu",
            2,
            0,
        )
    error = _fails(capsys, ["--endpoint-url", endpoint.url, "--profile", "gpu"])  # a cpu container
    assert error.startswith("endpoint fake-endpoint did not answer a first request: An error occurred (ModelError)")
    assert "Content type application/json is not supported by this container" in error


def test_the_manifest_shapes_the_rows_and_answers_of_another_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    manifest: dict[str, Any] = {
        "features": [f"f{i}" for i in range(12)],
        "objective": "reg:squarederror",
        "output": {"kind": "value", "columns": 1},
        "reference": {"rows": [[float(i + j) for j in range(12)] for i in range(3)], "predictions": [1.0, 2.0, 3.0]},
    }
    path = tmp_path / "model-manifest.json"
    path.write_text(json.dumps(manifest))
    with FakeEndpoint(workers=2, service_time=0.001, profile="gpu", model=stand_in(manifest)) as server:
        args = ["--endpoint-url", server.url, "--profile", "gpu", "--manifest", str(path)]
        plan = loadtest.prepare(loadtest.build_parser().parse_args(args))
        assert plan.rows == manifest["reference"]["rows"]  # the default rows: the manifest's reference rows
        assert plan.score(plan.rows) == _answers(server.model, plan.rows)
        assert plan.parameters["schema"] == {"features": 12, "kind": "value", "columns": 1}
        error = _fails(capsys, [*args, "--row", ",".join(["1"] * 7)])
        assert error.startswith("--row '1,1,1,1,1,1,1' has 7 values; the model takes 12: f0, f1,")
        del manifest["reference"]
        path.write_text(json.dumps(manifest))
        error = _fails(capsys, args)
        assert error == (
            f"{path} has no reference rows; the contract of issue 15 asks every manifest for them; or give --row "
            "or --rows-file"
        )


@pytest.mark.slow
def test_the_load_refuses_to_run_inside_an_unpatched_process(endpoint: FakeEndpoint) -> None:
    plan = loadtest.prepare(loadtest.build_parser().parse_args(["--endpoint-url", endpoint.url]))
    with pytest.raises(loadtest.LoadTestError, match=r"run the load test as a program \(python -m scripts.loadtest\)"):
        loadtest.run_steps(plan)


# --- the write-back ----------------------------------------------------------------------------------


def _report_of(max_rps: float | None, instances: int) -> dict[str, Any]:
    tally = Tally()
    for _ in range(1800):
        tally.record("ok", 9.0, 9.0, 0.0)
    tally.close(window_seconds=2.0, cpu_percent=10.0)
    steps = [tally.stats(offered_rps=900, users=45)]
    found = knee.find_knee(steps, knee.Criteria()) if max_rps else knee.find_knee([], knee.Criteria())
    report = knee.build_report(
        steps=steps if max_rps else [],
        knee=found,
        criteria=knee.Criteria(),
        instances=instances,
        safety_factor=0.5,
        endpoint={"name": "ep"},
        parameters={},
    )
    return report | {"started_at": "2026-11-21T21:00:00+00:00"}


@pytest.mark.slow
def test_write_back_records_max_rps_per_instance_for_the_stage(tmp_path: Path) -> None:
    # The plan sends dev's rows: an endpoint shaped like the model dev serves (the sample, or the user's own).
    model = stand_in(load_stage("dev").artifact.manifest)
    with FakeEndpoint(workers=4, service_time=0.005, model=model) as endpoint:
        argv = ["--stage", "dev", "--endpoint-url", endpoint.url, "--endpoint-name", "ep"]
        plan = loadtest.prepare(loadtest.build_parser().parse_args(argv))
    assert (plan.instances, plan.safety_factor, plan.instance_type) == (2, 0.5, "ml.c5.xlarge")
    path = tmp_path / "measurements.json"
    entry = loadtest.write_back(plan, _report_of(900.0, plan.instances), path=path)
    assert entry["max_rps_per_instance"] == 450.0
    assert entry["instance_type"] == "ml.c5.xlarge"
    assert entry["rows_per_request"] == 1  # MAX_RPS is per request; the rows each carried, beside it
    assert entry["source"].startswith("scripts/loadtest.py 2026-11-21T21:00:00+00:00: endpoint ep, MAX_RPS 900.0")
    assert measured_max_rps("dev", instance_type="ml.c5.xlarge", default=1000.0, path=path) == 450.0
    with pytest.raises(loadtest.LoadTestError, match="nothing to write back: no step met the criteria"):
        loadtest.write_back(plan, _report_of(None, plan.instances), path=path)


# --- the knee search against a simulated endpoint of known capacity (no sockets, no clock) --------------


@dataclass(frozen=True)
class SimulatedEndpoint:
    """The fake endpoint's queue on a simulated clock: ``workers`` requests in service at once, each for
    ``service_time`` s, the rest waiting in one FIFO queue; ``overhead`` s of client and network per call.

    ``step`` runs one load-test step as scripts/loadtest.py does: ``users`` closed-loop users take their
    start times from the load test's own Pacer, and the calls completed after the warm-up are measured."""

    workers: int
    service_time: float
    overhead: float = 0.001

    @property
    def capacity_rps(self) -> float:
        return self.workers / self.service_time

    def step(self, offered: float, users: int, plan: argparse.Namespace) -> knee.StepStats:
        pacer = loadtest.Pacer(poisson=plan.arrivals == "poisson", seed=7)
        pacer.set_rate(offered)
        seconds, warmup = plan.step_seconds, plan.warmup_seconds
        free_users = [(0.0, user) for user in range(users)]  # (when the user can call again, user)
        free_workers = [0.0] * self.workers  # when each worker is free
        tally = Tally()
        while True:
            now, user = heapq.heappop(free_users)
            if now >= seconds:  # the step's end: no more slots are claimed, the calls in flight drain
                break
            slot = pacer.claim(now)  # slots only rise: the queue is served in arrival order
            start = max(slot, now)
            done = max(start, heapq.heappop(free_workers)) + self.service_time
            heapq.heappush(free_workers, done)
            end = done + self.overhead
            if warmup <= slot < seconds:  # a call counts in the step whose window holds its slot
                tally.record("ok", (end - slot) * 1000, (end - start) * 1000, 0.0)  # from the slot, as timed
            heapq.heappush(free_users, (end, user))
        tally.close(seconds - warmup, cpu_percent=0.0)
        return tally.stats(offered_rps=offered, users=users)


def _simulated_search(endpoint: SimulatedEndpoint, argv: list[str]) -> tuple[list[knee.StepStats], knee.Knee]:
    """The load test's step search and knee, its options parsed by its own parser, against ``endpoint``."""
    args = loadtest.build_parser().parse_args(["--endpoint-url", "http://127.0.0.1:1", *argv])
    loadtest.check_arguments(args)
    if args.warmup_seconds is None:
        args.warmup_seconds = args.step_seconds / 5
    criteria = knee.Criteria(slo_p99_ms=args.slo_ms, max_error_rate=args.max_error_rate,
                             min_achieved_ratio=args.min_achieved)  # fmt: skip
    search = knee.Search(start_rps=args.start_rps, step_rps=args.step_rps, max_rps=args.max_rps,
                         max_steps=args.max_steps, refine=args.refine)  # fmt: skip
    user_rps = args.user_rps or 1000.0 / (2 * args.slo_ms)
    steps: list[knee.StepStats] = []
    while (offered := knee.next_offered(steps, criteria, search)) is not None:
        steps.append(endpoint.step(offered, loadtest.users_for(offered, user_rps), args))
    return steps, knee.find_knee(steps, criteria)


# (workers, service time, options): the old real-socket test's search, and the load test's defaults.
KNOWN_CAPACITIES = [
    (4, 0.020, ["--start-rps", "175", "--step-rps", "25", "--refine", "1", "--step-seconds", "2",
                "--warmup-seconds", "0.5"]),
    (1, 0.010, []),
    (8, 0.005, []),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "service_time", "argv"), KNOWN_CAPACITIES)
def test_the_load_test_finds_the_known_capacity_within_15_percent(
    workers: int, service_time: float, argv: list[str]
) -> None:
    endpoint = SimulatedEndpoint(workers, service_time)
    slo_ms = 3 * service_time * 1000  # met below capacity, crossed once the queue grows
    steps, found = _simulated_search(endpoint, ["--slo-ms", str(slo_ms), *argv])
    assert found.max_rps is not None, found.detail
    assert abs(found.max_rps - endpoint.capacity_rps) <= 0.15 * endpoint.capacity_rps, found.detail
    assert found.reason in (knee.StopReason.SLO, knee.StopReason.SATURATED)
    # Below capacity, evenly paced calls never queue: every latency is the service time plus the overhead.
    low = steps[0]
    expected_ms = (service_time + endpoint.overhead) * 1000
    assert [low.p50_ms, low.p99_ms] == pytest.approx([expected_ms, expected_ms], rel=1e-3)  # 3 digits
    assert low.achieved_rps == pytest.approx(low.offered_rps, rel=0.02)


@pytest.mark.slow
def test_poisson_arrivals_find_a_lower_knee_than_paced_ones() -> None:
    endpoint = SimulatedEndpoint(4, 0.020)
    paced = _simulated_search(endpoint, ["--slo-ms", "60"])[1]
    poisson = _simulated_search(endpoint, ["--slo-ms", "60", "--arrivals", "poisson"])[1]
    assert paced.max_rps is not None and poisson.max_rps is not None
    assert poisson.max_rps < paced.max_rps <= endpoint.capacity_rps * 1.15


# --- the real load test, in a subprocess: it runs and reports on any machine ---------------------------


# Criteria no machine can miss (a 10 s SLO, 1% of the offered rate, half the calls failing): the runs that
# use them check what the load test counts and reports, not how fast this machine serves.
ANY_MACHINE = ("--slo-ms", "10000", "--min-achieved", "0.01", "--max-error-rate", "0.5")


def run_loadtest(url: str, out_dir: Path, *options: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m scripts.loadtest`` against ``url`` with these options, its report in ``out_dir``, run in
    ``cwd`` (the kit's modules found by PYTHONPATH)."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.loadtest", "--endpoint-url", url, *options, "--out-dir", str(out_dir)],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
        timeout=HANG_GUARD_SECONDS * 4, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_the_load_test_runs_against_a_local_endpoint_and_writes_its_report(tmp_path: Path) -> None:
    # Criteria no machine can miss (a 10 s SLO, 1% of the offered rate, and a client read timeout on a
    # starved machine not counted as the endpoint's failure): what is checked is that Locust drives the
    # planned steps through the kit's client and the report and plot come out. How fast a machine serves
    # is a benchmark's figure (python -m scripts.loadtest against python -m scripts.fake_endpoint).
    with FakeEndpoint(workers=4, service_time=0.005) as server:
        result = run_loadtest(
            server.url, tmp_path, *ANY_MACHINE, "--start-rps", "20", "--step-rps", "20",
            "--max-steps", "2", "--user-rps", "10", "--step-seconds", "2", "--warmup-seconds", "0.5",
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    steps, outcome = report["steps"], report["result"]
    assert [step["offered_rps"] for step in steps] == [20, 40]
    assert [step["users"] for step in steps] == [2, 4]
    assert all(step["requests"] > step["errors"] for step in steps), steps
    assert server.stats.served >= sum(step["requests"] for step in steps)
    assert (server.stats.rejected, server.stats.model_errors) == (0, 0)
    assert (outcome["stop_reason"], outcome["lower_bound"]) == ("max_steps", True)
    assert outcome["max_rps"] == pytest.approx(steps[-1]["achieved_rps"], abs=0.05 + 1e-9)  # rounded to 0.1
    assert outcome["max_rps_per_instance"] == outcome["max_rps"]  # one instance without a stage
    assert outcome["invocations_per_instance_target"] == round(outcome["max_rps"] * 0.5 * 60)
    assert "step  1  users" in result.stdout
    # Who reads the report later can tell which run, which code and what it concluded.
    assert report["run_id"] == tmp_path.name
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", report["git_commit"] or ""), report["git_commit"]
    assert report["verdict"].startswith("MAX_RPS ")
    # The terminal summary states the verdict once, then the target it sets; no other line restates it.
    assert result.stdout.splitlines()[-5:] == [
        report["verdict"],
        f"SageMakerVariantInvocationsPerInstance = {outcome['max_rps_per_instance']:.1f} x 0.5 x 60 = "
        f"{outcome['invocations_per_instance_target']:.0f}",
        f"MAX_RPS {outcome['max_rps']:.1f} requests/s x 1 row per request = {outcome['max_rps']:.1f} rows/s",
        f"report: {tmp_path / 'report.json'}",
        f"plot:   {tmp_path / 'latency.png'}",
    ]
    output = result.stdout + result.stderr
    assert (output.count(report["verdict"]), output.count(outcome["detail"])) == (1, 1)
    png = (tmp_path / "latency.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 20_000


@pytest.mark.slow
def test_several_rows_per_request_are_sent_and_reported_as_rows_per_second(tmp_path: Path) -> None:
    # The endpoint's model notes how many rows each request carried.
    base = stand_in(SAMPLE_MANIFEST)
    sizes: list[int] = []

    def scores(rows: list[list[float]]) -> list[list[float]]:
        sizes.append(len(rows))
        return base.scores(rows)

    with FakeEndpoint(workers=4, service_time=0.002, model=Model(base.schema, base.objective, scores)) as server:
        result = run_loadtest(
            server.url, tmp_path, *ANY_MACHINE, "--rows-per-request", "3", "--start-rps", "20", "--max-steps", "1",
            "--user-rps", "10", "--step-seconds", "2", "--warmup-seconds", "0.5",
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert sizes and set(sizes) == {3}  # the first-request check and every call: 3 rows each
    report = json.loads((tmp_path / "report.json").read_text())
    (step,) = report["steps"]
    assert (step["rows_per_request"], report["parameters"]["rows_per_request"]) == (3, 3)
    assert step["achieved_rows_per_second"] == pytest.approx(3 * step["achieved_rps"], abs=0.01)
    assert step["offered_rows_per_second"] == 60.0
    outcome = report["result"]
    assert outcome["rows_per_request"] == 3
    assert outcome["max_rows_per_second"] == pytest.approx(3 * outcome["max_rps"], abs=0.15 + 1e-9)  # both rounded
    assert f"x 3 rows per request = {outcome['max_rows_per_second']:.1f} rows/s" in result.stdout
    assert " rows/s  p50 " in result.stdout  # each step's line


# --- every attempt counts ---------------------------------------------------------------------------


def test_the_load_tests_client_makes_one_attempt_per_call() -> None:
    # Every 2nd request is answered 500: the first-request check is the 1st, the call here the 2nd. A retry
    # would send a 3rd, answered; one attempt per call sees the 500. (Seen from the server: the client is
    # whatever rtb_client.runtime_client builds.)
    with FakeEndpoint(workers=1, service_time=0.001, fail_every=2) as server:
        plan = loadtest.prepare(loadtest.build_parser().parse_args(["--endpoint-url", server.url]))
        with pytest.raises(ClientError, match=r"\(500\)|InternalFailure"):
            plan.score([SAMPLE])
        assert (server.stats.served, server.stats.failed) == (1, 1)
    assert "no retries" in plan.parameters["client"]


@pytest.mark.parametrize(
    ("status", "expected"), [(None, "ok"), (500, "5xx"), (503, "5xx"), (424, "4xx"), (400, "4xx"), (200, "client")]
)
def test_errors_are_classed_by_the_endpoints_answer(status: int | None, expected: str) -> None:
    if status is None:
        assert loadtest.error_class(None) == expected
        return
    error = ClientError({"Error": {"Code": "X"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "InvokeEndpoint")
    assert loadtest.error_class(error) == expected
    assert loadtest.error_class(TimeoutError("read timeout")) == "client"


class _User:
    """A Locust user as the generator sees it: something whose greenlet is alive or dead."""

    def __init__(self, alive: bool = True) -> None:
        self.greenlet = SimpleNamespace(dead=not alive)


def test_a_step_counts_the_calls_whose_slots_fall_in_its_window_by_outcome() -> None:
    generator = loadtest.Generator(poisson=False, drain_seconds=1.0)
    assert generator.claim(_User()) is None  # no slot before the first step
    generator.begin(0, rate=1000.0, warmup_seconds=0.0)
    fail = ClientError({"Error": {"Code": "InternalFailure"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "Invoke")
    refused = ClientError({"Error": {"Code": "ModelError"}, "ResponseMetadata": {"HTTPStatusCode": 424}}, "Invoke")
    for error in [None] * 13 + [fail, fail, refused, TimeoutError("t")]:
        user = _User()
        claimed = generator.claim(user)
        assert claimed is not None
        generator.record(user, claimed[1], claimed[0], error, latency_ms=5.0, service_ms=4.0, lateness_ms=0.1)
    warming = _User()
    claimed = generator.claim(warming)
    assert claimed is not None
    generator.record(warming, claimed[1], claimed[1].warm_until - 1.0, fail,
                     latency_ms=5.0, service_ms=5.0, lateness_ms=0.0)  # a slot in the warm-up: not counted  # fmt: skip
    stats = generator.drain(time.sleep).stats(offered_rps=10, users=1)
    assert (stats.requests, stats.errors, stats.server_errors, stats.client_errors) == (17, 4, 2, 1)
    assert generator.claim(_User()) is None  # paused between steps


def test_a_step_drains_its_calls_in_flight_and_counts_the_unfinished_as_failed() -> None:
    generator = loadtest.Generator(poisson=False, drain_seconds=0.5)
    generator.begin(0, rate=100.0, warmup_seconds=0.0)
    late, stuck, stopped = _User(), _User(), _User()
    late_slot, stuck_slot, _ = (generator.claim(user) for user in (late, stuck, stopped))
    assert late_slot is not None and stuck_slot is not None
    stopped.greenlet.dead = True  # Locust stopped this user while it waited for its slot: nothing to wait for
    # ``late`` answers while the step drains: its call is the step's, though it ends after the step.
    finish = threading.Timer(0.05, generator.record, (late, late_slot[1], late_slot[0], None),
                             {"latency_ms": 80.0, "service_ms": 80.0, "lateness_ms": 0.0})  # fmt: skip
    finish.start()
    tally = generator.drain(time.sleep)
    finish.join()
    assert (tally.ok, tally.other_errors) == (1, 1), tally  # ``stuck`` never answered within the drain
    assert tally.messages == {"unfinished after the 0.5 s drain": 1}
    # Its answer arriving later goes to the closed step's tally, never to the next step's.
    generator.begin(1, rate=100.0, warmup_seconds=0.0)
    generator.record(stuck, stuck_slot[1], stuck_slot[0], None, latency_ms=900.0, service_ms=900.0, lateness_ms=0)
    assert generator.drain(time.sleep).ok == 0


@pytest.mark.slow
def test_the_load_tests_error_share_is_the_servers_first_attempt_share(tmp_path: Path) -> None:
    # The server answers every 16th request 500 (6.25%). With the client's retry the load test saw about
    # 0.4% and placed MAX_RPS past the limit; with one attempt per call it sees the server's own share.
    with FakeEndpoint(workers=4, service_time=0.005, fail_every=16) as server:
        result = run_loadtest(
            server.url, tmp_path, *ANY_MACHINE, "--start-rps", "40", "--step-rps", "40",
            "--max-steps", "2", "--user-rps", "10", "--step-seconds", "3", "--warmup-seconds", "0.5",
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    steps = json.loads((tmp_path / "report.json").read_text())["steps"]
    for step in steps:
        # Failures are every 16th request received; a window of consecutive requests holds requests/16 of
        # them, give or take the calls in flight at its edges (at most one per user).
        assert abs(step["server_errors_5xx"] - step["requests"] / 16) <= 1 + step["users"], step
        assert step["errors"] == step["server_errors_5xx"] and step["client_errors_4xx"] == 0, step
    total = sum(step["requests"] for step in steps)
    assert sum(step["server_errors_5xx"] for step in steps) / total > 0.03  # retried, it would be ~0.004
    assert server.stats.failed > 0


# --- scale-out: Locust master and workers -----------------------------------------------------------


def test_workers_take_the_masters_target_and_request_options_but_not_its_schedule_or_write_back() -> None:
    argv = ["--stage", "dev", "--processes", "4", "--row", "1,2", "--out-dir=x", "--write-back", "--master-port",
            "6000", "--slo-ms", "20", "--expect-workers=2", "--master-bind-host", "10.0.0.4"]  # fmt: skip
    assert loadtest.worker_argv(argv) == ["--stage", "dev", "--row", "1,2", "--slo-ms", "20"]


@pytest.mark.slow
def test_a_master_that_sends_nothing_needs_no_path_to_the_endpoint() -> None:
    # Its workers, in the client subnets, each check the endpoint answers; the master may sit elsewhere.
    argv = ["--endpoint-url", "http://127.0.0.1:1", "--processes", "0", "--expect-workers", "3",
            "--master-bind-host", "10.0.0.5"]  # fmt: skip
    plan = loadtest.prepare(loadtest.build_parser().parse_args(argv))
    assert plan.distribution == loadtest.Distribution(0, 3, "10.0.0.5", loadtest.MASTER_PORT)
    assert plan.parameters["processes"] == 3
    with pytest.raises(loadtest.LoadTestError, match="did not answer a first request"):
        loadtest.prepare(loadtest.build_parser().parse_args([*argv[:2], "--worker", "--master-host", "10.0.0.5"]))


@pytest.mark.slow
def test_a_master_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken, FakeEndpoint(workers=1, service_time=0.001) as server:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_loadtest(server.url, tmp_path, "--processes", "2", "--master-port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"load test failed: --master-bind-host=127.0.0.1 --master-port={port}: Socket bind failure: Address "
        f"already in use (addr='tcp://127.0.0.1:{port}')"
    ]


@pytest.mark.slow
def test_a_distributed_run_merges_its_workers_histograms_into_the_pooled_calls_percentiles(tmp_path: Path) -> None:
    # Two worker processes share each step's rate; each writes its raw calls (--samples-dir) beside the
    # histograms it sends the master. The report's p99 is the p99 of every worker's calls pooled.
    # The master runs elsewhere than the repository, and --samples-dir is relative to its directory.
    samples = tmp_path / "samples"
    with FakeEndpoint(workers=4, service_time=0.002) as server:
        result = run_loadtest(
            server.url, tmp_path, "--processes", "2", "--samples-dir", "samples", *ANY_MACHINE,
            "--start-rps", "40", "--step-rps", "40",
            "--max-steps", "2", "--user-rps", "10", "--step-seconds", "3", "--warmup-seconds", "0.5", cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 workers connected" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["parameters"]["processes"] == 2
    files = sorted(samples.glob("samples-*.csv"))
    assert len(files) == 2 and sorted(tmp_path.glob("worker-*.log")) == [tmp_path / "worker-1.log",
                                                                            tmp_path / "worker-2.log"]  # fmt: skip
    calls = [line.split(",") for path in files for line in path.read_text().splitlines()]
    for step in report["steps"]:
        mine = [call for call in calls if int(call[0]) == step["step"]]
        assert {path.name for path in files if f"\n{step['step']}," in "\n" + path.read_text()} == {
            path.name for path in files
        }  # both workers sent calls in every step
        latencies = [float(call[2]) for call in mine if call[1] == "ok"]
        assert len(mine) == step["requests"] and step["processes"] == 2 and len(step["process_rps"]) == 2
        assert sum(step["process_rps"]) == pytest.approx(step["achieved_rps"], abs=0.1)
        # Each worker paced half the step's rate: the shares add up to it.
        assert step["process_offered_rps"] == [step["offered_rps"] / 2] * 2
        ordered = sorted(round(latency * 1000) for latency in latencies)  # microseconds, as recorded
        raw_p99 = ordered[max(1, int(0.99 * len(ordered) + 0.5)) - 1]
        assert step["p99_ms"] == histogram().get_highest_equivalent_value(raw_p99) / 1000, step
        assert abs(step["p99_ms"] * 1000 - raw_p99) <= 0.001 * raw_p99


# --- open-loop honesty --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_stalling_endpoint_fails_the_slo_because_latency_counts_from_each_calls_slot(tmp_path: Path) -> None:
    # The server holds every answer for 300 ms every 3 s. Timed from the actual send, only the 4 calls in
    # flight during a stall are slow (under 1% of 200 RPS), and the step passes (service p99 14.8 ms on a
    # quiet 2-core machine, 2026-12-02); timed from each call's slot, the 60 calls whose slots fell in the
    # stall count their wait (p99 287.5 ms), as an open-loop client would see them.
    with FakeEndpoint(workers=4, service_time=0.002, stall=(3.0, 0.3)) as server:
        result = run_loadtest(
            server.url, tmp_path, "--slo-ms", "50",
            "--min-achieved", "0.01", "--start-rps", "200", "--step-rps", "100", "--max-steps", "1",
            "--refine", "0", "--user-rps", "50", "--step-seconds", "6", "--warmup-seconds", "0.5",
        )  # fmt: skip
    report = json.loads((tmp_path / "report.json").read_text())
    (step,) = report["steps"]
    assert not step["ok"], step
    assert step["verdict"] in ("slo", "client_bound") and "p99" in step["detail"], step
    assert step["p99_ms"] > 100 and step["p99_ms"] > step["service_p99_ms"], step
    assert result.returncode == 1  # no step met the criteria: no MAX_RPS
    # The summary gave the verdict; the exit's one line on stderr does not repeat it.
    assert (result.stdout + result.stderr).count(report["verdict"]) == 1
    assert result.stderr.splitlines()[-1:] == ["load test failed: no step met the criteria"]
