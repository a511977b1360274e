"""Benchmarks: synth time of the app against an empty CDK app (the jsii floor), and the test suite.

    python scripts/bench.py [--runs N] [--test-runs M] [--stage NAME]

Prints medians (and min/max) of wall-clock seconds; machines here are noisy, so compare ratios.
Each synth is a fresh process, as in `cdk synth`, with cdk.json's context passed the way the CLI does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import use_pinned_node  # noqa: E402

# One no-op resource (an empty stack fails template validation). The floor uses the app's own App
# settings; the CDK-defaults variant shows what the built-in template validation alone costs.
EMPTY_APP = (
    "from aws_cdk import App, CfnWaitConditionHandle, Stack\n"
    "app = App(builtin_cloud_formation_validation=False)\n"
    "CfnWaitConditionHandle(Stack(app, 'Empty'), 'Noop')\napp.synth()\n"
)
EMPTY_APP_CDK_DEFAULTS = EMPTY_APP.replace("builtin_cloud_formation_validation=False", "")


def _context(stage: str) -> str:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context.update(json.loads((REPO_ROOT / "cdk.context.json").read_text()))
    context["stage"] = stage
    return json.dumps(context)


def _time(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        # A failed run is no measurement: say what failed instead of a traceback of the runner.
        lines = (result.stdout + result.stderr).strip().splitlines()
        failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
        tail = "\n".join(failed or lines[-15:])
        raise SystemExit(f"{' '.join(command[:4])} ... failed (exit {result.returncode}):\n{tail}")
    return time.perf_counter() - start


def _synth_times(code: list[str], stage: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as outdir:
            env = os.environ | {"CDK_CONTEXT_JSON": _context(stage), "CDK_OUTDIR": outdir}
            times.append(_time([sys.executable, *code], env))
    return times


def _line(label: str, times: list[float]) -> str:
    spread = f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)})"
    return f"{label:<34} median {statistics.median(times):6.2f} s   {spread}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="synth runs per app (default 5)")
    parser.add_argument("--cli-runs", type=int, default=3, help="`cdk synth` runs per app (default 3; 0 skips)")
    parser.add_argument("--test-runs", type=int, default=3, help="test-suite runs (default 3; 0 skips)")
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)

    use_pinned_node()  # the synths below (and jsii in them) inherit it
    node_binary = os.environ.get("JSII_NODE", "node")
    node = subprocess.run([node_binary, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, Node {node}")
    # Interleave so that drift on a noisy machine hits both apps alike.
    empty: list[float] = []
    defaults: list[float] = []
    kit: list[float] = []
    for _ in range(args.runs):
        empty += _synth_times(["-c", EMPTY_APP], args.stage, 1)
        defaults += _synth_times(["-c", EMPTY_APP_CDK_DEFAULTS], args.stage, 1)
        kit += _synth_times(["app.py"], args.stage, 1)
    print(_line("synth: empty CDK app (jsii floor)", empty))
    print(_line("synth: empty app, CDK defaults", defaults))
    print(_line(f"synth: this app, stage {args.stage}", kit))
    ratio = statistics.median(kit) / statistics.median(empty)
    print(f"{'synth ratio (app / empty)':<34} {ratio:6.2f}x")
    if args.cli_runs:
        cdk = str(REPO_ROOT / "node_modules/.bin/cdk")
        quiet = ["synth", "--quiet", "--no-notices", "-c", f"stage={args.stage}"]
        empty_cli: list[float] = []
        kit_cli: list[float] = []
        for _ in range(args.cli_runs):
            with tempfile.TemporaryDirectory() as outdir:
                app = f'{sys.executable} -c "{EMPTY_APP}"'
                empty_cli.append(_time([cdk, *quiet, "--app", app, "--output", outdir], dict(os.environ)))
            with tempfile.TemporaryDirectory() as outdir:
                kit_cli.append(_time([cdk, *quiet, "--output", outdir], dict(os.environ)))
        print(_line("cdk synth: empty CDK app", empty_cli))
        print(_line(f"cdk synth: this app, stage {args.stage}", kit_cli))
        cli_ratio = statistics.median(kit_cli) / statistics.median(empty_cli)
        print(f"{'cdk synth ratio (app / empty)':<34} {cli_ratio:6.2f}x   (issue 22's goal: under 1.5x)")
    if args.test_runs:
        tests = [
            _time([sys.executable, "-m", "pytest", "-q", "-n", "auto", "-p", "no:cacheprovider"], dict(os.environ))
            for _ in range(args.test_runs)
        ]
        print(_line("test suite (make test: pytest -q -n auto)", tests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
