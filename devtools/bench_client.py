"""Show what the pooled client saves: N sequential calls on one kept-alive connection, not N connections.

    python scripts/bench_client.py [--calls 200] [--profile cpu|gpu|inferentia] [--manifest PATH]  (make bench-client)

A local InvokeEndpoint server on 127.0.0.1 (HTTP/1.1 keep-alive, answers at once) counts the TCP
connections it accepts while the same N calls run twice: through one ``runtime_client`` (the kit's way)
and through a new client per call (what a handler that builds its client per request does). It prints
the connections and the client-side time per call (median, p99) of both. Requests and answers are in the
--profile's format (default cpu: text/csv), so the client's encoding and decoding are timed too. Each call
sends the model manifest's sample row (``sample_payload``) and the server answers in the manifest's output
shape (scripts/fake_endpoint.py's stand-in); the manifest is --manifest, else the profile's packaged
artifact's.

Loopback has no TLS and next to no round-trip time, so the times here are the floor; against the real
HTTPS endpoint every new connection also pays the TCP and TLS handshakes (several round trips).

Then, in the same run, the client's CPU per call of each transport (``runtime_client(transport=...)``: boto3's
client and the fast one): the same local endpoint runs in a process of its own, so ``time.process_time()`` of
this process counts only the client; --cpu-calls sequential calls per transport (0 skips this part), three
runs, medians, and the ratio against issue 23's goal (the fast path at least 5x boto3's calls per CPU-second).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import one_line  # noqa: E402
from devtools.fake_endpoint import PROFILE_FORMATS, Model, ModelError, stand_in  # noqa: E402
from modelpack.model_manifest import packaged_manifest_path, read_manifest, sample  # noqa: E402
from operations.invoke import EndpointSession, percentile  # noqa: E402
from rtb_client import PROFILES, codec_for, predict, runtime_client  # noqa: E402

ENDPOINT = "local-bench"
# Issue 23: at a million requests per second the client's CPU is part of the fleet's cost.
CPU_GOAL_RATIO = 5.0
CPU_REPEATS = 3
# Handler threads give up on a silent keep-alive connection after this long, so nothing outlives a run.
IDLE_SECONDS = 5.0


@dataclass(frozen=True)
class Reply:
    """What the local endpoint answers; ``delay`` holds the answer back (to trip read timeouts)."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    error_type: str | None = None
    content_type: str = "text/csv"


def probabilities(body: bytes) -> Reply:
    """The default answer of a one-probability model: 0.5 for every CSV line, as the XGBoost container answers."""
    count = len([line for line in body.decode().splitlines() if line.strip()])
    return Reply(body=("\n".join("0.5" for _ in range(count)) + "\n").encode())


@dataclass(frozen=True)
class Workload:
    """What every call sends and how the server answers: a manifest's sample row and its stand-in model."""

    row: list[float]
    model: Model


def workload(manifest_path: Path) -> Workload:
    """The manifest's sample row (``sample_payload``) and the stand-in shaped like its model."""
    manifest = read_manifest(manifest_path)
    row, _ = sample(manifest, manifest_path)
    return Workload(row=row, model=stand_in(manifest, str(manifest_path)))


def answers_for(profile: str, model: Model) -> Callable[[bytes], Reply]:
    """The answer in a profile's format, as scripts/fake_endpoint.py scores with ``model``."""
    answer_format = PROFILE_FORMATS[profile]

    def answer(body: bytes) -> Reply:
        try:
            return Reply(body=answer_format.scorer(body, model), content_type=answer_format.content_type)
        except ModelError as error:
            return Reply(status=424, body=f'{{"message": "{error}"}}'.encode(), error_type="ModelError")

    return answer


@dataclass
class Seen:
    """What the server observed: connections accepted and each request's path, headers and body."""

    connections: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, responder: Callable[[bytes], Reply]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder = responder
        self.seen = Seen()
        # Set on shutdown: a held-back answer stops waiting, so no handler outlives the server.
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a read timeout) closes its end: expected here, so not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Called once per accepted TCP connection, however many requests then use it.
        with self.seen.lock:
            self.seen.connections += 1
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: many requests per connection
    timeout = IDLE_SECONDS
    # Headers and body go out as two writes; with Nagle on, the second waits for the client's delayed
    # ACK (about 40 ms) on a kept-alive connection, which would be the server's delay, not the client's.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.seen.lock:
            self.server.seen.requests.append((self.path, dict(self.headers.items()), body))
        reply = self.server.responder(body)
        if reply.delay and self.server.stopping.wait(reply.delay):
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type if reply.status == 200 else "application/json")
        if reply.error_type:
            self.send_header("x-amzn-ErrorType", reply.error_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark's output is its table."""


@dataclass(frozen=True)
class LocalEndpoint:
    """A running local InvokeEndpoint server."""

    url: str
    seen: Seen


@contextmanager
def local_endpoint(responder: Callable[[bytes], Reply] = probabilities) -> Iterator[LocalEndpoint]:
    """An InvokeEndpoint server on 127.0.0.1 (an ephemeral port) for the duration of the block."""
    server = _Server(responder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LocalEndpoint(url=f"http://127.0.0.1:{server.server_address[1]}", seen=server.seen)
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def local_session() -> Any:
    """Fixed fake credentials and region: requests are signed, but never leave 127.0.0.1."""
    return boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")


def local_client(url: str, session: Any = None, **config: Any) -> Any:
    """The kit's runtime client, pointed at a local endpoint."""
    return runtime_client(EndpointSession(session or local_session(), url), **config)


@dataclass(frozen=True)
class Run:
    """N calls of one strategy: the server's connection count and the client-side time of each call."""

    connections: int
    call_ms: list[float]
    setup_ms: list[float]


def _timed_calls(
    url: str, calls: int, work: Workload, *, client_per_call: bool, profile: str
) -> tuple[list[float], list[float]]:
    call_ms, setup_ms = [], []
    # One session either way, as in an ad server: only the client (and so its connection pool) differs.
    session = local_session()
    shared = None if client_per_call else local_client(url, session)
    for _ in range(calls):
        start = time.perf_counter()
        client = shared or local_client(url, session)
        ready = time.perf_counter()
        predict(client, ENDPOINT, [work.row], work.model.schema, profile=profile)
        done = time.perf_counter()
        call_ms.append((done - ready) * 1000)
        if client_per_call:
            setup_ms.append((ready - start) * 1000)
            client.close()
    if shared is not None:
        shared.close()
    return call_ms, setup_ms


def run_strategy(calls: int, *, client_per_call: bool, profile: str = "cpu", manifest: Path | None = None) -> Run:
    """``calls`` sequential calls against a fresh local endpoint that answers in the profile's format, each
    with the sample row of ``manifest`` (default: the profile's packaged artifact's)."""
    work = workload(manifest or packaged_manifest_path(profile))
    with local_endpoint(answers_for(profile, work.model)) as endpoint:
        call_ms, setup_ms = _timed_calls(endpoint.url, calls, work, client_per_call=client_per_call, profile=profile)
        return Run(connections=endpoint.seen.connections, call_ms=call_ms, setup_ms=setup_ms)


def format_table(calls: int, pooled: Run, per_call: Run, *, profile: str = "cpu") -> list[str]:
    pooled_median, per_call_median = statistics.median(pooled.call_ms), statistics.median(per_call.call_ms)
    lines = [
        f"{calls} sequential InvokeEndpoint calls ({profile} profile), local server on 127.0.0.1 (HTTP/1.1 "
        "keep-alive, replies at once)",
        f"{'strategy':<22}{'connections':>12}{'median ms':>11}{'p99 ms':>9}",
    ]
    for name, run in (("one pooled client", pooled), ("new client per call", per_call)):
        lines.append(
            f"{name:<22}{run.connections:>12}{statistics.median(run.call_ms):>11.2f}{percentile(run.call_ms, 99):>9.2f}"
        )
    lines.append(f"ratio of medians (new client per call / pooled): {per_call_median / pooled_median:.2f}x")
    lines.append(
        f"building each new client cost another {statistics.median(per_call.setup_ms):.1f} ms (median), "
        "not counted above"
    )
    lines.append("no TLS on loopback: against the real endpoint each new connection adds TCP and TLS handshakes")
    return lines


# --- client CPU per call: each transport against an endpoint in another process -------------------------------


def serve_for_parent(profile: str, manifest: str) -> None:
    """The endpoint process: serves the profile's answers on 127.0.0.1, prints its URL, stops when stdin closes."""
    work = workload(Path(manifest) if manifest else packaged_manifest_path(profile))
    with local_endpoint(answers_for(profile, work.model)) as endpoint:
        print(endpoint.url, flush=True)
        sys.stdin.read()


@contextmanager
def endpoint_process(profile: str, manifest: Path | None) -> Iterator[str]:
    """A local endpoint in a child process (its CPU is not this process's), for the duration of the block."""
    code = "import sys; from devtools.bench_client import serve_for_parent; serve_for_parent(sys.argv[1], sys.argv[2])"
    child = subprocess.Popen(
        [sys.executable, "-c", code, profile, str(manifest or "")],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        url = child.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the endpoint process did not start (exit code {child.poll()})")
        yield url
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        finally:
            child.stdout.close()


def _cpu_seconds(call: Callable[[], object], calls: int) -> float:
    """CPU seconds of this process for ``calls`` calls, after a warm-up (connection, caches)."""
    for _ in range(max(1, calls // 10)):
        call()
    start = time.process_time()
    for _ in range(calls):
        call()
    return time.process_time() - start


def calls_per_cpu_second(url: str, transport: str, calls: int, work: Workload, profile: str, *, rows: bool) -> float:
    """Calls per CPU-second of this process: ``invoke_endpoint`` with the profile's request for the sample row
    and its body read (what the transport does), or with ``rows`` the whole ``predict`` (encoding, checks and
    decoding too, the same work on either transport)."""
    client = local_client(url, transport=transport)
    codec = codec_for(profile)
    request = {"EndpointName": ENDPOINT, "ContentType": codec.content_type, "Accept": codec.accept}
    body = codec.encode([work.row])

    def invoke() -> bytes:
        data: bytes = client.invoke_endpoint(Body=body, **request)["Body"].read()
        return data

    def rows_in_predictions_out() -> object:
        return predict(client, ENDPOINT, [work.row], work.model.schema, profile=profile)

    try:
        used = _cpu_seconds(rows_in_predictions_out if rows else invoke, calls)
    finally:
        client.close()
    return calls / used if used > 0 else float("inf")


# What the CPU table measures: each transport's invoke_endpoint, then predict() on the fast one.
CPU_RUNS = (("boto3", False), ("fast", False), ("fast", True))


def cpu_rates(calls: int, *, profile: str = "cpu", manifest: Path | None = None) -> dict[tuple[str, bool], list[float]]:
    """Calls per client CPU-second of each of CPU_RUNS, CPU_REPEATS runs each, taking turns (a machine's slow
    moment falls on all of them); the endpoint runs in a child process."""
    work = workload(manifest or packaged_manifest_path(profile))
    rates: dict[tuple[str, bool], list[float]] = {run: [] for run in CPU_RUNS}
    with endpoint_process(profile, manifest) as url:
        for repeat in range(CPU_REPEATS):
            for transport, rows in CPU_RUNS if repeat % 2 else reversed(CPU_RUNS):
                rates[transport, rows].append(calls_per_cpu_second(url, transport, calls, work, profile, rows=rows))
    return rates


def format_cpu_table(calls: int, rates: dict[tuple[str, bool], list[float]], *, profile: str = "cpu") -> list[str]:
    medians = {run: statistics.median(values) for run, values in rates.items()}
    lines = [
        f"client CPU per call ({profile} profile): {calls} sequential calls per run, median of {CPU_REPEATS} runs, "
        "the local server in a process of its own",
        f"{'transport':<10}{'call':<18}{'calls per CPU-second':>22}{'CPU us per call':>17}",
    ]
    for transport, rows in CPU_RUNS:
        rate = medians[transport, rows]
        call = "predict()" if rows else "invoke_endpoint"
        lines.append(f"{transport:<10}{call:<18}{rate:>22,.0f}{1e6 / rate:>17.1f}")
    ratio = medians["fast", False] / medians["boto3", False]
    verdict = "met" if ratio >= CPU_GOAL_RATIO else "NOT met"
    lines.append(
        f"fast / boto3 (invoke_endpoint): {ratio:.2f}x calls per CPU-second (goal: at least {CPU_GOAL_RATIO:g}x: "
        f"{verdict})"
    )
    return lines


def _calls(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"allowed: 1 to 100000, got {value}")
    return value


def _cpu_calls(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"allowed: 0 (skip) to 1000000, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=_calls, default=200, help="sequential calls per strategy (default 200)")
    parser.add_argument("--profile", choices=PROFILES, default="cpu", help="request and answer format (default cpu)")
    parser.add_argument(
        "--manifest", type=Path, help="the model manifest whose sample row is sent (default: the profile's packaged)"
    )
    parser.add_argument(
        "--cpu-calls",
        type=_cpu_calls,
        default=2000,
        help="calls per transport and run for the client-CPU comparison (default 2000; 0 skips it)",
    )
    args = parser.parse_args(argv)
    try:
        pooled = run_strategy(args.calls, client_per_call=False, profile=args.profile, manifest=args.manifest)
        per_call = run_strategy(args.calls, client_per_call=True, profile=args.profile, manifest=args.manifest)
        lines = format_table(args.calls, pooled, per_call, profile=args.profile)
        if args.cpu_calls:
            print("\n".join(lines), flush=True)
            lines = [
                "",
                *format_cpu_table(
                    args.cpu_calls,
                    cpu_rates(args.cpu_calls, profile=args.profile, manifest=args.manifest),
                    profile=args.profile,
                ),
            ]
    except (ValueError, RuntimeError) as error:
        print(f"bench_client: {one_line(error)}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
