"""The load test's arithmetic, report and plot: pure functions of per-step statistics, no Locust.

A step offers a fixed request rate for a while. The search raises the rate by a fixed step until a step
breaks a criterion (p99 over the SLO, too many errors, or the endpoint not keeping up with the offered
rate), then halves the gap between the last good and the first failing rate a few times (``next_offered``).
``find_knee`` reads the result: MAX_RPS is the achieved rate of the highest-offered good step below the
lowest failing one. The autoscaling target follows AWS's formula:
``SageMakerVariantInvocationsPerInstance = MAX_RPS per instance * safety * 60``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

REPORT_VERSION = 1


class StopReason(StrEnum):
    """Why the search stopped; the values are what the JSON report says."""

    SLO = "slo"  # p99 over the SLO
    ERRORS = "errors"  # error rate over the bound
    SATURATED = "saturated"  # achieved under min_achieved_ratio x offered: the endpoint could not keep up
    CLIENT_BOUND = "client_bound"  # a step failed while the load generator was saturated (CPU) or late
    MAX_STEPS = "max_steps"  # every planned step passed
    TIME_LIMIT = "time_limit"  # --max-seconds ran out before a step failed
    INTERRUPTED = "interrupted"  # stopped by hand


# Reasons after which MAX_RPS is only a lower bound: the endpoint was never pushed past its knee.
LOWER_BOUND = frozenset({StopReason.CLIENT_BOUND, StopReason.MAX_STEPS, StopReason.TIME_LIMIT, StopReason.INTERRUPTED})


@dataclass(frozen=True, kw_only=True)
class Criteria:
    """What a step must meet to count: the latency SLO, the error bound and the throughput it must reach."""

    slo_p99_ms: float = 20.0
    max_error_rate: float = 0.01
    min_achieved_ratio: float = 0.9
    # At or above this CPU use (percent of one core) the load generator, not the endpoint, sets the pace.
    max_client_cpu_percent: float = 90.0
    # Above this p99 of the generator's own lateness (a free user sending after its slot) likewise.
    max_generator_lateness_ms: float = 10.0

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.slo_p99_ms) and self.slo_p99_ms > 0):
            problems.append(f"slo_p99_ms={self.slo_p99_ms} is invalid: allowed: greater than 0")
        if not 0 <= self.max_error_rate < 1:
            problems.append(f"max_error_rate={self.max_error_rate} is invalid: allowed: at least 0 and below 1")
        if not 0 < self.min_achieved_ratio <= 1:
            problems.append(f"min_achieved_ratio={self.min_achieved_ratio} is invalid: allowed: in (0, 1]")
        if not (math.isfinite(self.max_generator_lateness_ms) and self.max_generator_lateness_ms > 0):
            problems.append(
                f"max_generator_lateness_ms={self.max_generator_lateness_ms} is invalid: allowed: greater than 0"
            )
        if not 0 < self.max_client_cpu_percent <= 100:
            problems.append(f"max_client_cpu_percent={self.max_client_cpu_percent} is invalid: allowed: in (0, 100]")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, kw_only=True)
class StepStats:
    """One step, measured over its window (the step minus its warm-up). Latencies are of successful calls,
    from each call's intended send time (its slot in the schedule): a call that waited for a free user
    counts that wait, as an open-loop client's would (coordinated omission). ``service_p99_ms`` is from the
    actual send; ``lateness_p99_ms`` is the generator's own delay past a slot while a user was free."""

    offered_rps: float
    achieved_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int
    users: int = 0
    window_seconds: float = 0.0
    client_cpu_percent: float | None = None
    # Of ``errors``: answered 5XX and 4XX by the endpoint; the rest failed in the client (timeouts, refused
    # answers). Every call is one attempt: the load test's client does not retry.
    server_errors: int = 0
    client_errors: int = 0
    service_p99_ms: float = math.nan
    lateness_p99_ms: float = math.nan
    # Generator processes (Locust workers) and each one's achieved rate; client_cpu_percent is the busiest's.
    processes: int = 1
    process_rps: tuple[float, ...] = ()
    process_cpu_percent: tuple[float, ...] = ()

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def share(self, count: int) -> float:
        """``count`` as a share of this step's attempts."""
        return count / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Verdict:
    """A step's result: ok, or the reason it failed and every broken criterion in words."""

    reason: StopReason | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class Knee:
    """The search's result. ``max_rps`` is None when even the first step failed."""

    max_rps: float | None
    knee_step: int | None  # index of the step MAX_RPS comes from
    failed_step: int | None  # index of the step that stopped the search
    reason: StopReason
    detail: str

    @property
    def lower_bound(self) -> bool:
        """True when MAX_RPS is only what was reached, not where the endpoint broke."""
        return self.reason in LOWER_BOUND


def check_step(step: StepStats, criteria: Criteria) -> Verdict:
    """Whether one step met the criteria; if not, the main reason and every criterion it broke."""
    broken: list[tuple[StopReason, str]] = []
    if step.error_rate > criteria.max_error_rate:
        broken.append(
            (
                StopReason.ERRORS,
                f"error rate {step.error_rate:.2%} > {criteria.max_error_rate:.2%} ({step.errors}/{step.requests})",
            )
        )
    if math.isnan(step.p99_ms):
        broken.append((StopReason.SLO, "no successful call to measure p99 on"))
    elif step.p99_ms > criteria.slo_p99_ms:
        broken.append((StopReason.SLO, f"p99 {step.p99_ms:.1f} ms > SLO {criteria.slo_p99_ms:g} ms"))
    if step.achieved_rps < criteria.min_achieved_ratio * step.offered_rps:
        broken.append(
            (
                StopReason.SATURATED,
                f"achieved {step.achieved_rps:.1f} RPS < {criteria.min_achieved_ratio:.0%}"
                f" of offered {step.offered_rps:.1f} RPS",
            )
        )
    if not broken:
        return Verdict(None)
    detail = "; ".join(text for _, text in broken)
    cpu = step.client_cpu_percent
    if cpu is not None and cpu >= criteria.max_client_cpu_percent:
        # The generator was out of CPU: its own queueing inflates latency and caps the rate it can send.
        return Verdict(StopReason.CLIENT_BOUND, f"{detail}; the load generator used {cpu:.0f}% CPU, so it set the pace")
    late = step.lateness_p99_ms
    if not math.isnan(late) and late > criteria.max_generator_lateness_ms:
        # Free users sent after their slots: the generator could not keep its own schedule.
        return Verdict(
            StopReason.CLIENT_BOUND,
            f"{detail}; the load generator sent {late:.1f} ms late (p99) with users free, so it set the pace",
        )
    return Verdict(broken[0][0], detail)


@dataclass(frozen=True, kw_only=True)
class Search:
    """The steps to offer: ``start_rps`` up by ``step_rps`` (at most ``max_steps``, none over ``max_rps``),
    then up to ``refine`` steps that halve the gap between the last good and the first failing rate."""

    start_rps: float
    step_rps: float
    max_rps: float | None = None
    max_steps: int = 40
    refine: int = 2

    def __post_init__(self) -> None:
        for name in ("start_rps", "step_rps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value} is invalid: allowed: greater than 0")
        if self.max_rps is not None and not self.max_rps >= self.start_rps:
            raise ValueError(f"max_rps={self.max_rps} is invalid: allowed: at least start_rps={self.start_rps}")
        if not 1 <= self.max_steps <= 1000:
            raise ValueError(f"max_steps={self.max_steps} is invalid: allowed: 1 to 1000")
        if not 0 <= self.refine <= 10:
            raise ValueError(f"refine={self.refine} is invalid: allowed: 0 to 10")

    def coarse(self) -> list[float]:
        """The rising steps, before any refinement."""
        offered = [self.start_rps + self.step_rps * n for n in range(self.max_steps)]
        return [rps for rps in offered if self.max_rps is None or rps <= self.max_rps * (1 + 1e-9)]


def _bracket(steps: Sequence[StepStats], criteria: Criteria) -> tuple[int | None, int | None]:
    """Indexes of the lowest-offered failing step and of the highest-offered good step below it."""
    failing = [i for i, step in enumerate(steps) if not check_step(step, criteria).ok]
    lowest_fail = min(failing, key=lambda i: steps[i].offered_rps) if failing else None
    ceiling = math.inf if lowest_fail is None else steps[lowest_fail].offered_rps
    good = [i for i, step in enumerate(steps) if i not in failing and step.offered_rps < ceiling]
    best_good = max(good, key=lambda i: (steps[i].offered_rps, i)) if good else None
    return best_good, lowest_fail


def next_offered(steps: Sequence[StepStats], criteria: Criteria, search: Search) -> float | None:
    """The next step's offered RPS given the steps so far, or None when the search is over."""
    good, fail = _bracket(steps, criteria)
    if fail is None:
        coarse = search.coarse()
        return coarse[len(steps)] if len(steps) < len(coarse) else None
    if good is None:
        return None  # the first step failed: there is nothing below it to refine
    first_fail = next(i for i, step in enumerate(steps) if not check_step(step, criteria).ok)
    refined = len(steps) - 1 - first_fail
    low, high = steps[good].offered_rps, steps[fail].offered_rps
    if refined >= search.refine or high - low < 0.01 * high:
        return None
    return (low + high) / 2


def find_knee(steps: Sequence[StepStats], criteria: Criteria, *, ended_by: StopReason | None = None) -> Knee:
    """MAX_RPS and why the search stopped: the achieved rate of the highest-offered good step below the
    lowest-offered failing one (for rising steps: the last step before the first failure).

    ``ended_by`` says why the steps ran out when none failed (default: the plan's last step was reached)."""
    good, fail = _bracket(steps, criteria)
    if fail is not None:
        step = steps[fail]
        verdict = check_step(step, criteria)
        assert verdict.reason is not None  # _bracket picked a failing step
        where = f"step {fail + 1} (offered {step.offered_rps:.1f} RPS)"
        if good is None:
            detail = f"{where} failed: {verdict.detail}; no step below it met the criteria, start lower"
            return Knee(None, None, fail, verdict.reason, detail)
        return Knee(steps[good].achieved_rps, good, fail, verdict.reason, f"{where}: {verdict.detail}")
    reason = ended_by or StopReason.MAX_STEPS
    if good is None:
        return Knee(None, None, None, reason, "no step completed")
    top = steps[good]
    return Knee(
        top.achieved_rps,
        good,
        None,
        reason,
        f"every step met the criteria up to offered {top.offered_rps:.1f} RPS",
    )


def per_instance(max_rps: float, instances: int) -> float:
    """The endpoint spreads requests over its instances (least outstanding requests)."""
    if instances < 1:
        raise ValueError(f"instances={instances} is invalid: allowed: 1 or more")
    return max_rps / instances


def invocations_target(max_rps_per_instance: float, safety_factor: float) -> float:
    """AWS guidance: SageMakerVariantInvocationsPerInstance = MAX_RPS * SAFETY_FACTOR * 60 (per minute)."""
    if not 0 < safety_factor <= 1:
        raise ValueError(f"safety_factor={safety_factor} is invalid: allowed: greater than 0 and at most 1")
    return max_rps_per_instance * safety_factor * 60


def step_line(index: int, step: StepStats, verdict: Verdict) -> str:
    """One line of live progress."""
    ratio = step.achieved_rps / step.offered_rps if step.offered_rps else 0.0
    cpu = "" if step.client_cpu_percent is None else f"  cpu {step.client_cpu_percent:3.0f}%"
    if step.processes > 1:
        cpu = f"  {step.processes} procs{cpu} (busiest)"
    if not math.isnan(step.lateness_p99_ms):
        cpu += f"  late p99 {step.lateness_p99_ms:.1f} ms"
    outcome = "ok" if verdict.ok else f"FAIL ({verdict.reason}): {verdict.detail}"
    return (
        f"step {index + 1:2d}  users {step.users:4d}  offered {step.offered_rps:8.1f}"
        f"  achieved {step.achieved_rps:8.1f} RPS ({ratio:4.0%})"
        f"  p50 {step.p50_ms:6.1f}  p90 {step.p90_ms:6.1f}  p99 {step.p99_ms:6.1f} ms"
        f"  errors {step.error_rate:6.2%} ({step.errors}/{step.requests}: 5XX {step.share(step.server_errors):.2%},"
        f" 4XX {step.share(step.client_errors):.2%}){cpu}  {outcome}"
    )


def _number(value: float | None, digits: int = 3) -> float | None:
    """JSON has no NaN: a percentile of no calls becomes null."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def build_report(
    *,
    steps: Sequence[StepStats],
    knee: Knee,
    criteria: Criteria,
    instances: int,
    safety_factor: float,
    endpoint: Mapping[str, Any],
    parameters: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON report: the steps, MAX_RPS for the endpoint and per instance, the target, SLO and parameters."""
    step_rows = []
    for index, step in enumerate(steps):
        verdict = check_step(step, criteria)
        step_rows.append(
            {
                "step": index + 1,
                "users": step.users,
                "offered_rps": _number(step.offered_rps),
                "achieved_rps": _number(step.achieved_rps),
                "p50_ms": _number(step.p50_ms),
                "p90_ms": _number(step.p90_ms),
                "p99_ms": _number(step.p99_ms),
                "service_p99_ms": _number(step.service_p99_ms),
                "generator_lateness_p99_ms": _number(step.lateness_p99_ms),
                "requests": step.requests,
                "errors": step.errors,
                "error_rate": _number(step.error_rate, 5),
                "server_errors_5xx": step.server_errors,
                "server_error_rate_5xx": _number(step.share(step.server_errors), 5),
                "client_errors_4xx": step.client_errors,
                "client_error_rate_4xx": _number(step.share(step.client_errors), 5),
                "window_seconds": _number(step.window_seconds),
                "client_cpu_percent": _number(step.client_cpu_percent, 1),
                "processes": step.processes,
                "process_rps": [_number(rate, 1) for rate in step.process_rps],
                "process_cpu_percent": [_number(cpu, 1) for cpu in step.process_cpu_percent],
                "ok": verdict.ok,
                "verdict": str(verdict.reason) if verdict.reason else "ok",
                "detail": verdict.detail,
            }
        )
    # Per instance to 0.1 RPS, as recorded by the write-back; the target follows from that figure.
    rps_per_instance = None if knee.max_rps is None else round(per_instance(knee.max_rps, instances), 1)
    target = None if rps_per_instance is None else invocations_target(rps_per_instance, safety_factor)
    return {
        "report_version": REPORT_VERSION,
        "endpoint": dict(endpoint),
        "slo": asdict(criteria),
        "steps": step_rows,
        "result": {
            "max_rps": _number(knee.max_rps, 1),
            "instances": instances,
            "max_rps_per_instance": _number(rps_per_instance, 1),
            "safety_factor": safety_factor,
            "invocations_per_instance_target": _number(target, 0),
            "stop_reason": str(knee.reason),
            "lower_bound": knee.lower_bound,
            "knee_step": None if knee.knee_step is None else knee.knee_step + 1,
            "failed_step": None if knee.failed_step is None else knee.failed_step + 1,
            "detail": knee.detail,
        },
        "parameters": dict(parameters),
    }


def verdict_in_words(report: Mapping[str, Any]) -> str:
    """The result as a team reads it: "MAX_RPS 350.0 per instance: p99 30.0 ms at 800 RPS exceeded the 20 ms
    SLO"; what stopped the search, in the failing step's own figures, or why MAX_RPS is only a lower bound."""
    result, slo = report["result"], report["slo"]
    failed = result["failed_step"]
    step = report["steps"][failed - 1] if failed else None
    reason = result["stop_reason"]
    if step is not None and reason == StopReason.SLO and step["p99_ms"] is not None:
        why = f"p99 {step['p99_ms']:.1f} ms at {step['offered_rps']:,.0f} RPS exceeded the {slo['slo_p99_ms']:g} ms SLO"
    elif step is not None and reason == StopReason.ERRORS:
        why = (
            f"errors {step['error_rate']:.2%} of attempts (5XX {step['server_error_rate_5xx']:.2%}) at "
            f"{step['offered_rps']:,.0f} RPS exceeded {slo['max_error_rate']:.2%}"
        )
    elif step is not None and reason == StopReason.SATURATED:
        why = f"the endpoint achieved {step['achieved_rps']:,.1f} of {step['offered_rps']:,.0f} RPS offered"
    else:
        why = f"a lower bound ({reason}): {result['detail']}" if result["lower_bound"] else result["detail"]
    if result["max_rps"] is None:
        start_lower = "; start lower (--start-rps)" if failed else ""
        return f"no MAX_RPS: the first step failed: {why}{start_lower}"
    return f"MAX_RPS {result['max_rps_per_instance']:,.1f} per instance: {why}"


def write_report(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")


def _fitted(values: Sequence[float], pad: float = 0.08) -> tuple[float, float]:
    """Axis limits around the data (not from 0, which squashes a narrow range against the top)."""
    low, high = min(values), max(values)
    span = (high - low) or max(abs(high), 1.0) * 0.1
    return low - pad * span, high + pad * span


def build_figure(report: Mapping[str, Any]) -> Any:
    """The load test's figure: latency against offered and achieved RPS (SLO line, failed and MAX_RPS steps),
    throughput on axes fitted to the data, the generator (CPU, lateness, samples per step) and, only when a
    step had errors, the error rates. The title is the verdict in words, with the run id and date."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    # Refining steps come after the failing one: draw every curve in order of offered load.
    steps = sorted(report["steps"], key=lambda row: row["offered_rps"])
    slo, result = report["slo"], report["result"]
    offered = [row["offered_rps"] for row in steps]
    achieved = [row["achieved_rps"] for row in steps]
    knee_row = next((row for row in steps if row["step"] == result["knee_step"]), None)
    had_errors = any(row["errors"] for row in steps)
    figure, grid = plt.subplots(2, 3 if had_errors else 2, figsize=(16 if had_errors else 12, 8.5), dpi=100)
    panels = list(grid.flat)
    by_offered, by_achieved = panels[0], panels[1]
    throughput, generator = (panels[3], panels[4]) if had_errors else (panels[2], panels[3])
    percentiles = (("p50_ms", "p50", "tab:green"), ("p90_ms", "p90", "tab:orange"), ("p99_ms", "p99", "tab:red"))
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for ax, x_key, label in ((by_offered, "offered_rps", "offered"), (by_achieved, "achieved_rps", "achieved")):
        for key, name, color in percentiles:
            points = [(row[x_key], row[key]) for row in steps if row[key] is not None]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=color, label=name)
        ax.axhline(slo["slo_p99_ms"], color="black", linestyle="--", label=f"SLO p99 {slo['slo_p99_ms']:g} ms")
        failed = [row for row in steps if not row["ok"] and row["p99_ms"] is not None]
        ax.scatter([row[x_key] for row in failed], [row["p99_ms"] for row in failed], marker="x", s=80,
                   color="black", zorder=3, label="failed step")  # fmt: skip
        if knee_row is not None and knee_row["p99_ms"] is not None:
            ax.scatter([knee_row[x_key]], [knee_row["p99_ms"]], marker="*", s=250, color="tab:blue", zorder=4,
                       label="MAX_RPS step")  # fmt: skip
        ax.set(xlabel=f"{label} requests/s", ylabel="latency from each call's slot (ms, log scale)",
               title=f"Latency by {label} load")  # fmt: skip
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize="x-small")
        ax.grid(True, which="both", alpha=0.3)
    if result["max_rps"] is not None:
        throughput.axhline(result["max_rps"], color="tab:blue", linestyle=":", label=f"MAX_RPS {result['max_rps']:.1f}")
    low, high = _fitted([*offered, *achieved])
    throughput.plot([low, high], [low, high], color="grey", linewidth=1, label="achieved = offered")
    ratio = slo["min_achieved_ratio"]
    throughput.plot([low, high], [low * ratio, high * ratio], color="grey", linestyle="--", linewidth=1,
                    label=f"{ratio:.0%} of offered")  # fmt: skip
    throughput.plot(offered, achieved, marker="o", color="tab:blue", label="achieved")
    if knee_row is not None:
        throughput.scatter([knee_row["offered_rps"]], [knee_row["achieved_rps"]], marker="*", s=250,
                           color="tab:blue", zorder=4)  # fmt: skip
    throughput.set(xlim=(low, high), ylim=(low, high), xlabel="offered requests/s", ylabel="achieved requests/s",
                   title="Throughput")  # fmt: skip
    cpu = [(row["offered_rps"], row["client_cpu_percent"]) for row in steps if row["client_cpu_percent"] is not None]
    generator.plot([c[0] for c in cpu], [c[1] for c in cpu], marker="o", color="tab:brown", label="generator CPU (%)")
    generator.axhline(slo["max_client_cpu_percent"], color="tab:brown", linestyle="--", linewidth=1,
                      label="CPU bound")  # fmt: skip
    generator.set(xlabel="offered requests/s", ylabel="CPU (% of one core)", title="Load generator")
    late = [(row["offered_rps"], row.get("generator_lateness_p99_ms")) for row in steps]
    late = [point for point in late if point[1] is not None]
    if late:  # a second axis only when there is lateness to draw
        late_axis = generator.twinx()
        late_axis.plot([p[0] for p in late], [p[1] for p in late], marker="s", color="tab:gray",
                       label="lateness p99 (ms)")  # fmt: skip
        late_axis.set_ylabel("generator lateness p99 (ms)")
        late_axis.legend(loc="upper right", fontsize="small")
    for row in steps:
        generator.annotate(f"{row['requests']:,}", (row["offered_rps"], 0), textcoords="offset points",
                           xytext=(0, 4), ha="center", fontsize="x-small")  # fmt: skip
    generator.set_ylim(bottom=0)
    generator.text(0.01, 0.98, "numbers: calls measured per step", transform=generator.transAxes, va="top",
                   fontsize="x-small")  # fmt: skip
    axes = [by_offered, by_achieved, throughput, generator]
    if had_errors:
        errors = panels[2]
        errors.plot(offered, [100 * (row["error_rate"] or 0.0) for row in steps], marker="o", color="tab:purple",
                    label="all errors")  # fmt: skip
        errors.plot(offered, [100 * (row.get("server_error_rate_5xx") or 0.0) for row in steps], marker=".",
                    color="tab:red", label="5XX")  # fmt: skip
        errors.axhline(100 * slo["max_error_rate"], color="black", linestyle="--", label="error bound")
        errors.set(xlabel="offered requests/s", ylabel="share of attempts (%)", title="Errors")
        axes.append(errors)
        panels[5].axis("off")
    for ax in axes:
        ax.legend(loc="best", fontsize="small")
        if ax not in (by_offered, by_achieved):
            ax.grid(True, alpha=0.3)
    run = report.get("run_id") or report["endpoint"].get("name", "?")
    when = report.get("started_at", "")
    figure.suptitle(f"{verdict_in_words(report)}\n{run} {when}".strip(), fontsize="medium")
    figure.tight_layout()
    return figure


def plot_report(report: Mapping[str, Any], path: Path) -> None:
    """The figure (``build_figure``) as a PNG."""
    figure = build_figure(report)  # selects the Agg backend before pyplot is imported here
    from matplotlib import pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)
