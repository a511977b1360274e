"""scripts/invoke.py and the kit's client against botocore's real service models (Stubber) and a local
InvokeEndpoint server on 127.0.0.1: rows in, predictions and latency out, one line per mistake."""

from __future__ import annotations

import functools
import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from devtools.bench_client import Reply, answers_for, local_client, local_endpoint, local_session, probabilities
from devtools.fake_endpoint import FakeEndpoint, profile_model, stand_in
from modelpack.model_manifest import read_manifest, sample
from operations import invoke
from rtb_client import MISSING_REFUSED, ModelSchema, number_text, predict
from stacks.stages import STAGES, load_stage

from .conftest import REPO_ROOT, offline_env

# The sample model's committed manifest: its features and sample row are the only 7 values here.
SAMPLE_MANIFEST = read_manifest(REPO_ROOT / "model_artifacts" / "model-manifest.json")
SCHEMA = ModelSchema.from_manifest(SAMPLE_MANIFEST)
SAMPLE = SAMPLE_MANIFEST["sample_payload"]  # "2,0,0.0,7.0,3.0,20.0,2"
SAMPLE_ROW = [float(value) for value in SAMPLE.split(",")]
SENT = "2.0,0.0,0.0,7.0,3.0,20.0,2.0"  # the sample row as the client writes it: every number exact
ENDPOINT = "RtbInference-dev-InferenceEndpointA45980A1-ABC123"
FEATURE_LIST = ", ".join(SCHEMA.features)
CALL_LINE = re.compile(r"^call \d+: \d+\.\d\d ms$")


@functools.cache
def _dev_sample() -> tuple[list[float], Any]:
    """The sample row and recorded answer of the model dev serves (the tests of --stage dev send them): the
    sample above, or a model of the user's that stacks/stages.py points dev at."""
    dev = load_stage("dev")
    return sample(dev.artifact.manifest, dev.artifact_file)


def _dev_row() -> list[str]:
    """The row as the last arguments of the command line: after "--", a row that starts with a negative number
    is not taken for an option."""
    return ["--", ",".join(number_text(value) for value in _dev_sample()[0])]


def _body(text: str) -> StreamingBody:
    data = text.encode()
    return StreamingBody(io.BytesIO(data), len(data))


def _stacks(outputs: list[dict[str, str]]) -> dict[str, Any]:
    stack = {"StackName": "RtbInference-dev", "CreationTime": "2026-11-21T00:00:00Z", "StackStatus": "CREATE_COMPLETE"}
    return {"Stacks": [{**stack, "Outputs": outputs}]}


class StubbedSession:
    """A boto3 session with a stubbed CloudFormation client. Other clients are real (fake credentials, so
    anything unstubbed can only reach a local endpoint); ``stub_runtime`` queues stubbed answers on the
    runtime client that invoke.main builds with the kit's config."""

    def __init__(self, stub_runtime: Callable[[Stubber], None] | None = None) -> None:
        self._real = local_session()
        self.cloudformation = self._real.client("cloudformation")
        self.cfn = Stubber(self.cloudformation)
        self.cfn.activate()
        self._stub_runtime = stub_runtime
        self.runtime_stubs: list[Stubber] = []
        self.created: list[tuple[str, dict[str, Any]]] = []

    def client(self, name: str, **kwargs: Any) -> Any:
        if name == "cloudformation":
            return self.cloudformation
        self.created.append((name, kwargs))
        client = self._real.client(name, **kwargs)
        if self._stub_runtime is not None:
            stub = Stubber(client)
            self._stub_runtime(stub)
            stub.activate()
            self.runtime_stubs.append(stub)
        return client

    def assert_all_answered(self) -> None:
        self.cfn.assert_no_pending_responses()
        for stub in self.runtime_stubs:
            stub.assert_no_pending_responses()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str], **kwargs: Any) -> tuple[int, str, str]:
    code = invoke.main(argv, **kwargs)
    out, err = capsys.readouterr()
    return code, out, err


# --- the stage's endpoint, looked up and invoked, requests validated against the service models ---


def test_stage_endpoint_comes_from_the_stack_output_and_gets_a_valid_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, expected = _dev_sample()
    sent = _dev_row()[-1]  # as the client writes it: every number exact
    shown = repr(expected) if isinstance(expected, float) else str(list(expected))  # the container's CSV answer

    def answer(stub: Stubber) -> None:
        stub.add_response(
            "invoke_endpoint",
            {"Body": _body(f"{shown}\n"), "ContentType": "text/csv"},
            {"EndpointName": ENDPOINT, "ContentType": "text/csv", "Accept": "text/csv", "Body": f"{sent}\n".encode()},
        )

    session = StubbedSession(answer)
    session.cfn.add_response(
        "describe_stacks",
        _stacks([{"OutputKey": "EndpointName", "OutputValue": ENDPOINT}]),
        {"StackName": "RtbInference-dev"},
    )
    code, out, err = _run(["--stage", "dev", *_dev_row()], capsys, session=session)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == [f"endpoint {ENDPOINT}: 1 row(s) per call, 1 call(s)", f"{sent} -> {shown}"]
    assert CALL_LINE.match(lines[2]) and len(lines) == 3
    session.assert_all_answered()
    # The kit's client, in the stage's region.
    ((name, kwargs),) = session.created
    assert (name, kwargs["region_name"]) == ("sagemaker-runtime", "us-east-1")
    assert kwargs["config"].retries == {"mode": "standard", "total_max_attempts": 2}


def test_a_stack_that_is_not_deployed_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    session = StubbedSession()
    session.cfn.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message="Stack with id RtbInference-dev does not exist",
        http_status_code=400,
        expected_params={"StackName": "RtbInference-dev"},
    )
    code, out, err = _run(["--stage", "dev", *_dev_row()], capsys, session=session)
    assert (code, out) == (1, "")
    assert err == (
        "invoke: stack RtbInference-dev is not deployed in us-east-1 (Stack with id RtbInference-dev does not "
        "exist); deploy it (make deploy STAGE=dev) or pass --endpoint-name\n"
    )


def test_a_stack_without_the_endpoint_output_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    session = StubbedSession()
    session.cfn.add_response("describe_stacks", _stacks([]), {"StackName": "RtbInference-dev"})
    assert _run(["--stage", "dev", *_dev_row()], capsys, session=session) == (
        1,
        "",
        "invoke: stack RtbInference-dev has no output EndpointName\n",
    )


def test_an_endpoint_that_does_not_exist_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    def missing(stub: Stubber) -> None:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ValidationError",
            service_message="Endpoint gone of account 123456789012 not found.",
            http_status_code=400,
        )

    session = StubbedSession(missing)
    assert _run(["--endpoint-name", "gone", "--region", "us-east-1", SAMPLE], capsys, session=session) == (
        1,
        "",
        "invoke: An error occurred (ValidationError) when calling the InvokeEndpoint operation: "
        "Endpoint gone of account 123456789012 not found.\n",
    )


# --- rows from the argument, a file or stdin, against a local endpoint ---


def _local(url: str, *rest: str) -> list[str]:
    return ["--endpoint-name", "local", "--endpoint-url", url, "--region", "us-east-1", *rest]


def test_one_row_from_the_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with local_endpoint() as endpoint:
        code, out, err = _run(_local(endpoint.url, SAMPLE), capsys, session=local_session())
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == ["endpoint local: 1 row(s) per call, 1 call(s)", f"{SENT} -> 0.5"]
    ((path, headers, body),) = endpoint.seen.requests
    assert (path, headers["Content-Type"], headers["Accept"], body) == (
        "/endpoints/local/invocations",
        "text/csv",
        "text/csv",
        f"{SENT}\n".encode(),
    )


def test_many_rows_from_a_file_go_in_one_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("1,15,1,42,29,56,5\n\n6, 15, 0, 18, 5, 369.9999, 1234567\n")
    with local_endpoint() as endpoint:
        code, out, _ = _run(_local(endpoint.url, "--file", str(rows)), capsys, session=local_session())
    assert code == 0
    assert out.splitlines()[:3] == [
        "endpoint local: 2 row(s) per call, 1 call(s)",
        "1.0,15.0,1.0,42.0,29.0,56.0,5.0 -> 0.5",
        "6.0,15.0,0.0,18.0,5.0,369.9999,1234567.0 -> 0.5",
    ]
    assert [body for _, _, body in endpoint.seen.requests] == [
        b"1.0,15.0,1.0,42.0,29.0,56.0,5.0\n6.0,15.0,0.0,18.0,5.0,369.9999,1234567.0\n"
    ]


def test_the_inferentia_profile_sends_one_row_per_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("1,15,1,42,29,56,5\n6,15,0,18,5,171,2\n")
    with local_endpoint(answers_for("inferentia", profile_model("inferentia"))) as endpoint:
        argv = _local(endpoint.url, "--profile", "inferentia", "--file", str(rows))
        code, out, err = _run(argv, capsys, session=local_session())
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        "endpoint local: 2 row(s) per call, 1 call(s), profile inferentia: 2 request(s) per call of at most 1 row(s)"
    )
    assert [(headers["Content-Type"], body) for _, headers, body in endpoint.seen.requests] == [
        ("application/json", b"[[1.0, 15.0, 1.0, 42.0, 29.0, 56.0, 5.0]]"),
        ("application/json", b"[[6.0, 15.0, 0.0, 18.0, 5.0, 171.0, 2.0]]"),
    ]


def test_rows_from_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    with local_endpoint() as endpoint:
        code, out, _ = _run(_local(endpoint.url, "-"), capsys, session=local_session(), stdin=io.StringIO(SAMPLE))
    assert code == 0
    assert out.splitlines()[1] == f"{SENT} -> 0.5"
    assert [body for _, _, body in endpoint.seen.requests] == [f"{SENT}\n".encode()]


def test_repeat_sends_the_same_request_on_one_connection_and_reports_percentiles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with local_endpoint() as endpoint:
        code, out, _ = _run(_local(endpoint.url, "--repeat", "5", SAMPLE), capsys, session=local_session())
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "endpoint local: 1 row(s) per call, 5 call(s)"
    assert [line.split(":")[0] for line in lines[2:7]] == [f"call {n}" for n in range(1, 6)]
    assert all(CALL_LINE.match(line) for line in lines[2:7])
    assert re.fullmatch(r"client-side latency over 5 calls: p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms", lines[7])
    assert len(endpoint.seen.requests) == 5
    assert endpoint.seen.connections == 1, "one pooled client keeps one connection alive across the calls"


def test_report_shows_p50_and_p99_of_the_calls() -> None:
    calls = [invoke.Call(predictions=[0.25], seconds=ms / 1000) for ms in (3.0, 1.0, 2.0, 10.0)]
    assert invoke.format_report("ep", [[1, 2, 369.9999]], calls) == [
        "endpoint ep: 1 row(s) per call, 4 call(s)",
        "1.0,2.0,369.9999 -> 0.25",
        "call 1: 3.00 ms",
        "call 2: 1.00 ms",
        "call 3: 2.00 ms",
        "call 4: 10.00 ms",
        "client-side latency over 4 calls: p50 2.00 ms, p99 10.00 ms, max 10.00 ms",
    ]


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [([5.0], 99, 5.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), (list(map(float, range(1, 101))), 99, 99.0)],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert invoke.percentile(values, p) == expected


# --- every bad input: one line on stderr, the exit code, and nothing sent ---


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["1,2,3,4,5,6"], "", f"the row has 6 values; the model takes 7: {FEATURE_LIST}"),
        (["1,2,3,4,5,6,7,8"], "", f"the row has 8 values; the model takes 7: {FEATURE_LIST}"),
        (["1,2,x,4,5,6,7"], "", "the row: 'x' is not a number"),
        (["1,2,inf,4,5,6,7"], "", "the row: 'inf' is not a finite number"),
        (
            ["1,2,3,4,5,6,1e39"],
            "",
            "the row value 6 (device_type_id) is 1e+39; allowed: finite numbers within "
            "float32's range (|x| <= 3.4028234663852886e+38), or None or NaN for a missing value",
        ),
        (
            ["--manifest", "nowhere.json", SAMPLE],
            "",
            "cannot read the manifest nowhere.json: No such file or directory",
        ),
        (
            ["--profile", "inferentia", "1,2,,4,5,6,7"],
            "",
            f"the row value 2 ({SCHEMA.features[2]}) is nan, a missing value; the inferentia profile refuses missing "
            f"values: {MISSING_REFUSED['inferentia']}",
        ),
        (["-"], "1,2,3,4,5,6,7\n1,2,3\n", f"stdin line 2 has 3 values; the model takes 7: {FEATURE_LIST}"),
        (["-"], "", "no rows to score: stdin is empty"),
        (["-"], "\n \n", "no rows to score: stdin is empty"),
        ([""], "", "no rows to score: the row is empty"),
        ([], "", "give the rows one way: a ROW argument (or --rows ROW), - to read stdin, or --file PATH"),
        (
            ["--file", "rows.csv", SAMPLE],
            "",
            "give the rows one way: a ROW argument (or --rows ROW), - to read stdin, or --file PATH",
        ),
        (["--repeat", "0", SAMPLE], "", "argument --repeat: allowed: 1 or more, got 0"),
        (["--repeat", "two", SAMPLE], "", "argument --repeat: expected a whole number, got 'two'"),
    ],
)
def test_bad_rows_are_one_line_and_exit_2_before_any_request(
    argv: list[str], stdin: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with local_endpoint() as endpoint:
        result = _run(_local(endpoint.url, *argv), capsys, session=local_session(), stdin=io.StringIO(stdin))
    assert result == (2, "", f"invoke: {message}\n")
    assert endpoint.seen.requests == []


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "rows.csv"
    assert _run(["--endpoint-name", "x", "--file", str(missing)], capsys) == (
        2,
        "",
        f"invoke: cannot read --file {missing}: No such file or directory\n",
    )


STAGES_LIST = str(sorted(STAGES))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stage", "staging", SAMPLE], f"no stage 'staging'; allowed: one of {STAGES_LIST} (stacks/stages.py)"),
        ([SAMPLE], "one of the arguments --stage --endpoint-name is required"),
        (
            ["--stage", "dev", "--endpoint-name", "x", SAMPLE],
            "argument --endpoint-name: not allowed with argument --stage",
        ),
        (["--endpoint-name", "x", "--bogus", SAMPLE], "unrecognized arguments: --bogus"),
        (["--stage", "dev", "--profile", "gpu", SAMPLE], "--profile gpu contradicts stage dev, whose profile is cpu"),
        (
            ["--stage", "dev", "--manifest", "m.json", SAMPLE],
            "--manifest with --stage: the stage's artifact's manifest describes its endpoint",
        ),
    ],
)
def test_bad_targets_are_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(argv, capsys) == (2, "", f"invoke: {message}\n")


def test_an_unreachable_endpoint_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with local_endpoint() as endpoint:
        url = endpoint.url  # closed when the block ends: nothing listens there any more
    code, out, err = _run(_local(url, SAMPLE), capsys, session=local_session())
    assert (code, out) == (1, "")
    assert err.startswith(f'invoke: EndpointConnectionError: Could not connect to the endpoint URL: "{url}/endpoints')
    assert err.count("\n") == 1


# --- the client's config, proven against a local server ---


def _always(reply: Reply) -> Callable[[bytes], Reply]:
    return lambda _body: reply


UNAVAILABLE = Reply(status=503, body=b'{"message": "try later"}', error_type="ServiceUnavailable")


@pytest.mark.parametrize("max_attempts", [1, 2])
def test_standard_retries_stop_after_max_attempts_and_the_error_surfaces(max_attempts: int) -> None:
    with local_endpoint(_always(UNAVAILABLE)) as endpoint:
        client = local_client(endpoint.url, max_attempts=max_attempts)
        with pytest.raises(ClientError) as raised:
            predict(client, "local", [SAMPLE_ROW], SCHEMA)
    assert raised.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == max_attempts - 1
    # botocore numbers each attempt in a header (a retry also carries a ttl before it).
    attempts = [re.search(r"attempt=\d+; max=\d+", h["amz-sdk-request"]) for _, h, _ in endpoint.seen.requests]
    sent = [match.group() if match else "" for match in attempts]
    assert sent == [f"attempt={n}; max={max_attempts}" for n in range(1, max_attempts + 1)]


def test_the_default_client_retries_a_503_once_then_invoke_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with local_endpoint(_always(UNAVAILABLE)) as endpoint:
        code, out, err = _run(_local(endpoint.url, SAMPLE), capsys, session=local_session())
    assert (code, out) == (1, "")
    assert err == (
        "invoke: An error occurred (ServiceUnavailable) when calling the InvokeEndpoint operation "
        "(reached max retries: 1): try later\n"
    )
    assert len(endpoint.seen.requests) == 2


def test_a_read_timeout_fires_after_read_timeout_not_the_sdk_default_60_s() -> None:
    # The server holds its answer past the SDK's 60 s default (until the block ends), so only the
    # client's read timeout can end the call; urllib3's error names the timeout that fired.
    with local_endpoint(_always(Reply(body=b"0.5\n", delay=120.0))) as endpoint:
        client = local_client(endpoint.url, read_timeout=0.3, max_attempts=1)
        assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (0.5, 0.3)
        with pytest.raises(ReadTimeoutError) as raised:
            predict(client, "local", [SAMPLE_ROW], SCHEMA)
    assert "(read timeout=0.3)" in str(raised.value.kwargs["error"])
    assert len(endpoint.seen.requests) == 1


def _concurrent_waves(pool_size: int, callers: int = 4, waves: int = 2) -> int:
    """``callers`` threads call at once (the server holds each answer until all have arrived), ``waves``
    times; the connections the server accepted."""
    everyone_in = threading.Barrier(callers, timeout=60)

    def together(body: bytes) -> Reply:
        everyone_in.wait()
        return probabilities(body)

    with local_endpoint(together) as endpoint:
        # Timeouts far past any scheduling stall of a busy machine, and no retry: a timed-out attempt's retry
        # would open a connection of its own and change the count this test is about.
        client = local_client(
            endpoint.url, pool_size=pool_size, connect_timeout=60.0, read_timeout=60.0, max_attempts=1
        )
        with ThreadPoolExecutor(callers) as pool:
            for _ in range(waves):
                list(pool.map(lambda _: predict(client, "local", [SAMPLE_ROW], SCHEMA), range(callers)))
        client.close()
        return endpoint.seen.connections


def test_the_pool_keeps_pool_size_connections_alive_for_concurrent_callers() -> None:
    # 4 callers at once open 4 connections; a pool of 4 keeps them all for the next wave.
    assert _concurrent_waves(pool_size=4) == 4
    # A pool of 2 keeps 2: the next wave reopens the other 2 (a pool sized below the concurrency costs
    # new connections, and against the real endpoint new TLS handshakes, on every burst).
    assert _concurrent_waves(pool_size=2) == 6


# --- as its help shows it, on a machine with no AWS configuration ----------------------------------------


def test_the_help_example_for_a_local_endpoint_works_without_aws_configuration(tmp_path: Path) -> None:
    (example,) = [line for line in (invoke.__doc__ or "").splitlines() if "NAME --endpoint-url http://127.0" in line]
    command = example.split("#")[0].split()
    assert command[:2] == ["python", "scripts/invoke.py"]
    with FakeEndpoint(workers=1, service_time=0.001) as server:
        argv = [server.url if word == "http://127.0.0.1:8080" else word for word in command[2:]]
        argv = [SAMPLE if word == "ROW" else word for word in argv]
        result = subprocess.run(
            [sys.executable, "scripts/invoke.py", *argv],
            cwd=REPO_ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    ((expected,),) = server.model.scores([SAMPLE_ROW])
    assert f"{SENT} -> {expected!r}" in result.stdout
    assert server.stats.served == 1


def test_a_real_aws_url_still_needs_the_aws_configuration(tmp_path: Path) -> None:
    # The dummy credentials are for loopback only: a regional URL with no configuration fails as before.
    result = subprocess.run(
        [sys.executable, "scripts/invoke.py", "--endpoint-name", "ep", "--endpoint-url",
         "https://runtime.sagemaker.us-east-1.amazonaws.com", SAMPLE],
        cwd=REPO_ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (1, "invoke: NoRegionError: You must specify a region.\n")


# --- a model of another shape, described by --manifest ---------------------------------------------------


def test_manifest_gives_the_row_shape_and_the_answers_of_another_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = {
        "features": [f"f{i}" for i in range(12)],
        "objective": "multi:softprob",
        "num_class": 3,
        "output": {"kind": "class_probabilities", "columns": 3},
    }
    path = tmp_path / "model-manifest.json"
    path.write_text(json.dumps(manifest))
    row = [0.5, -1.25, 369.9999, 1234567.0, 1e-07, -0.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    text = ",".join(map(repr, row))
    model = stand_in(manifest)
    for profile in ("cpu", "gpu", "inferentia"):
        with FakeEndpoint(workers=1, service_time=0.001, profile=profile, model=model) as server:
            argv = _local(server.url, "--profile", profile, "--manifest", str(path), text)
            code, out, err = _run(argv, capsys, session=local_session())
        assert (code, err) == (0, ""), profile
        assert out.splitlines()[1] == f"{text} -> {model.scores([row])[0]}", profile
    assert _run(_local("http://127.0.0.1:9", "--manifest", str(path), SAMPLE), capsys) == (
        2,
        "",
        "invoke: the row has 7 values; the model takes 12: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, ... (2 more)\n",
    )
