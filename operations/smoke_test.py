"""After a deploy: invoke the stage's endpoint once with the sample row and check the model answers.

    python scripts/smoke_test.py --stage dev [--region us-east-1]          # the deployed endpoint (needs AWS)
    python scripts/smoke_test.py --stage dev --endpoint-url http://127.0.0.1:8080   # a local endpoint, e.g.
        python -m scripts.fake_endpoint --model model_artifacts/model.tar.gz --port 8080   (no AWS needed)

Passes only if the deployed endpoint returns what the packaged model gives the sample row: the stage's
artifact's manifest (model-manifest.json beside it) holds the row (``sample_payload``) and the model's
answer for it (``reference``), so a wrong artifact or a container that misreads the model fails it too.
The answer is read with the manifest's schema (a probability, a value, or class probabilities) in the
stage's serving profile's format (cpu, gpu or inferentia: client/rtb_client). A manifest without a
sample row or reference answers fails the test: rebuild the artifact.
With --endpoint-url the call goes to that URL; a loopback one needs no AWS configuration, and the
endpoint name is then --endpoint-name or fake-endpoint (else the stack's EndpointName output, read with
the AWS configuration). Exit 0 on success; otherwise one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import aws_session, is_loopback_url, one_line  # noqa: E402
from modelpack.model_manifest import sample, schema_of  # noqa: E402
from operations.invoke import EndpointSession  # noqa: E402
from rtb_client import Prediction, predict, runtime_client, stack_output  # noqa: E402
from stacks.stages import load_stage  # noqa: E402

# The container answers in float32; the manifest records the same model's float32 output. FIL (gpu) also
# computes in float32. The inf1 compiler casts FP32 to BF16 by default (about 3 significant digits), and the
# inferentia profile serves a PyTorch translation of the model: it gets a looser bound. The bound is
# absolute for answers up to 1 and relative beyond (float32 keeps about 7 significant digits of a value).
TOLERANCE = {"cpu": 1e-6, "gpu": 1e-6, "inferentia": 1e-2}


def _values(prediction: Prediction) -> tuple[float, ...]:
    return (prediction,) if isinstance(prediction, float) else prediction


def _shown(prediction: Prediction) -> str:
    return ", ".join(f"{value:.6f}" for value in _values(prediction))


def agrees(answer: Prediction, expected: Prediction, tolerance: float) -> bool:
    """Each value within ``tolerance`` of the expected one (times its size when that is over 1)."""
    got, want = _values(answer), _values(expected)
    return len(got) == len(want) and all(
        math.isfinite(a) and abs(a - e) <= tolerance * max(1.0, abs(e)) for a, e in zip(got, want, strict=True)
    )


def run(stage: str, session: Any, runtime: Any, endpoint_name: str | None = None) -> str:
    """Return a one-line success message; raise on any failure. The endpoint is ``endpoint_name``, else
    the stage stack's output (read through ``session``)."""
    settings = load_stage(stage)
    manifest, where = settings.artifact.manifest, f"{settings.artifact_file}'s manifest"
    schema = schema_of(manifest, where)
    row, expected = sample(manifest, where)
    endpoint = endpoint_name or stack_output(session.client("cloudformation"), settings.stack_name, "EndpointName")
    profile = settings.profile
    start = time.perf_counter()
    (answer,) = predict(runtime, endpoint, [row], schema, profile=profile)
    elapsed_ms = (time.perf_counter() - start) * 1000
    if not agrees(answer, expected, TOLERANCE[profile]):
        raise AssertionError(f"{endpoint} returned {answer!r}; the packaged model gives {expected!r}")
    took = f"{elapsed_ms:.1f} ms (client side, {profile} profile)"
    return f"ok: {endpoint} scored the sample row {_shown(answer)} in {took}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--region", default=None, help="default: the stage's region, else the AWS config")
    parser.add_argument("--endpoint-url", help="call this URL instead of the regional runtime, e.g. a local endpoint")
    parser.add_argument(
        "--endpoint-name",
        help="default: the stack's EndpointName output; with a loopback --endpoint-url, fake-endpoint",
    )
    args = parser.parse_args(argv)
    try:
        region = args.region or load_stage(args.stage).region
        session = aws_session(region)
        runtime_session: Any = session
        endpoint_name = args.endpoint_name
        if args.endpoint_url:
            runtime_session = EndpointSession(aws_session(region, args.endpoint_url), args.endpoint_url)
            if endpoint_name is None and is_loopback_url(args.endpoint_url):
                endpoint_name = "fake-endpoint"
        print(run(args.stage, session, runtime_client(runtime_session), endpoint_name))
    except Exception as error:  # one line for CI logs, whatever broke
        print(f"smoke test failed: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
