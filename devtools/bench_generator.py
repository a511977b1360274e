"""How much load one generator process drives, and how the load test scales with processes on this machine.

    python scripts/bench_generator.py [--processes 1,2] [--per-process-rps 800] [--step-seconds 10]
    (make bench-generator ARGS="...")

For each process count N, the real load test (``python -m scripts.loadtest --processes N``: a Locust
master and N workers) offers N x --per-process-rps to a local fake endpoint that answers at once (64
workers x 0.1 ms, in this process) for one step, more than a process can send, so each worker runs flat
out. It prints what was achieved in all and per process, the workers' CPU, and the rate per generator
CPU-second (achieved calls over the workers' summed CPU time): the figure to size generator cores by.
Loopback has no TLS and no network, so a real endpoint's calls cost the generator somewhat more each.
On a machine with C cores, the server here takes part of one: scaling past C - 1 processes measures the
machine, not the generator.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import one_line  # noqa: E402
from devtools.fake_endpoint import FakeEndpoint  # noqa: E402


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of process counts") from None
    if not counts or any(not 1 <= count <= 64 for count in counts):
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: allowed: process counts from 1 to 64")
    return counts


def run_step(url: str, processes: int, offered: float, step_seconds: int, out_dir: Path) -> dict[str, Any]:
    """One saturating step of the load test with ``processes`` workers; its report's step row."""
    command = [
        sys.executable, "-m", "scripts.loadtest", "--endpoint-url", url, "--processes", str(processes),
        "--start-rps", str(offered), "--max-steps", "1", "--refine", "0", "--step-seconds", str(step_seconds),
        "--slo-ms", "10000", "--user-rps", "20", "--min-achieved", "0.01", "--max-error-rate", "0.99",
        "--max-lateness-ms", "10000", "--out-dir", str(out_dir),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=step_seconds + 300)
    report = out_dir / "report.json"
    if not report.exists():
        lines = (result.stdout + result.stderr).strip().splitlines()
        raise SystemExit(f"bench-generator: the load test with {processes} processes failed: {lines[-1:]}")
    (step,) = json.loads(report.read_text())["steps"]
    return dict(step)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/bench_generator.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cores = os.cpu_count() or 1
    parser.add_argument("--processes", type=_counts, default=list(range(1, cores + 1)),
                        help=f"process counts to run, comma-separated (default: 1 to the cores, {cores})")  # fmt: skip
    parser.add_argument("--per-process-rps", type=float, default=800.0,
                        help="offered per process: above what one sends (default: 800)")  # fmt: skip
    parser.add_argument("--total-rps", type=float,
                        help="offer this in all, whatever the processes (default: processes x the above)")  # fmt: skip
    parser.add_argument("--step-seconds", type=int, default=10, help="the step's length (default: 10)")
    parser.add_argument("--runs", type=int, default=1, help="runs per process count; medians are printed")
    args = parser.parse_args(argv)
    if not (args.per_process_rps > 0 and (args.total_rps or 1) > 0 and args.step_seconds >= 2 and args.runs >= 1):
        parser.error("--per-process-rps and --total-rps must be > 0, --step-seconds >= 2, --runs >= 1")
    offered = args.total_rps or None
    print(
        f"bench-generator {datetime.now(UTC):%Y-%m-%d}: {platform.machine()}, {cores} cores, Python "
        f"{platform.python_version()}; offered "
        + (f"{offered:g} RPS in all" if offered else f"{args.per_process_rps:g} RPS per process")
        + f" for {args.step_seconds} s"
    )
    print(f"{'processes':>9}  {'achieved':>9}  {'per process':>17}  {'busiest cpu':>11}  {'per cpu-s':>9}  "
          f"{'x 1 process':>11}  {'server cpu':>10}")  # fmt: skip
    base: float | None = None
    with tempfile.TemporaryDirectory() as scratch, FakeEndpoint(workers=64, service_time=0.0001) as server:
        for processes in args.processes:
            rows = []
            for run in range(args.runs):
                server_cpu = time.process_time()
                began = time.perf_counter()
                step = run_step(server.url, processes, offered or processes * args.per_process_rps, args.step_seconds,
                                Path(scratch) / f"p{processes}-{run}")  # fmt: skip
                server_share = 100 * (time.process_time() - server_cpu) / (time.perf_counter() - began)
                cpu_seconds = sum(step["process_cpu_percent"]) / 100 * step["window_seconds"]
                rows.append((step, server_share, step["achieved_rps"] * step["window_seconds"] / cpu_seconds))
            achieved = statistics.median(row[0]["achieved_rps"] for row in rows)
            step = min(rows, key=lambda row: abs(row[0]["achieved_rps"] - achieved))[0]
            if processes == 1:
                base = achieved
            ratio = f"{achieved / base:.2f}" if base else "-"
            per = step["process_rps"]
            print(
                f"{processes:>9}  {achieved:>9.0f}  {min(per):>7.0f} - {max(per):>7.0f}  "
                f"{max(step['process_cpu_percent']):>10.0f}%  {statistics.median(row[2] for row in rows):>9.0f}  "
                f"{ratio:>11}  {statistics.median(row[1] for row in rows):>9.0f}%"
            )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, subprocess.SubprocessError) as error:
        print(f"bench-generator failed: {one_line(error)}", file=sys.stderr)
        sys.exit(1)
