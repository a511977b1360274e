"""The model's line of the latency budget, measured on your own packaged model (docs/load-testing.md).

    python scripts/bench_model.py [--artifact DIR/model.tar.gz] [--calls N] [--slo-ms MS]
    make bench-model ARGS="--artifact model_artifacts/custom/model.tar.gz"

Times what the built-in XGBoost container does per single-row request, in one thread: parse the CSV row,
build a DMatrix, predict; and predict alone. The rows are the manifest's own reference rows (drawn at the
model's split thresholds), so the width, the trees and the objective are the model's, not the sample's.
Prints medians and p99s in milliseconds and what the SLO leaves for the rest of the path. A figure of this
machine, not of the endpoint's instance: quote it with its date and machine.
A run can take minutes on a busy machine: what it times, and each quarter of the calls done, go to stderr
(stdout holds the figures alone). Bad input: one line on stderr and exit 2.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import OneLineParser, UsageError, positive_int  # noqa: E402
from modelpack.model_source import SourceError, read_source  # noqa: E402
from operations.invoke import percentile  # noqa: E402  (nearest rank: an observed value)

PROG = "bench_model"
DEFAULT_ARTIFACT = REPO_ROOT / "model_artifacts" / "model.tar.gz"
PROGRESS_PARTS = 4  # a progress line per quarter of the calls


def checkpoints(calls: int, parts: int = PROGRESS_PARTS) -> set[int]:
    """The call counts after which a progress line is due: each ``parts``-th of ``calls``, and the last."""
    return {calls * part // parts for part in range(1, parts + 1)} - {0}


def time_calls(
    booster: xgb.Booster, payloads: list[bytes], calls: int, *, progress: Callable[[int], None] | None = None
) -> tuple[list[float], list[float]]:
    """Milliseconds per call: (parse + DMatrix + predict, predict alone), cycling through ``payloads``;
    ``progress(done)`` after each quarter of the calls, outside the timed part."""
    due = checkpoints(calls) if progress else set()
    whole: list[float] = []
    predict_only: list[float] = []
    for index in range(calls):
        body = payloads[index % len(payloads)]
        start = time.perf_counter()
        row = np.array([[float(value) for value in body.decode().split(",")]], dtype=np.float32)
        matrix = xgb.DMatrix(row)
        middle = time.perf_counter()
        booster.predict(matrix)
        end = time.perf_counter()
        whole.append((end - start) * 1000)
        predict_only.append((end - middle) * 1000)
        if progress and index + 1 in due:
            progress(index + 1)
    return whole, predict_only


def say(message: str) -> None:
    """A progress line: stderr, so stdout holds only the figures to quote."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def report(
    manifest: dict[str, Any], booster: xgb.Booster, whole: list[float], predict: list[float], slo_ms: float
) -> list[str]:
    """The printed lines: the model, the two timings and what the SLO leaves."""
    p99 = percentile(whole, 99)
    whole_ms = f"median {statistics.median(whole):.3f} ms, p99 {p99:.3f} ms ({len(whole)} calls)"
    return [
        f"model: {len(manifest['features'])} features, {manifest['objective']}, "
        f"{booster.num_boosted_rounds()} boosting rounds, xgboost {xgb.__version__}",
        f"predict:                       median {statistics.median(predict):.3f} ms, "
        f"p99 {percentile(predict, 99):.3f} ms",
        f"CSV parse + DMatrix + predict: {whole_ms}",
        f"left of the {slo_ms:g} ms SLO for the client, network, SageMaker overhead, queueing: {slo_ms - p99:.2f} ms",
    ]


def shown(path: Path) -> str:
    """``path`` as the reader would type it: relative to the working folder when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(Path.cwd()) else str(path)


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--artifact", type=Path, default=DEFAULT_ARTIFACT, help="a cpu archive with its manifest (default: %(default)s)"
    )
    parser.add_argument("--calls", type=positive_int, default=20000, help="single-row calls to time (default 20000)")
    parser.add_argument("--slo-ms", type=float, default=20.0, help="the end-to-end p99 SLO (default 20)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if not args.slo_ms > 0:
            raise UsageError(f"--slo-ms {args.slo_ms:g} is invalid; allowed: a positive number of milliseconds")
        model_bytes, manifest = read_source(args.artifact)
    except (UsageError, SourceError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    booster = xgb.Booster(params={"nthread": 1})
    booster.load_model(bytearray(model_bytes))
    payloads = [",".join(repr(float(value)) for value in row).encode() for row in manifest["reference"]["rows"]]
    say(
        f"{shown(args.artifact)}: timing {args.calls} single-row calls on 1 thread over its {len(payloads)} "
        "reference rows (CSV parse + DMatrix + predict, and predict alone)"
    )
    whole, predict = time_calls(
        booster, payloads, args.calls, progress=lambda done: say(f"{done} of {args.calls} calls timed")
    )
    print("\n".join(report(manifest, booster, whole, predict, args.slo_ms)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
