"""Per-request discrete-event simulation, for validating the queueing formulas the simulated day relies on.

Every call is an event: first come first served on an instance's workers (each call takes the worker that frees
first, which is exact for FCFS), and least-outstanding-requests routing over instances (each call goes to the
instance with the fewest calls in flight, as SageMaker's LEAST_OUTSTANDING_REQUESTS routing does). Fine for
millions of calls; a day at 1M RPS (86 billion) is the fluid model's job (capacity/simulate.py).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from capacity.queueing import Floats, Service

# Two-sided 99.9% quantile of Student's t with 19 degrees of freedom (20 batches): the tests' confidence bound.
T_999_19 = 3.883


def poisson_arrivals(rng: np.random.Generator, rate: float, count: int) -> Floats:
    """Arrival times (seconds) of ``count`` calls of a Poisson stream at ``rate`` per second."""
    return np.asarray(np.cumsum(rng.exponential(1 / rate, count)), dtype=np.float64)


def fcfs_waits(arrivals: Floats, services: Floats, servers: int) -> Floats:
    """Each call's wait before a worker takes it, in one FCFS queue with ``servers`` workers."""
    free = [0.0] * servers  # when each worker is next free (a heap)
    waits = np.empty(len(arrivals))
    for index, (arrival, service) in enumerate(zip(arrivals.tolist(), services.tolist(), strict=True)):
        start = max(arrival, free[0])
        heapq.heapreplace(free, start + service)
        waits[index] = start - arrival
    return waits


def lor_responses(arrivals: Floats, services: Floats, instances: int, servers: int) -> Floats:
    """Each call's response time (wait plus service) over ``instances`` instances of ``servers`` FCFS workers,
    every call routed to the instance with the fewest calls in flight (the lowest-numbered on a tie)."""
    free = [[0.0] * servers for _ in range(instances)]
    in_flight = [0] * instances
    departures: list[tuple[float, int]] = []  # (time, instance) of every call in flight
    responses = np.empty(len(arrivals))
    for index, (arrival, service) in enumerate(zip(arrivals.tolist(), services.tolist(), strict=True)):
        while departures and departures[0][0] <= arrival:
            _, done = heapq.heappop(departures)
            in_flight[done] -= 1
        chosen = min(range(instances), key=in_flight.__getitem__)
        workers = free[chosen]
        start = max(arrival, workers[0])
        heapq.heapreplace(workers, start + service)
        heapq.heappush(departures, (start + service, chosen))
        in_flight[chosen] += 1
        responses[index] = start + service - arrival
    return responses


@dataclass(frozen=True)
class Estimate:
    """A share estimated from batch means: its value and the half-width of its 99.9% confidence interval."""

    value: float
    half_width: float

    def covers(self, truth: float) -> bool:
        return abs(self.value - truth) <= self.half_width


def batch_share(indicator: npt.NDArray[Any], batches: int = 20) -> Estimate:
    """The share of True in ``indicator`` with a confidence interval from ``batches`` consecutive batch means:
    calls in a queue are correlated, so a binomial interval over single calls would be too narrow."""
    if batches != 20:
        raise ValueError("the t quantile is for 20 batches")
    usable = len(indicator) - len(indicator) % batches
    means = np.asarray(indicator[:usable], dtype=np.float64).reshape(batches, -1).mean(axis=1)
    return Estimate(float(means.mean()), T_999_19 * float(means.std(ddof=1)) / math.sqrt(batches))


def simulate_mgc(
    rng: np.random.Generator, rate: float, service: Service, servers: int, calls: int, warmup: int
) -> tuple[Floats, Floats]:
    """(waits, responses) of ``calls`` calls after ``warmup`` more in one FCFS queue of ``servers`` workers."""
    arrivals = poisson_arrivals(rng, rate, calls + warmup)
    services = service.sample(rng, calls + warmup)
    waits = fcfs_waits(arrivals, services, servers)[warmup:]
    return waits, waits + services[warmup:]
