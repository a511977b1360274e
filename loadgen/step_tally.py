"""One load-test step's calls in one generator process, in a form that merges exactly across processes.

Percentiles cannot be merged (the p99 of two processes' p99s is no p99), so each process keeps its step's
latencies in HdrHistograms (microseconds, 3 significant digits: a value is known within 0.1%) and counts
its calls by outcome. The master adds the processes' histograms bucket by bucket: the merged histogram is
the histogram of the pooled calls, and its p99 is theirs (tests/test_step_tally.py). Each process also
reports what it offered and how starved it was (loadgen/starvation.py): its event loop's lag, the
machine's CPU steal and pressure; those stay per process, since one starved process is enough to bias
the calls it times.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from loadgen import knee

# Microseconds: 1 us to 10 minutes (a call later than that is recorded as 10 minutes), 3 significant digits.
HIGHEST_US = 600_000_000
DIGITS = 3
# How many distinct error messages a process reports per step.
MESSAGES = 10


def histogram() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, DIGITS)


def _us(ms: float) -> int:
    return min(HIGHEST_US, max(1, round(ms * 1000)))


def _worst(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None and not math.isnan(value)]
    return max(known) if known else None


def _nan_for_none(value: float | None) -> float:
    return math.nan if value is None else value


def percentile_ms(values: HdrHistogram, q: float) -> float:
    """The q-th percentile (0-100) in ms, the nearest rank's bucket; NaN for no values."""
    return values.get_value_at_percentile(q) / 1000 if values.get_total_count() else math.nan


@dataclass
class Tally:
    """A step's calls in one process or, merged, in all of them. ``latency`` holds successful calls timed
    from their slot, ``service`` the same calls from the actual send, ``lateness`` the generator's own delay
    past a slot while a user was free. ``rates`` is each process's successful calls per second of its window,
    ``offered`` the rate it was asked to pace. ``loop_lag`` is how late the event loop's timer woke, counted
    as if sampled at every interval (a stall of 1 s adds the lags 1 s, 0.99 s, ... that timers due in it
    would have seen), so its percentiles weigh a stall by its length, as the calls it delays are."""

    latency: HdrHistogram = field(default_factory=histogram)
    service: HdrHistogram = field(default_factory=histogram)
    lateness: HdrHistogram = field(default_factory=histogram)
    loop_lag: HdrHistogram = field(default_factory=histogram)
    ok: int = 0
    server_errors: int = 0  # answered 5XX
    client_errors: int = 0  # answered 4XX
    other_errors: int = 0  # failed in the client: timeouts, refused answers, unfinished at the drain's end
    window_seconds: float = 0.0
    cpu_percent: list[float] = field(default_factory=list)  # one per process
    rates: list[float] = field(default_factory=list)  # one per process
    offered: list[float] = field(default_factory=list)  # one per process
    lag_p99_ms: list[float] = field(default_factory=list)  # one per process: its loop lag's p99 (NaN: none)
    steal_percent: list[float | None] = field(default_factory=list)  # one per process (None: not available)
    pressure_percent: list[float | None] = field(default_factory=list)  # one per process (None: not available)
    messages: Counter[str] = field(default_factory=Counter)

    def record(self, kind: str, latency_ms: float, service_ms: float, lateness_ms: float, message: str = "") -> None:
        """One call: ``kind`` is "ok", "5xx", "4xx" or "client" (loadtest.error_class)."""
        if kind == "ok":
            self.ok += 1
            self.latency.record_value(_us(latency_ms))
            self.service.record_value(_us(service_ms))
            self.lateness.record_value(_us(lateness_ms))
            return
        if kind == "5xx":
            self.server_errors += 1
        elif kind == "4xx":
            self.client_errors += 1
        else:
            self.other_errors += 1
        if message:
            self.messages[message] += 1

    def record_lag(self, lag_ms: float, interval_ms: float) -> None:
        """One wakeup of the event loop's timer, ``lag_ms`` later than asked."""
        self.loop_lag.record_corrected_value(_us(lag_ms), _us(interval_ms))

    @property
    def errors(self) -> int:
        return self.server_errors + self.client_errors + self.other_errors

    def close(
        self,
        window_seconds: float,
        cpu_percent: float,
        *,
        offered_rps: float = 0.0,
        steal_percent: float | None = None,
        pressure_percent: float | None = None,
    ) -> None:
        """The process's step is over: its window, CPU, the rate it offered and the machine's CPU steal and
        pressure over the window; so its achieved rate and its loop lag's p99."""
        self.window_seconds = window_seconds
        self.cpu_percent = [cpu_percent]
        self.rates = [self.ok / window_seconds if window_seconds > 0 else 0.0]
        self.offered = [offered_rps]
        self.lag_p99_ms = [percentile_ms(self.loop_lag, 99)]
        self.steal_percent = [steal_percent]
        self.pressure_percent = [pressure_percent]

    def add(self, other: Tally) -> None:
        """Merge another process's tally of the same step into this one."""
        for mine, theirs in ((self.latency, other.latency), (self.service, other.service),
                             (self.lateness, other.lateness), (self.loop_lag, other.loop_lag)):  # fmt: skip
            mine.add(theirs)
        self.ok += other.ok
        self.server_errors += other.server_errors
        self.client_errors += other.client_errors
        self.other_errors += other.other_errors
        self.window_seconds = max(self.window_seconds, other.window_seconds)
        self.cpu_percent += other.cpu_percent
        self.rates += other.rates
        self.offered += other.offered
        self.lag_p99_ms += other.lag_p99_ms
        self.steal_percent += other.steal_percent
        self.pressure_percent += other.pressure_percent
        self.messages += other.messages

    def to_message(self) -> dict[str, Any]:
        """A plain dict for Locust's worker-to-master messages (msgpack): histograms in HdrHistogram's
        compressed encoding."""
        return {
            "latency": self.latency.encode().decode("ascii"),
            "service": self.service.encode().decode("ascii"),
            "lateness": self.lateness.encode().decode("ascii"),
            "loop_lag": self.loop_lag.encode().decode("ascii"),
            "ok": self.ok,
            "server_errors": self.server_errors,
            "client_errors": self.client_errors,
            "other_errors": self.other_errors,
            "window_seconds": self.window_seconds,
            "cpu_percent": self.cpu_percent,
            "rates": self.rates,
            "offered": self.offered,
            "lag_p99_ms": self.lag_p99_ms,
            "steal_percent": self.steal_percent,
            "pressure_percent": self.pressure_percent,
            "messages": dict(self.messages.most_common(MESSAGES)),
        }

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> Tally:
        return cls(
            latency=HdrHistogram.decode(data["latency"].encode("ascii")),
            service=HdrHistogram.decode(data["service"].encode("ascii")),
            lateness=HdrHistogram.decode(data["lateness"].encode("ascii")),
            loop_lag=HdrHistogram.decode(data["loop_lag"].encode("ascii")),
            ok=int(data["ok"]),
            server_errors=int(data["server_errors"]),
            client_errors=int(data["client_errors"]),
            other_errors=int(data["other_errors"]),
            window_seconds=float(data["window_seconds"]),
            cpu_percent=[float(value) for value in data["cpu_percent"]],
            rates=[float(value) for value in data["rates"]],
            offered=[float(value) for value in data["offered"]],
            lag_p99_ms=[float(value) for value in data["lag_p99_ms"]],
            steal_percent=[None if value is None else float(value) for value in data["steal_percent"]],
            pressure_percent=[None if value is None else float(value) for value in data["pressure_percent"]],
            messages=Counter({str(key): int(value) for key, value in data["messages"].items()}),
        )

    def stats(self, *, offered_rps: float, users: int, rows_per_request: int = 1) -> knee.StepStats:
        """The step's statistics. The achieved rate is the sum of the processes' rates; the generator's CPU,
        loop lag, steal and pressure are its worst process's (one starved process makes the step
        client-bound)."""
        return knee.StepStats(
            offered_rps=offered_rps,
            achieved_rps=sum(self.rates),
            p50_ms=percentile_ms(self.latency, 50),
            p90_ms=percentile_ms(self.latency, 90),
            p99_ms=percentile_ms(self.latency, 99),
            requests=self.ok + self.errors,
            errors=self.errors,
            users=users,
            window_seconds=self.window_seconds,
            client_cpu_percent=max(self.cpu_percent) if self.cpu_percent else None,
            server_errors=self.server_errors,
            client_errors=self.client_errors,
            service_p99_ms=percentile_ms(self.service, 99),
            lateness_p99_ms=percentile_ms(self.lateness, 99),
            processes=max(1, len(self.rates)),
            process_rps=tuple(self.rates),
            process_cpu_percent=tuple(self.cpu_percent),
            process_offered_rps=tuple(self.offered),
            loop_lag_p99_ms=_nan_for_none(_worst(list(self.lag_p99_ms))),
            loop_lag_max_ms=self.loop_lag.get_max_value() / 1000 if self.loop_lag.get_total_count() else math.nan,
            process_loop_lag_p99_ms=tuple(self.lag_p99_ms),
            cpu_steal_percent=_worst(self.steal_percent),
            cpu_pressure_percent=_worst(self.pressure_percent),
            rows_per_request=rows_per_request,
        )


def merged(tallies: Iterable[Tally]) -> Tally:
    """One tally of the step's calls in every process."""
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total
