"""Whether a load generator was starved while it measured: its own event loop's lag, and the machine's CPU
steal and CPU pressure over a step.

A generator's CPU share stays low when other work keeps it off the CPU, so it cannot tell a starved
generator from an idle one. What starvation does to the measurement shows directly in a timer: a greenlet
that sleeps a fixed short interval wakes late by as long as the process could not run (other processes
on its cores, a hypervisor, a SIGSTOP) or its event loop was busy, and a call's answer that arrives then
is timed late by as much. The machine-wide counters say why: steal is CPU time the hypervisor gave to
other guests, pressure the share of time some runnable task waited for a CPU. Both are Linux's; elsewhere
(e.g. macOS) they are None and reported as not available.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The timer's interval: short against any latency SLO worth load testing (a few ms and up), long enough
# that 100 wakeups a second cost the generator nothing measurable.
LAG_INTERVAL_SECONDS = 0.01

PROC = Path("/proc")


@dataclass(frozen=True)
class MachineSample:
    """Cumulative counters at one moment; None where this machine does not have them."""

    wall: float  # time.perf_counter()
    steal_ticks: int | None = None  # /proc/stat "cpu" line: steal, in USER_HZ ticks
    total_ticks: int | None = None  # the same line's user .. steal, in USER_HZ ticks
    pressure_us: int | None = None  # /proc/pressure/cpu "some" total, microseconds


def machine_sample(proc: Path = PROC) -> MachineSample:
    """The machine's CPU steal and CPU pressure counters now (None for each one this machine lacks)."""
    wall = time.perf_counter()
    steal = total = pressure = None
    try:
        # proc_stat(5), https://man7.org/linux/man-pages/man5/proc_stat.5.html (formerly part of proc(5)):
        # the first line, "cpu", is the time all CPUs spent in user, nice, system, idle, iowait, irq,
        # softirq and steal (the 8th, "stolen time, which is the time spent in other operating systems when
        # running in a virtualized environment"), then guest and guest_nice, which user and nice include.
        fields = (proc / "stat").read_text().split("\n", 1)[0].split()
        if fields[0] == "cpu" and len(fields) >= 9:
            ticks = [int(value) for value in fields[1:9]]
            steal, total = ticks[7], sum(ticks)
    except (OSError, ValueError, IndexError):
        pass
    try:
        # PSI, https://docs.kernel.org/accounting/psi.html: in /proc/pressure/cpu, "some" is the share of
        # time in which at least one runnable task waited for a CPU; "total" is that time, cumulative, in us.
        for line in (proc / "pressure" / "cpu").read_text().splitlines():
            if line.startswith("some "):
                pressure = int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return MachineSample(wall, steal, total, pressure)


def _delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before


def machine_shares(before: MachineSample, after: MachineSample) -> tuple[float | None, float | None]:
    """(CPU steal, CPU pressure) between two samples, in percent: steal of all CPU time, pressure of the
    wall time between them; None where a counter is missing or did not move."""
    steal = None
    stolen, ticks = _delta(before.steal_ticks, after.steal_ticks), _delta(before.total_ticks, after.total_ticks)
    if stolen is not None and ticks:
        steal = 100 * stolen / ticks
    pressure = None
    wall = after.wall - before.wall
    if before.pressure_us is not None and after.pressure_us is not None and wall > 0:
        pressure = min(100.0, 100 * (after.pressure_us - before.pressure_us) / 1e6 / wall)
    return steal, pressure


def availability(proc: Path = PROC) -> dict[str, str]:
    """Where each starvation measure comes from on this machine, or "not available"."""
    sample = machine_sample(proc)
    return {
        "loop_lag": f"a timer in each generator process, every {LAG_INTERVAL_SECONDS * 1000:g} ms",
        "cpu_steal": "/proc/stat" if sample.steal_ticks is not None else "not available (no /proc/stat)",
        "cpu_pressure": "/proc/pressure/cpu (some)"
        if sample.pressure_us is not None
        else "not available (no /proc/pressure/cpu)",
    }


def watch_loop(
    record: Callable[[float, float], None],
    sleep: Callable[[float], object],
    *,
    clock: Callable[[], float] = time.perf_counter,
    interval: float = LAG_INTERVAL_SECONDS,
    rounds: float = math.inf,
) -> None:
    """Sleep ``interval`` again and again and ``record(started, lag_seconds)``: how much later than asked
    each sleep ended. Run it in a greenlet of the generator's event loop (``rounds``: for tests)."""
    done = 0
    while done < rounds:
        started = clock()
        sleep(interval)
        record(started, max(0.0, clock() - started - interval))
        done += 1
