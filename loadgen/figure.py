"""The load test's figure: latency by offered and achieved load, throughput, the generator's own state
(CPU, lateness, event-loop lag, the machine's CPU pressure and steal) and, when a step had any, errors;
titled with the verdict in words, which always keeps its MAX_RPS figure."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadgen.knee import verdict_in_words

# The title's font size (points) and the width of an average character in it, as a share of the size
# (DejaVu Sans, matplotlib's default, averages about 0.55 em; 0.6 leaves room for wide letters).
TITLE_POINTS = 10.0
CHAR_EM = 0.6


def _fitted(values: Sequence[float], pad: float = 0.08) -> tuple[float, float]:
    """Axis limits around the data (not from 0, which squashes a narrow range against the top), never
    narrower than a tenth of the largest value (a near-flat range would magnify noise)."""
    low, high = min(values), max(values)
    span = max(high - low, 0.1 * max(abs(high), 1.0))
    middle = (low + high) / 2
    low, high = min(low, middle - span / 2), max(high, middle + span / 2)
    return low - pad * span, high + pad * span


def title_lines(text: str, width_inches: float, points: float = TITLE_POINTS) -> list[str]:
    """``text`` wrapped to lines that fit ``width_inches`` at ``points``: long words are never cut and
    nothing is dropped, so the MAX_RPS figure at its start stays whole and on the first line."""
    chars = max(20, int(width_inches * 72 / (points * CHAR_EM)))
    lines: list[str] = []
    for paragraph in text.splitlines():
        lines += textwrap.wrap(paragraph, chars, break_long_words=False, break_on_hyphens=False) or [""]
    return lines


def _throughput(ax: Any, steps: Sequence[Mapping[str, Any]], report: Mapping[str, Any]) -> None:
    slo, result = report["slo"], report["result"]
    offered = [row["offered_rps"] for row in steps]
    achieved = [row["achieved_rps"] for row in steps]
    ratio = slo["min_achieved_ratio"]
    if len(steps) == 1:
        # One step has no curve to draw: its offered and achieved rates as bars with their values, on an
        # axis from 0, and the rate it had to reach.
        (row,) = steps
        bars = ax.bar(["offered", "achieved"], [row["offered_rps"], row["achieved_rps"]],
                      color=["tab:gray", "tab:blue"], width=0.5)  # fmt: skip
        ax.bar_label(bars, labels=[f"{row['offered_rps']:,.1f}", f"{row['achieved_rps']:,.1f}"], padding=3)
        ax.axhline(ratio * row["offered_rps"], color="grey", linestyle="--", linewidth=1,
                   label=f"{ratio:.0%} of offered")  # fmt: skip
        if result["max_rps"] is not None:
            ax.axhline(result["max_rps"], color="tab:blue", linestyle=":", label=f"MAX_RPS {result['max_rps']:.1f}")
        ax.set_ylim(0, 1.2 * max(row["offered_rps"], row["achieved_rps"], 1e-9))
        ax.set(ylabel="requests/s", title="Throughput")
    else:
        if result["max_rps"] is not None:
            ax.axhline(result["max_rps"], color="tab:blue", linestyle=":", label=f"MAX_RPS {result['max_rps']:.1f}")
        low, high = _fitted([*offered, *achieved])
        ax.plot([low, high], [low, high], color="grey", linewidth=1, label="achieved = offered")
        ax.plot([low, high], [low * ratio, high * ratio], color="grey", linestyle="--", linewidth=1,
                label=f"{ratio:.0%} of offered")  # fmt: skip
        ax.plot(offered, achieved, marker="o", color="tab:blue", label="achieved")
        knee_row = next((row for row in steps if row["step"] == result["knee_step"]), None)
        if knee_row is not None:
            ax.scatter([knee_row["offered_rps"]], [knee_row["achieved_rps"]], marker="*", s=250,
                       color="tab:blue", zorder=4)  # fmt: skip
        ax.set(xlim=(low, high), ylim=(low, high), xlabel="offered requests/s", ylabel="achieved requests/s",
               title="Throughput")  # fmt: skip
    rows = int(result.get("rows_per_request") or 1)
    if rows > 1:  # the same axis in rows: each request carries ``rows``
        ax.secondary_yaxis("right", functions=(lambda rps: rps * rows, lambda rate: rate / rows)).set_ylabel(
            f"rows/s ({rows} per request)"
        )


def _generator(ax: Any, steps: Sequence[Mapping[str, Any]], slo: Mapping[str, Any]) -> None:
    def series(key: str) -> list[tuple[float, float]]:
        return [(row["offered_rps"], row[key]) for row in steps if row.get(key) is not None]

    for key, label, color in (("client_cpu_percent", "generator CPU (%)", "tab:brown"),
                              ("cpu_pressure_percent", "machine CPU pressure (%)", "tab:pink"),
                              ("cpu_steal_percent", "machine CPU steal (%)", "tab:olive")):  # fmt: skip
        points = series(key)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=color, label=label)
    ax.axhline(slo["max_client_cpu_percent"], color="tab:brown", linestyle="--", linewidth=1, label="CPU bound")
    ax.set(xlabel="offered requests/s", ylabel="percent", title="Load generator")
    late, lag = series("generator_lateness_p99_ms"), series("loop_lag_p99_ms")
    if late or lag:  # a second axis only when there is something in ms to draw
        ms = ax.twinx()
        if late:
            ms.plot([p[0] for p in late], [p[1] for p in late], marker="s", color="tab:gray",
                    label="lateness p99 (ms)")  # fmt: skip
        if lag:
            ms.plot([p[0] for p in lag], [p[1] for p in lag], marker="^", color="tab:cyan",
                    label="event-loop lag p99 (ms)")  # fmt: skip
            share = slo.get("max_loop_lag_share")
            if share is not None:
                ms.axhline(share * slo["slo_p99_ms"], color="tab:cyan", linestyle="--", linewidth=1,
                           label="lag bound")  # fmt: skip
        ms.set_ylabel("generator delay p99 (ms)")
        ms.set_ylim(0, 1.25 * max(p[1] for p in (*late, *lag)) or 1.0)  # room for the legend above the points
        ms.legend(loc="upper right", fontsize="small")
    for row in steps:
        ax.annotate(f"{row['requests']:,}", (row["offered_rps"], 0), textcoords="offset points",
                    xytext=(0, 4), ha="center", fontsize="x-small")  # fmt: skip
    ax.set_ylim(bottom=0)
    ax.text(0.01, 0.98, "numbers: calls measured per step", transform=ax.transAxes, va="top", fontsize="x-small")


def build_figure(report: Mapping[str, Any]) -> Any:
    """The load test's figure: latency against offered and achieved RPS (SLO line, failed and MAX_RPS steps),
    throughput (axes fitted to the data; one step as bars), the generator's state and, only when a step had
    errors, the error rates. The title is the verdict in words, wrapped to the figure, with the run and date."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    # Refining steps come after the failing one: draw every curve in order of offered load.
    steps = sorted(report["steps"], key=lambda row: row["offered_rps"])
    slo, result = report["slo"], report["result"]
    offered = [row["offered_rps"] for row in steps]
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
    _throughput(throughput, steps, report)
    _generator(generator, steps, slo)
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
    lines = title_lines(f"{report.get('verdict') or verdict_in_words(report)}\n{run} {when}".strip(),
                        figure.get_size_inches()[0])  # fmt: skip
    figure.suptitle("\n".join(lines), fontsize=TITLE_POINTS)
    figure.tight_layout()  # leaves room above the panels for every line of the title
    return figure


def plot_report(report: Mapping[str, Any], path: Path) -> None:
    """The figure (``build_figure``) as a PNG."""
    figure = build_figure(report)  # selects the Agg backend before pyplot is imported here
    from matplotlib import pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)
