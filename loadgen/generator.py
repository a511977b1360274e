"""The load test's Locust glue in one generator process: the pacer's schedule of slots, the Locust user that
calls the endpoint in them, and the generator that tallies each step's calls and drains them at its end,
with how starved the process was meanwhile (loadgen/starvation.py)."""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cliutil import one_line
from loadgen.plan import LoadTestError, Plan
from loadgen.starvation import LAG_INTERVAL_SECONDS, MachineSample, machine_sample, machine_shares, watch_loop
from loadgen.step_tally import Tally

# Between steps a user polls for the next step's first slot this often.
PAUSED_POLL_SECONDS = 0.005


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
    rate: float  # the rate this process paces
    machine: MachineSample  # the machine's counters at the window's start (at the step's, until then)
    window_sampled: bool = False
    paused_at: float = math.inf
    closed: bool = False
    samples: list[str] = field(default_factory=list)  # counted calls as CSV lines, with --samples-dir


class Generator:
    """This process's share of the offered load: its pacer, the current step's tally and the calls whose
    slots were claimed but not yet recorded.

    A call belongs to the step whose slot it took and is counted when the slot lies in the step's window
    (after the warm-up, before the pause), however late it completes: at a step's end the generator stops
    claiming slots and drains the calls in flight before the tally is closed, so no step inherits the
    previous one's queue. Calls still unfinished when the drain runs out are counted as failed. A timer
    greenlet (``watch``) records how late the event loop wakes in the same window, and the step's tally
    closes with the machine's CPU steal and pressure over it."""

    def __init__(self, *, poisson: bool, drain_seconds: float, samples_dir: Path | None = None) -> None:
        self.pacer = Pacer(poisson=poisson)
        self.drain_seconds = drain_seconds
        self.samples_path = None if samples_dir is None else samples_dir / f"samples-{os.getpid()}.csv"
        self.step: _Step | None = None
        self.paused = True
        self.lag_interval = LAG_INTERVAL_SECONDS
        self.claims: dict[int, Any] = {}  # id(user) -> user, for users holding a slot not yet recorded

    @classmethod
    def for_plan(cls, plan: Plan) -> Generator:
        return cls(poisson=plan.arrivals == "poisson", drain_seconds=plan.drain_seconds, samples_dir=plan.samples_dir)

    def begin(self, index: int, rate: float, warmup_seconds: float) -> None:
        now = time.perf_counter()
        self.pacer.set_rate(rate)
        self.step = _Step(index, Tally(), now + warmup_seconds, now, time.process_time(), rate, machine_sample())
        self.paused = False

    def watch(self, sleep: Any, interval: float = LAG_INTERVAL_SECONDS) -> None:
        """The event loop's timer, for a greenlet of its own: runs until the process ends."""
        self.lag_interval = interval
        watch_loop(self.record_lag, sleep, interval=interval)

    def record_lag(self, started: float, lag_seconds: float) -> None:
        """A timer that started at ``started`` woke ``lag_seconds`` late: counted in the step whose window
        holds its start, like a call's slot."""
        step = self.step
        if step is None or step.closed or not step.warm_until <= started < step.paused_at:
            return
        if not step.window_sampled:  # the window's first tick: the machine's counters from here
            step.machine, step.window_sampled = machine_sample(), True
        step.tally.record_lag(lag_seconds * 1000, self.lag_interval * 1000)

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
        with ``sleep``), close the tally with the window, CPU, offered rate and the machine's CPU steal and
        pressure, and return it."""
        step = self.step
        if step is None:
            raise LoadTestError("a step was ended before it began")
        now = time.perf_counter()
        self.paused, step.paused_at = True, now
        cpu = 100 * (time.process_time() - step.cpu_began) / max(now - step.began, 1e-9)
        steal, pressure = machine_shares(step.machine, machine_sample())  # over the window
        deadline = now + self.drain_seconds
        while self._in_flight() and time.perf_counter() < deadline:
            sleep(0.005)
        unfinished = self._in_flight()
        if unfinished:
            step.tally.other_errors += unfinished
            step.tally.messages[f"unfinished after the {self.drain_seconds:g} s drain"] += unfinished
            step.samples += [f"{step.index + 1},unfinished,nan,nan\n"] * (unfinished if self.samples_path else 0)
            self.claims.clear()  # counted: the next step does not wait for them
        step.tally.close(max(step.paused_at - step.warm_until, 1e-9), cpu, offered_rps=step.rate,
                         steal_percent=steal, pressure_percent=pressure)  # fmt: skip
        step.closed = True
        if self.samples_path is not None:
            with self.samples_path.open("a") as handle:
                handle.writelines(step.samples)
        return step.tally


def user_class(plan: Plan, generator: Generator) -> type:
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
            rows = random.choices(plan.rows, k=plan.rows_per_request)  # the same row repeated if only one
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                plan.score(rows)
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

    def begin(self, index: int, offered_rps: float, warmup_seconds: float) -> bool:
        self.generator.begin(index, offered_rps, warmup_seconds)
        return True

    def finish(self, index: int) -> list[Tally]:
        import gevent

        return [self.generator.drain(gevent.sleep)]


def require_gevent() -> None:
    """Refuse to start Locust in a process gevent has not patched (scripts/loadtest.py patches first)."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        raise LoadTestError("run the load test as a program (python -m scripts.loadtest): Locust needs gevent first")
