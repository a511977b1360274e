"""A load test's run and its report: the steps, then report.json, latency.png and the terminal summary (the
verdict, once); and the write-back of the report's MAX_RPS to the stage's measurements."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore

from loadgen import figure, knee
from loadgen.plan import REPO_ROOT, LoadTestError, Plan
from loadgen.runners import run_steps


def git_commit() -> str | None:
    """The commit the kit ran from (with "+dirty" for uncommitted changes); None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The run's closing lines: its verdict, once, then the autoscaling target that follows from MAX_RPS (per
    request, as SageMaker counts invocations) and the rows per second it carries."""
    result = report["result"]
    lines = [report["verdict"]]
    if result["max_rps"] is not None:
        instances = result["instances"]
        endpoint = f" ({result['max_rps']:.1f} RPS over the endpoint's {instances} instances)" if instances > 1 else ""
        lines.append(
            f"SageMakerVariantInvocationsPerInstance = {result['max_rps_per_instance']:.1f} x "
            f"{result['safety_factor']:g} x 60 = {result['invocations_per_instance_target']:.0f}{endpoint}"
        )
        rows = result.get("rows_per_request") or 1
        lines.append(
            f"MAX_RPS {result['max_rps']:.1f} requests/s x {rows} row{'s' if rows > 1 else ''} per request = "
            f"{result['max_rows_per_second']:.1f} rows/s"
        )
    return lines


def run(plan: Plan) -> dict[str, Any]:
    """The steps, then the report and the plot; returns the report."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    began = time.monotonic()
    search = plan.search
    measures = plan.parameters.get("generator_measures", {})
    print(
        f"load test of {plan.endpoint_name} ({plan.profile}) at {plan.endpoint_url or 'the regional runtime'}: "
        f"p99 <= {plan.criteria.slo_p99_ms:g} ms, errors <= {plan.criteria.max_error_rate:.1%}, achieved >= "
        f"{plan.criteria.min_achieved_ratio:.0%} of offered; steps of {plan.step_seconds} s (first "
        f"{plan.warmup_seconds:g} s not counted) from {search.start_rps:g} RPS by {search.step_rps:g} "
        f"(at most {len(search.coarse())}, then {search.refine} refining), {plan.arrivals} arrivals, "
        f"at most {plan.max_seconds:g} s; {plan.rows_per_request} row(s) per request; generator starvation from "
        f"its event-loop lag, CPU steal: {measures.get('cpu_steal', '?')}, CPU pressure: "
        f"{measures.get('cpu_pressure', '?')}",
        flush=True,
    )
    steps, ended_by, errors = run_steps(plan)
    found = knee.find_knee(steps, plan.criteria, ended_by=ended_by)
    import locust

    report = knee.build_report(
        steps=steps,
        knee=found,
        criteria=plan.criteria,
        instances=plan.instances,
        safety_factor=plan.safety_factor,
        endpoint={"name": plan.endpoint_name, "url": plan.endpoint_url, "stage": plan.stage, "profile": plan.profile},
        parameters=plan.parameters,
    )
    report |= {
        "run_id": plan.out_dir.name,
        "verdict": knee.verdict_in_words(report),
        "git_commit": git_commit(),
        "started_at": started_at,
        "duration_seconds": round(time.monotonic() - began, 1),
        "errors_seen": dict(errors.most_common(5)),
        "versions": {"locust": locust.__version__, "botocore": botocore.__version__},
    }
    knee.write_report(report, plan.out_dir / "report.json")
    figure.plot_report(report, plan.out_dir / "latency.png")
    for line in summary_lines(report):
        print(line)
    print(f"report: {plan.out_dir / 'report.json'}\nplot:   {plan.out_dir / 'latency.png'}")
    return report


def write_back(plan: Plan, report: dict[str, Any], *, path: Path | None = None) -> dict[str, Any]:
    """Record MAX_RPS per instance for the plan's stage (stacks/measurements.py validates and writes)."""
    from loadgen.write_back import record_max_rps

    result = report["result"]
    if plan.stage is None or plan.instance_type is None:
        raise LoadTestError("--write-back needs --stage")
    if result["max_rps_per_instance"] is None:
        raise LoadTestError("nothing to write back: no step met the criteria")
    source = (
        f"scripts/loadtest.py {report['started_at']}: endpoint {plan.endpoint_name}, MAX_RPS {result['max_rps']:.1f}"
        f" over {result['instances']} instance(s), p99 SLO {plan.criteria.slo_p99_ms:g} ms,"
        f" stopped: {result['stop_reason']}{' (lower bound)' if result['lower_bound'] else ''}"
    )
    return record_max_rps(
        plan.stage, float(result["max_rps_per_instance"]), instance_type=plan.instance_type, source=source, path=path,
        rows_per_request=plan.rows_per_request,
    )  # fmt: skip
