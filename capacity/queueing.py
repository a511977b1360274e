"""Queueing formulas for one instance as c workers behind one queue: Erlang C and the M/M/c waiting and response
times (exact), and an M/G/c approximation of the share of calls slower than an SLO (for the simulated day).

An M/M/c queue (Poisson arrivals at rate lam, c servers, exponential service at rate mu, first come first served)
waits with probability C = ErlangC(c, lam/mu); a call that waits, waits an exponential time of rate c*mu - lam:

    P(W > t) = C * exp(-(c*mu - lam) * t)

and its response time T = W + S, S independent of W. For service times of another shape (M/G/c) the kit keeps C
and scales the conditional wait's mean by (1 + cs2) / 2, cs2 the service time's squared coefficient of variation
(the Allen-Cunneen approximation); tests/test_simulate_queueing.py holds both against per-request simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
# Intervals of the trapezoidal rule over [0, x] in the M/G/c tail's integral.
INTEGRATION_STEPS = 512
_Z99 = NormalDist().inv_cdf(0.99)


@dataclass(frozen=True)
class ServiceTime:
    """A lognormal service time (seconds): its median and the standard deviation of its logarithm."""

    median_s: float
    sigma: float

    @classmethod
    def from_percentiles(cls, p50_ms: float, p99_ms: float) -> ServiceTime:
        """The lognormal through a median and a p99 (ms); a p99 at or below the median gives a near-constant."""
        if not (math.isfinite(p50_ms) and p50_ms > 0 and math.isfinite(p99_ms) and p99_ms > 0):
            raise ValueError(f"service time p50={p50_ms!r} ms, p99={p99_ms!r} ms: allowed: numbers above 0")
        sigma = max(math.log(p99_ms / p50_ms) / _Z99, 1e-3)
        return cls(median_s=p50_ms / 1000, sigma=sigma)

    @property
    def mean_s(self) -> float:
        return self.median_s * math.exp(self.sigma**2 / 2)

    @property
    def scv(self) -> float:
        """Squared coefficient of variation, Var[S] / E[S]^2."""
        return math.expm1(self.sigma**2)

    def percentile_s(self, p: float) -> float:
        return self.median_s * math.exp(self.sigma * NormalDist().inv_cdf(p))

    def tail(self, x: Floats) -> Floats:
        """P(S > x) for each x (seconds)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.ones_like(x)
        positive = x > 0
        z = (np.log(x[positive] / self.median_s)) / self.sigma
        out[positive] = 0.5 * _erfc(z / math.sqrt(2))
        return out

    def density(self, s: Floats) -> Floats:
        """The probability density at each s (seconds)."""
        s = np.asarray(s, dtype=np.float64)
        safe = np.maximum(s, 1e-300)
        z = np.log(safe / self.median_s) / self.sigma
        density = np.exp(-(z * z) / 2) / (safe * self.sigma * math.sqrt(2 * math.pi))
        return np.asarray(np.where(s > 0, density, 0.0), dtype=np.float64)

    def sample(self, rng: np.random.Generator, size: int) -> Floats:
        return np.asarray(rng.lognormal(math.log(self.median_s), self.sigma, size), dtype=np.float64)


@dataclass(frozen=True)
class ExponentialService:
    """An exponential service time (seconds): the M/M/c case, where the tail formula is exact."""

    mean_s: float

    @property
    def scv(self) -> float:
        return 1.0

    def tail(self, x: Floats) -> Floats:
        x = np.asarray(x, dtype=np.float64)
        return np.asarray(np.exp(-np.maximum(x, 0) / self.mean_s), dtype=np.float64)

    def density(self, s: Floats) -> Floats:
        s = np.asarray(s, dtype=np.float64)
        return np.asarray(np.where(s >= 0, np.exp(-np.maximum(s, 0) / self.mean_s) / self.mean_s, 0.0))

    def sample(self, rng: np.random.Generator, size: int) -> Floats:
        return np.asarray(rng.exponential(self.mean_s, size), dtype=np.float64)


Service = ServiceTime | ExponentialService


def _erfc(values: Floats) -> Floats:
    return np.asarray(np.vectorize(math.erfc, otypes=[np.float64])(values), dtype=np.float64)


def erlang_c(servers: int, offered: Floats | float) -> Floats:
    """The probability that a call waits in an M/M/c queue with ``servers`` servers and ``offered`` load
    (lam / mu, in servers' worth); 1 where offered >= servers. Computed through Erlang B's recursion, which
    stays finite for any number of servers."""
    a = np.asarray(offered, dtype=np.float64)
    blocking = np.ones_like(a)
    for k in range(1, servers + 1):
        blocking = a * blocking / (k + a * blocking)
    rho = a / servers
    with np.errstate(divide="ignore", invalid="ignore"):
        waiting = blocking / (1 - rho * (1 - blocking))
    return np.where(rho >= 1, 1.0, np.clip(waiting, 0.0, 1.0))


def halfin_whitt(servers: Floats, rho: Floats) -> Floats:
    """Erlang C for many servers without the recursion (Halfin and Whitt's heavy-traffic limit):
    1 / (1 + beta Phi(beta) / phi(beta)), beta = (1 - rho) sqrt(servers); within 0.004 of exact from 400 servers
    at 90% and busier (tests/test_simulate_queueing.py)."""
    beta = (1 - np.minimum(np.asarray(rho, dtype=np.float64), 1.0)) * np.sqrt(np.asarray(servers, dtype=np.float64))
    cdf = 0.5 * (1 + np.vectorize(math.erf, otypes=[np.float64])(beta / math.sqrt(2)))
    pdf = np.exp(-(beta**2) / 2) / math.sqrt(2 * math.pi)
    return np.asarray(1 / (1 + beta * cdf / pdf), dtype=np.float64)


def mmc_wait_tail(t: float, servers: int, arrival: float, service_rate: float) -> float:
    """P(W > t) in an M/M/c queue (t in seconds, rates per second)."""
    if arrival >= servers * service_rate:
        return 1.0
    c = float(erlang_c(servers, arrival / service_rate))
    return c * math.exp(-(servers * service_rate - arrival) * t)


def mmc_wait_percentile(p: float, servers: int, arrival: float, service_rate: float) -> float:
    """The p-quantile of the waiting time in an M/M/c queue (0 when fewer than 1 - p of calls wait)."""
    if arrival >= servers * service_rate:
        return math.inf
    c = float(erlang_c(servers, arrival / service_rate))
    if c <= 1 - p:
        return 0.0
    return math.log(c / (1 - p)) / (servers * service_rate - arrival)


def mmc_response_tail(x: float, servers: int, arrival: float, service_rate: float) -> float:
    """P(W + S > x) in an M/M/c queue: the calls that do not wait take S, the others an exponential wait of rate
    theta = c*mu - lam plus S (a hypoexponential sum)."""
    if arrival >= servers * service_rate:
        return 1.0
    c = float(erlang_c(servers, arrival / service_rate))
    theta, mu = servers * service_rate - arrival, service_rate
    if math.isclose(theta, mu, rel_tol=1e-9):
        both = (1 + mu * x) * math.exp(-mu * x)  # Erlang-2
    else:
        both = (mu * math.exp(-theta * x) - theta * math.exp(-mu * x)) / (mu - theta)
    return (1 - c) * math.exp(-mu * x) + c * both


def mgc_response_tail(x: Floats | float, servers: int, per_instance_rate: Floats | float, service: Service) -> Floats:
    """P(W + S > x) for an instance of ``servers`` workers at ``per_instance_rate`` calls/s (M/G/c, approximate):
    P(S > x) + C * integral over [0, x] of exp(-theta (x - s)) f(s) ds, theta = (c/E[S] - lam) * 2 / (1 + cs2).
    1 where the instance is overloaded (offered load at or above its workers)."""
    lam = np.atleast_1d(np.asarray(per_instance_rate, dtype=np.float64))
    xs = np.broadcast_to(np.asarray(x, dtype=np.float64), lam.shape)
    mean = service.mean_s
    offered = lam * mean
    stable = offered < servers
    out = np.ones_like(lam)
    if not stable.any():
        return out
    lam_s, x_s = lam[stable], np.maximum(xs[stable], 0.0)
    waits = erlang_c(servers, offered[stable])
    theta = (servers / mean - lam_s) * 2 / (1 + service.scv)
    u = np.linspace(0.0, 1.0, INTEGRATION_STEPS + 1)
    if np.all(x_s == x_s[0]):  # one x for every row (the SLO): the density on one grid
        grid = x_s[0] * u
        integrand = np.exp(-theta[:, None] * (x_s[0] - grid)[None, :]) * service.density(grid)[None, :]
        integral = np.trapezoid(integrand, grid, axis=1)
    else:
        s = x_s[:, None] * u[None, :]
        integrand = np.exp(-theta[:, None] * (x_s[:, None] - s)) * service.density(s)
        integral = np.trapezoid(integrand, s, axis=1)
    out[stable] = np.minimum(1.0, service.tail(x_s) + waits * integral)
    return out
