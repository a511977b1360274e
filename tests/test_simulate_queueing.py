"""The queueing formulas behind the simulated day, against theory and against per-request simulation.

Where theory is exact (an M/M/c queue: Erlang C and its exponential waits) a per-request simulation with a fixed
seed must agree within a 99.9% confidence interval from 20 batch means (calls in a queue are correlated, so the
interval is built from batches, not single calls); and the same interval must reject a theory 10% off in its
arrival rate, so the check has the power to fail. The M/G/c approximation and the two routing readings are
checked the same way against simulation of what they stand for.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from capacity import queueing
from capacity.fleet_sim import INSTANCE, POOLED, Instance, slow_share
from capacity.queueing import ExponentialService, ServiceTime, erlang_c
from capacity.request_sim import batch_share, lor_responses, poisson_arrivals, simulate_mgc

SERVERS, MU = 4, 250.0  # four workers of 4 ms mean service: 1,000 calls/s
SLO = 0.020


def test_erlang_c_known_values() -> None:
    assert float(erlang_c(1, 0.7)) == pytest.approx(0.7)  # M/M/1: a call waits with the utilisation
    assert float(erlang_c(2, 1.0)) == pytest.approx(1 / 3)
    assert float(erlang_c(4, 4.0)) == 1.0 and float(erlang_c(4, 5.0)) == 1.0  # at or past capacity
    assert float(erlang_c(1000, 900.0)) < 1e-3  # many servers at 90%: the recursion stays finite


@pytest.fixture(scope="module")
def mm4() -> tuple[np.ndarray, np.ndarray]:
    """200,000 calls of an M/M/4 queue at 80% (after 20,000 warm-up calls), seed 7."""
    return simulate_mgc(np.random.default_rng(7), 800.0, ExponentialService(1 / MU), SERVERS, 200_000, 20_000)


def test_mmc_probability_of_waiting_is_erlang_c(mm4: tuple[np.ndarray, np.ndarray]) -> None:
    waits, _ = mm4
    estimate = batch_share(waits > 0)
    assert estimate.covers(float(erlang_c(SERVERS, 800 / MU)))
    assert not estimate.covers(float(erlang_c(SERVERS, 880 / MU)))  # a rate 10% off is rejected


@pytest.mark.parametrize("p", [0.9, 0.99])
def test_mmc_waiting_time_percentiles(mm4: tuple[np.ndarray, np.ndarray], p: float) -> None:
    waits, _ = mm4
    percentile = queueing.mmc_wait_percentile(p, SERVERS, 800, MU)
    assert percentile > 0
    # The share of simulated waits beyond the theoretical percentile is 1 - p, within the interval.
    estimate = batch_share(waits > percentile)
    assert estimate.covers(1 - p)
    wrong = queueing.mmc_wait_percentile(p, SERVERS, 880, MU)
    assert not batch_share(waits > wrong).covers(1 - p)
    assert queueing.mmc_wait_tail(percentile, SERVERS, 800, MU) == pytest.approx(1 - p)


def test_mmc_response_time_tail(mm4: tuple[np.ndarray, np.ndarray]) -> None:
    _, responses = mm4
    estimate = batch_share(responses > SLO)
    assert estimate.covers(queueing.mmc_response_tail(SLO, SERVERS, 800, MU))
    assert not estimate.covers(queueing.mmc_response_tail(SLO, SERVERS, 880, MU))


@pytest.mark.parametrize("rate", [500.0, 800.0, 950.0])
def test_the_general_tail_formula_is_exact_for_exponential_service(rate: float) -> None:
    general = queueing.mgc_response_tail(SLO, SERVERS, rate, ExponentialService(1 / MU))
    assert float(general[0]) == pytest.approx(queueing.mmc_response_tail(SLO, SERVERS, rate, MU), rel=1e-4)


@pytest.mark.parametrize(("rate", "seed"), [(1000.0, 2), (1100.0, 3)])
def test_the_mgc_approximation_against_simulation(rate: float, seed: int) -> None:
    """Lognormal service (p50 3 ms, p99 8 ms: the simulation's default) near the knee, where it matters."""
    service = ServiceTime.from_percentiles(3, 8)
    _, responses = simulate_mgc(np.random.default_rng(seed), rate, service, SERVERS, 200_000, 20_000)
    estimate = batch_share(responses > SLO)
    model = float(queueing.mgc_response_tail(SLO, SERVERS, rate, service)[0])
    assert estimate.covers(model), (estimate, model)


def test_the_lognormal_fit_passes_through_its_percentiles() -> None:
    service = ServiceTime.from_percentiles(3, 8)
    assert service.percentile_s(0.5) == pytest.approx(0.003)
    assert service.percentile_s(0.99) == pytest.approx(0.008)
    assert service.mean_s == pytest.approx(0.003 * math.exp(service.sigma**2 / 2))
    assert float(service.tail(np.array([0.008]))[0]) == pytest.approx(0.01, rel=1e-6)
    samples = service.sample(np.random.default_rng(1), 200_000)
    assert np.quantile(samples, 0.99) == pytest.approx(0.008, rel=0.03)


@pytest.mark.parametrize("servers", [400, 2000])
@pytest.mark.parametrize("rho", [0.9, 0.95, 0.99])
def test_the_pooled_readings_erlang_c_for_many_servers_is_close_to_exact(servers: int, rho: float) -> None:
    exact = float(erlang_c(servers, rho * servers))
    assert float(queueing.halfin_whitt(np.array([servers]), np.array([rho]))[0]) == pytest.approx(exact, abs=0.004)


def _instance() -> Instance:
    return Instance(SERVERS, ExponentialService(1 / MU), SLO)


@pytest.mark.parametrize(("instances", "seed"), [(2, 11), (8, 12)])
def test_least_outstanding_routing_lies_between_the_two_readings(instances: int, seed: int) -> None:
    """Per-request least-outstanding-requests routing over instances of 4 workers at 92% each: no worse than
    separate queues (the conservative reading), no better than one pooled queue (the optimistic one)."""
    rng = np.random.default_rng(seed)
    per_instance = 920.0
    calls = 150_000
    arrivals = poisson_arrivals(rng, per_instance * instances, calls)
    services = ExponentialService(1 / MU).sample(rng, calls)
    estimate = batch_share(lor_responses(arrivals, services, instances, SERVERS)[10_000:] > SLO)
    rate, count = np.array([per_instance]), np.array([float(instances)])
    separate = float(slow_share(rate, count, _instance(), INSTANCE, np.zeros(1))[0])
    pooled = float(slow_share(rate, count, _instance(), POOLED, np.zeros(1))[0])
    assert pooled < separate
    assert pooled - estimate.half_width <= estimate.value <= separate + estimate.half_width, (
        pooled,
        estimate,
        separate,
    )
    assert estimate.value < separate / 2  # routing by outstanding requests pools the workers: far fewer slow calls
