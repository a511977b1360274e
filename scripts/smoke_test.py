"""After a deploy: invoke the stage's endpoint once with the sample row and check the model answers.

    python scripts/smoke_test.py --stage dev [--region us-east-1]          # the deployed endpoint (needs AWS)
    python scripts/smoke_test.py --stage dev --endpoint-url http://127.0.0.1:8080   # a local endpoint, e.g.
        python -m scripts.fake_endpoint --model model_artifacts/model.tar.gz --port 8080   (no AWS needed)

Passes only if the deployed endpoint returns the probability the packaged model gives the sample
row (model-manifest.json), so a wrong artifact or a container that misreads the model fails it too. The
request is in the stage's serving profile's format (cpu, gpu or inferentia: scripts/rtb_client.py).
With --endpoint-url the call goes to that URL; a loopback one needs no AWS configuration, and the
endpoint name is then --endpoint-name or fake-endpoint (else the stack's EndpointName output, read with
the AWS configuration). Exit 0 on success; otherwise one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from scripts.cli import aws_session, is_loopback_url, one_line, use_pinned_node  # noqa: E402

use_pinned_node()  # before the stages import the CDK
from scripts.invoke import EndpointSession  # noqa: E402
from scripts.rtb_client import predict, runtime_client, stack_output  # noqa: E402
from stacks.stages import load_stage  # noqa: E402

# The container answers in float32; the manifest records the same model's float32 output. FIL (gpu) also
# computes in float32. The inf1 compiler casts FP32 to BF16 by default (about 3 significant digits), and the
# inferentia profile serves a PyTorch translation of the model: it gets a looser bound.
TOLERANCE = {"cpu": 1e-6, "gpu": 1e-6, "inferentia": 1e-2}
# The gpu and inferentia artifacts are built from this model (scripts/build_triton_artifact.py and
# build_inf1_artifact.py), so their answers are held to its sample row and probability.
SOURCE_MANIFEST = REPO_ROOT / "model_artifacts" / "model-manifest.json"


def sample_and_expected(manifest_path: Path) -> tuple[list[float], float]:
    manifest = json.loads(manifest_path.read_text())
    if "sample_payload" not in manifest and manifest_path != SOURCE_MANIFEST:
        return sample_and_expected(SOURCE_MANIFEST)
    row = [float(value) for value in manifest["sample_payload"].split(",")]
    reference = manifest["reference"]
    expected = reference["predictions"][reference["rows"].index(row)]
    return row, float(expected)


def run(stage: str, session: Any, runtime: Any, endpoint_name: str | None = None) -> str:
    """Return a one-line success message; raise on any failure. The endpoint is ``endpoint_name``, else
    the stage stack's output (read through ``session``)."""
    settings = load_stage(stage)
    endpoint = endpoint_name or stack_output(session.client("cloudformation"), settings.stack_name, "EndpointName")
    row, expected = sample_and_expected(settings.artifact_path.with_name("model-manifest.json"))
    profile = settings.profile
    start = time.perf_counter()
    (probability,) = predict(runtime, endpoint, [row], profile=profile)
    elapsed_ms = (time.perf_counter() - start) * 1000
    if not 0.0 < probability < 1.0:
        raise AssertionError(f"{endpoint} returned {probability}, not a probability")
    if abs(probability - expected) > TOLERANCE[profile]:
        raise AssertionError(f"{endpoint} returned {probability}; the packaged model gives {expected}")
    took = f"{elapsed_ms:.1f} ms (client side, {profile} profile)"
    return f"ok: {endpoint} scored the sample row {probability:.6f} in {took}"


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
