"""A starved load generator: how it is measured (event-loop lag, CPU steal, CPU pressure), and that a run
whose generator is starved against a healthy endpoint ends in a lower bound, never in the endpoint
failing its SLO, while errors the endpoint answers stay its own.

The runs starve the generator with SIGSTOP pulses of seconds: far longer than anything a busy machine's
noise makes (two CPU hogs on 2 cores gave event-loop lags of at most 250 ms) and than the SLO they judge
(1 s), so the verdicts hold on any machine; the assertions are on verdicts, never on timings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_endpoint import FakeEndpoint
from loadgen import starvation
from loadgen.generator import Generator

from .conftest import REPO_ROOT

HANG_GUARD_SECONDS = 180.0
# A pulse: the generator stopped this long, then running this long. Any 5 s window holds 3 s of stop.
STOP_SECONDS, RUN_SECONDS = 3.0, 1.0
SLO_MS = "1000"


@pytest.fixture(autouse=True)
def _no_locust_in_this_process() -> Iterator[None]:
    yield
    assert "locust" not in sys.modules


# --- the measures ----------------------------------------------------------------------------------


def _proc(tmp_path: Path, stat: str | None, pressure: str | None) -> Path:
    if stat is not None:
        (tmp_path / "stat").write_text(stat)
    if pressure is not None:
        (tmp_path / "pressure").mkdir(exist_ok=True)
        (tmp_path / "pressure" / "cpu").write_text(pressure)
    return tmp_path


def test_steal_and_pressure_are_read_from_proc_stat_and_psi(tmp_path: Path) -> None:
    before = starvation.machine_sample(_proc(
        tmp_path, "cpu  100 0 50 800 10 0 5 35 7 0\ncpu0 1 2 3\n",
        "some avg10=76.16 avg60=84.55 avg300=64.98 total=2000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    ))  # fmt: skip
    assert (before.steal_ticks, before.total_ticks, before.pressure_us) == (35, 1000, 2_000_000)
    # 100 more ticks of which 20 stolen; 1.5 s of "some" stall over 2 s of wall time.
    after = starvation.MachineSample(before.wall + 2.0, 55, 1100, 3_500_000)
    assert starvation.machine_shares(before, after) == (20.0, 75.0)


def test_a_machine_without_them_says_not_available(tmp_path: Path) -> None:
    proc = _proc(tmp_path, None, None)  # e.g. macOS: no /proc at all
    sample = starvation.machine_sample(proc)
    assert (sample.steal_ticks, sample.total_ticks, sample.pressure_us) == (None, None, None)
    assert starvation.machine_shares(sample, starvation.machine_sample(proc)) == (None, None)
    assert starvation.availability(proc) == {
        "loop_lag": "a timer in each generator process, every 10 ms",
        "cpu_steal": "not available (no /proc/stat)",
        "cpu_pressure": "not available (no /proc/pressure/cpu)",
    }
    # A kernel with /proc/stat but without PSI (before 4.20, or booted with psi=0).
    partial = _proc(tmp_path, "cpu  1 2 3 4 5 6 7 8 0 0\n", None)
    assert starvation.availability(partial)["cpu_steal"] == "/proc/stat"
    assert starvation.availability(partial)["cpu_pressure"] == "not available (no /proc/pressure/cpu)"


def test_the_timer_records_how_late_each_sleep_ends() -> None:
    now = [0.0]
    oversleeps = iter([0.0, 0.5, 0.002])

    def sleep(seconds: float) -> None:
        now[0] += seconds + next(oversleeps)

    seen: list[tuple[float, float]] = []
    starvation.watch_loop(lambda started, lag: seen.append((started, round(lag, 9))), sleep, clock=lambda: now[0],
                          interval=0.01, rounds=3)  # fmt: skip
    assert seen == [(0.0, 0.0), (0.01, 0.5), (0.52, 0.002)]


def test_the_generator_counts_the_lag_in_the_steps_window_only() -> None:
    generator = Generator(poisson=False, drain_seconds=0.1)
    generator.begin(0, rate=30.0, warmup_seconds=100.0)
    step = generator.step
    assert step is not None
    generator.record_lag(step.warm_until - 1.0, 0.5)  # in the warm-up: not counted
    generator.record_lag(step.warm_until + 1.0, 0.5)
    tally = generator.drain(time.sleep)
    generator.record_lag(step.warm_until + 2.0, 0.5)  # after the step closed: not counted
    assert tally.loop_lag.get_total_count() == 50  # one 500 ms lag, as if timed every 10 ms
    assert tally.offered == [30.0]


# --- a starved generator against a healthy local endpoint ------------------------------------------


def _run_starved(url: str, out_dir: Path, pulses: tuple[str, str], *options: str) -> tuple[dict[str, Any], str, int]:
    """``python -m scripts.loadtest`` against ``url``, stopped and continued in pulses from the first line
    of its output that starts with ``pulses[0]`` to the first that starts with ``pulses[1]`` (or its exit).
    Returns its report, output and exit status."""
    with subprocess.Popen(
        [sys.executable, "-m", "scripts.loadtest", "--endpoint-url", url, "--out-dir", str(out_dir), *options],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    ) as process:  # fmt: skip
        text, seen = _pulse(process, *pulses)
    assert seen, text
    return json.loads((out_dir / "report.json").read_text()), text, process.returncode


def _pulse(process: subprocess.Popen[str], start: str, end: str) -> tuple[str, bool]:
    seen, over = threading.Event(), threading.Event()
    output: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if line.startswith(start):
                seen.set()
            if seen.is_set() and line.startswith(end):
                over.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    try:
        while not seen.is_set() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        while process.poll() is None and not over.is_set() and time.monotonic() < deadline:
            process.send_signal(signal.SIGSTOP)
            time.sleep(STOP_SECONDS)
            process.send_signal(signal.SIGCONT)
            time.sleep(RUN_SECONDS)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # never left stopped
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()  # a hang: the run's report is missing and the test fails on it
            process.wait()
        reader.join(timeout=30)
    return "".join(output), seen.is_set()


STEPS = ("--slo-ms", SLO_MS, "--start-rps", "20", "--step-rps", "20", "--user-rps", "10", "--step-seconds", "6",
         "--warmup-seconds", "1", "--refine", "0")  # fmt: skip


@pytest.mark.slow
def test_a_starved_generator_against_a_healthy_endpoint_gives_a_lower_bound_never_an_slo_failure(
    tmp_path: Path,
) -> None:
    # The endpoint serves in 2 ms, 500 times under the SLO; from the second step on, the generator is
    # stopped 3 s of every 4.
    with FakeEndpoint(workers=4, service_time=0.002) as server:
        report, output, status = _run_starved(server.url, tmp_path, ("step  1 ", "step  2 "), *STEPS,
                                              "--max-steps", "3")  # fmt: skip
    steps, result = report["steps"], report["result"]
    assert status == 0, output  # a MAX_RPS: the first step's, before the pulses
    assert (result["stop_reason"], result["lower_bound"], result["failed_step"]) == ("client_bound", True, 2), output
    assert [step["verdict"] for step in steps] == ["ok", "client_bound"], output
    assert any("event-loop lag" in sign for sign in steps[1]["generator_starved"]), steps[1]
    verdict = report["verdict"]
    assert "lower bound (client_bound)" in verdict and "the endpoint was not shown to fail" in verdict
    assert "exceeded" not in verdict and "slo" not in {step["verdict"] for step in steps}
    assert server.stats.rejected == server.stats.failed == server.stats.model_errors == 0


@pytest.mark.slow
def test_a_load_independent_5xx_share_is_the_endpoints_failure_even_from_a_starved_generator(tmp_path: Path) -> None:
    # Every 10th request answered 500 whatever the load; the generator stopped 3 s of every 4 throughout.
    with FakeEndpoint(workers=4, service_time=0.002, fail_every=10) as server:
        report, output, status = _run_starved(server.url, tmp_path, ("load test of ", "step  1 "), *STEPS,
                                              "--max-steps", "1")  # fmt: skip
    (step,) = report["steps"]
    result = report["result"]
    assert step["generator_starved"], step  # starved, and still:
    assert (step["verdict"], result["stop_reason"], result["lower_bound"]) == ("errors", "errors", False), output
    assert step["server_error_rate_5xx"] > 0.05, step
    assert status == 1  # no step met the criteria: no MAX_RPS
