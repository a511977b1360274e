"""What micro-batching saves and costs: client CPU per row and the latency it adds, per batch size.

    python scripts/bench_batching.py [--sizes 1,2,4,8,16,32,64] [--rows 4000] [--max-wait-us 1000]   (make bench-client)

For each batch size B, B caller threads call ``MicroBatcher.predict`` with one row each, in a closed loop, so
rows arrive B at a time and are gathered into requests of up to B rows (B = 1: plain ``predict``, unbatched).
The endpoint is the fake endpoint (devtools/fake_endpoint.py) in a process of its own, answering at once in the
cpu profile's format, so the CPU counted (``time.process_time`` of this process) is the client's alone. It
prints, per B: rows per request achieved, client CPU per row (and rows per CPU-second), and each call's latency
(median and p99) with the median's increase over B = 1: the latency batching adds. Loopback and no TLS: the
floor of the client's costs, not an endpoint's.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import one_line  # noqa: E402
from modelpack.model_manifest import packaged_manifest_path, read_manifest, sample  # noqa: E402
from operations.invoke import percentile  # noqa: E402
from rtb_client import MAX_WAIT_US_LIMIT, MicroBatcher, ModelSchema, predict, runtime_client  # noqa: E402

ENDPOINT = "local-bench"
SIZES = (1, 2, 4, 8, 16, 32, 64)
# How long the fake endpoint's process may take to say where it listens.
START_SECONDS = 60.0


@dataclass(frozen=True)
class Result:
    """One batch size's run."""

    size: int
    rows: int
    requests: int
    cpu_seconds: float
    latencies_ms: list[float]

    @property
    def rows_per_request(self) -> float:
        return self.rows / self.requests

    @property
    def cpu_us_per_row(self) -> float:
        return self.cpu_seconds / self.rows * 1e6


@contextmanager
def fake_endpoint(workers: int) -> Iterator[str]:
    """The fake endpoint in its own process (cpu profile, answering within a microsecond); yields its URL."""
    command = [sys.executable, "-m", "devtools.fake_endpoint", "--workers", str(workers), "--service-ms", "0.001"]
    command += ["--port", "0", "--seconds", "3600"]
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None and server.stderr is not None
            line = server.stdout.readline()  # the endpoint's first line names its URL
            found = re.search(r" on (http://127\.0\.0\.1:\d+):", line)
            if found is None:
                raise RuntimeError(f"the fake endpoint did not start: {line.strip() or server.stderr.read().strip()}")
            yield found.group(1)
        finally:
            server.terminate()
            server.wait(timeout=START_SECONDS)


def local_client(url: str, pool_size: int) -> object:
    """The kit's runtime client on the local endpoint, with fixed fake credentials (nothing leaves 127.0.0.1)."""
    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")
    return runtime_client(session, region="us-east-1", endpoint_url=url, pool_size=pool_size)


def run_size(url: str, size: int, rows: int, row: list[float], schema: ModelSchema, max_wait_us: int) -> Result:
    """``rows`` rows from ``size`` closed-loop callers, batched into requests of up to ``size`` rows."""
    client = local_client(url, pool_size=max(size, 2))
    batcher = MicroBatcher(client, ENDPOINT, schema, max_rows=size, max_wait_us=max_wait_us) if size > 1 else None
    per_caller = rows // size
    latencies: list[list[float]] = [[] for _ in range(size)]
    start_together = threading.Barrier(size + 1)

    def caller(mine: list[float]) -> None:
        start_together.wait()
        for _ in range(per_caller):
            began = time.perf_counter()
            if batcher is None:
                predict(client, ENDPOINT, [row], schema)
            else:
                batcher.predict(row)
            mine.append((time.perf_counter() - began) * 1000)

    predict(client, ENDPOINT, [row], schema)  # a warm connection before counting
    threads = [threading.Thread(target=caller, args=(mine,)) for mine in latencies]
    for thread in threads:
        thread.start()
    cpu_before = time.process_time()
    start_together.wait()
    for thread in threads:
        thread.join()
    cpu = time.process_time() - cpu_before
    getattr(client, "close", lambda: None)()  # its pooled connections
    sent = per_caller * size
    requests = batcher.requests if batcher is not None else sent
    return Result(size, sent, requests, cpu, [value for mine in latencies for value in mine])


def format_table(results: list[Result], max_wait_us: int) -> list[str]:
    base = statistics.median(results[0].latencies_ms)
    lines = [
        f"micro-batching on loopback (cpu profile, fake endpoint in its own process, max_wait_us={max_wait_us}): "
        "B callers at once, batched into requests of up to B rows",
        f"{'B':>3}{'rows/request':>14}{'CPU us/row':>12}{'rows/CPU-s':>12}{'median ms':>11}{'p99 ms':>8}"
        f"{'added ms':>10}",
    ]
    for result in results:
        median = statistics.median(result.latencies_ms)
        lines.append(
            f"{result.size:>3}{result.rows_per_request:>14.1f}{result.cpu_us_per_row:>12.0f}"
            f"{1e6 / result.cpu_us_per_row:>12,.0f}{median:>11.2f}{percentile(result.latencies_ms, 99):>8.2f}"
            f"{median - base:>+10.2f}"
        )
    return lines


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not sizes or sizes[0] != 1 or any(not 1 <= size <= 64 for size in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: allowed: sizes from 1 to 64, starting with 1 (the unbatched base)")
    return sizes


def _positive(text: str) -> int:
    value = int(text)
    if value < 64:
        raise argparse.ArgumentTypeError(f"allowed: at least 64, got {value}")
    return value


def _wait(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_WAIT_US_LIMIT:
        raise argparse.ArgumentTypeError(f"allowed: 0 to {MAX_WAIT_US_LIMIT}, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_sizes, default=SIZES, help="batch sizes, from 1 (default 1,2,4,...,64)")
    parser.add_argument("--rows", type=_positive, default=4000, help="rows per batch size (default 4000)")
    parser.add_argument("--max-wait-us", type=_wait, default=MAX_WAIT_US_LIMIT, help="a batch's longest wait")
    args = parser.parse_args(argv)
    manifest_path = packaged_manifest_path("cpu")
    manifest = read_manifest(manifest_path)
    row, _ = sample(manifest, manifest_path)
    schema = ModelSchema.from_manifest(manifest)
    try:
        with fake_endpoint(workers=max(args.sizes)) as url:
            results = [run_size(url, size, args.rows, row, schema, args.max_wait_us) for size in args.sizes]
    except (RuntimeError, OSError, ValueError) as error:
        print(f"bench_batching: {one_line(error)}", file=sys.stderr)
        return 1
    print("\n".join(format_table(results, args.max_wait_us)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
