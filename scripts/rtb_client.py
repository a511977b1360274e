"""The kit's client for the traffic-filter endpoint: rows in, one probability per row out, for every profile.

Ad servers should keep one client per process: it pools and keeps alive its HTTPS connections to the
runtime VPC endpoint, and its timeouts and retries are sized for a 20 ms budget, not the SDK's 60 s.

Each serving profile's container takes its own request format (tests/fixtures/client/README.md names the
sources): ``cpu``, the built-in XGBoost container, text/csv; ``gpu``, Triton Inference Server with the FIL
backend, the KServe v2 JSON protocol; ``inferentia``, the Neo PyTorch container, a JSON array per row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

FEATURES = ("dow", "hour", "IndexAdvertiserID", "IndexDomain", "IndexRegionID", "IndexCityID", "device_type_id")
CONTENT_TYPE = "text/csv"
PROFILES = ("cpu", "gpu", "inferentia")
# The names in the gpu profile's Triton model configuration (config.pbtxt).
TRITON_INPUT = "input__0"
TRITON_OUTPUT = "output__0"


class RequestError(ValueError):
    """A row the model cannot score correctly, or an answer that does not fit the request; the message says which."""


@dataclass(frozen=True)
class Codec:
    """How one profile's container takes rows and answers: headers, rows per request, body in and out."""

    profile: str
    content_type: str
    accept: str
    # Triton refuses a batch over the model's max_batch_size; the Neo model is compiled for one row.
    max_rows_per_request: int
    encode: Callable[[Sequence[Sequence[float]]], bytes]
    decode: Callable[[bytes, int], list[float]]


def runtime_client(
    session: boto3.Session | None = None,
    *,
    region: str | None = None,
    pool_size: int = 64,
    connect_timeout: float = 0.5,
    read_timeout: float = 1.0,
    max_attempts: int = 2,
) -> Any:
    """A SageMaker Runtime client with a sized connection pool, tight timeouts and bounded retries."""
    config = Config(
        max_pool_connections=pool_size,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
    )
    return (session or boto3.Session()).client("sagemaker-runtime", region_name=region, config=config)


def check_rows(rows: Sequence[Sequence[float]]) -> None:
    """Exactly 7 finite numbers per row. XGBoost scores a short row as if values were missing, so the
    count is checked here rather than trusted to the container."""
    if not rows:
        raise RequestError("no rows to score")
    for index, row in enumerate(rows):
        if len(row) != len(FEATURES):
            raise RequestError(
                f"row {index} has {len(row)} values; the model takes {len(FEATURES)}: {', '.join(FEATURES)}"
            )
        for value in row:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise RequestError(f"row {index} has {value!r}; allowed: finite numbers")


def _csv(rows: Sequence[Sequence[float]]) -> bytes:
    return ("".join(",".join(format(float(value), "g") for value in row) + "\n" for row in rows)).encode()


def encode_rows(rows: Sequence[Sequence[float]]) -> bytes:
    """The cpu profile's request: one CSV line per row, no header; rows checked first."""
    check_rows(rows)
    return _csv(rows)


def decode_predictions(body: bytes, expected: int) -> list[float]:
    """The XGBoost container answers one probability per row, separated by commas or newlines."""
    text = body.decode(errors="replace").strip()
    try:
        values = [float(part) for part in text.replace("\n", ",").split(",") if part.strip()]
    except ValueError:
        raise RequestError(f"expected {expected} comma- or newline-separated predictions, got {text[:80]!r}") from None
    if len(values) != expected:
        raise RequestError(f"expected {expected} predictions, got {len(values)}: {text[:80]!r}")
    return values


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        raise RequestError(f"the answer is not JSON: {body[:80]!r}") from None


def _numbers(values: Any, what: str) -> list[float]:
    """A JSON array of numbers, nested to any depth, flattened in row-major order."""
    if isinstance(values, list):
        return [number for value in values for number in _numbers(value, what)]
    if isinstance(values, bool) or not isinstance(values, int | float) or not math.isfinite(values):
        raise RequestError(f"{what} holds {values!r}, not a number")
    return [float(values)]


def _triton_request(rows: Sequence[Sequence[float]]) -> bytes:
    # KServe v2 tensor data may be flat or nested; flat, row-major, is what Triton's own client sends.
    tensor = {
        "name": TRITON_INPUT,
        "shape": [len(rows), len(FEATURES)],
        "datatype": "FP32",
        "data": [float(value) for row in rows for value in row],
    }
    return json.dumps({"inputs": [tensor], "outputs": [{"name": TRITON_OUTPUT}]}).encode()


def _triton_probabilities(body: bytes, expected: int) -> list[float]:
    """P(class 1), the second column of the FIL backend's per-class probabilities of shape [rows, 2]."""
    answer = _json(body)
    if not isinstance(answer, dict):
        raise RequestError(f"expected a KServe v2 inference response object, got {str(answer)[:80]}")
    if "error" in answer:
        raise RequestError(f"Triton answered an error: {str(answer['error'])[:200]}")
    outputs = answer.get("outputs")
    found = [out for out in outputs if isinstance(out, dict)] if isinstance(outputs, list) else []
    tensor = next((out for out in found if out.get("name") == TRITON_OUTPUT), None)
    if tensor is None:
        raise RequestError(f"the answer has no output {TRITON_OUTPUT}; outputs: {[out.get('name') for out in found]}")
    if tensor.get("shape") != [expected, 2]:
        raise RequestError(f"{TRITON_OUTPUT} has shape {tensor.get('shape')}; expected [{expected}, 2]")
    values = _numbers(tensor.get("data"), TRITON_OUTPUT)
    if len(values) != 2 * expected:
        raise RequestError(f"{TRITON_OUTPUT} of shape [{expected}, 2] holds {len(values)} values")
    return values[1::2]


def _neo_request(rows: Sequence[Sequence[float]]) -> bytes:
    return json.dumps([[float(value) for value in row] for row in rows]).encode()


def _neo_probabilities(body: bytes, expected: int) -> list[float]:
    """The model's output tensor as a JSON array: [p] or [[p]] for one row."""
    answer = _json(body)
    if not isinstance(answer, list):
        raise RequestError(f"expected a JSON array of probabilities, got {str(answer)[:80]}")
    values = _numbers(answer, "the answer")
    if len(values) != expected:
        raise RequestError(f"expected {expected} predictions, got {len(values)}: {str(answer)[:80]}")
    return values


_CODECS = {
    # 10,000 CSV rows stay far below the 6 MB request limit.
    "cpu": Codec("cpu", CONTENT_TYPE, CONTENT_TYPE, 10_000, _csv, decode_predictions),
    # At most the Triton model configuration's max_batch_size (4096, scripts/build_triton_artifact.py).
    "gpu": Codec("gpu", "application/json", "application/json", 1_000, _triton_request, _triton_probabilities),
    # Compiled for an input of shape [1, 7].
    "inferentia": Codec("inferentia", "application/json", "application/json", 1, _neo_request, _neo_probabilities),
}


def codec_for(profile: str) -> Codec:
    """The request and answer format of a serving profile."""
    try:
        return _CODECS[profile]
    except KeyError:
        raise ValueError(f"profile={profile!r} is invalid: allowed: one of {list(PROFILES)}") from None


def predict(client: Any, endpoint_name: str, rows: Sequence[Sequence[float]], *, profile: str = "cpu") -> list[float]:
    """Probabilities, one per row, from the endpoint: as many requests as the profile needs, in order."""
    codec = codec_for(profile)
    check_rows(rows)
    probabilities: list[float] = []
    for start in range(0, len(rows), codec.max_rows_per_request):
        chunk = rows[start : start + codec.max_rows_per_request]
        response = client.invoke_endpoint(
            EndpointName=endpoint_name, ContentType=codec.content_type, Accept=codec.accept, Body=codec.encode(chunk)
        )
        probabilities += codec.decode(response["Body"].read(), len(chunk))
    return probabilities


def stack_output(cloudformation: Any, stack_name: str, key: str) -> str:
    """One output of a deployed stack, e.g. EndpointName."""
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise LookupError(f"stack {stack_name} has no output {key}")
