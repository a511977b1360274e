"""The kit's client for the traffic-filter endpoint: build the text/csv request, parse the reply.

Ad servers should keep one client per process: it pools and keeps alive its HTTPS connections to the
runtime VPC endpoint, and its timeouts and retries are sized for a 20 ms budget, not the SDK's 60 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config

FEATURES = ("dow", "hour", "IndexAdvertiserID", "IndexDomain", "IndexRegionID", "IndexCityID", "device_type_id")
CONTENT_TYPE = "text/csv"


class RequestError(ValueError):
    """A row the model cannot score correctly; the message says which and why."""


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


def encode_rows(rows: Sequence[Sequence[float]]) -> bytes:
    """One CSV line per row, no header. XGBoost scores a short row as if values were missing, so the
    count is checked here rather than trusted to the container."""
    if not rows:
        raise RequestError("no rows to score")
    lines = []
    for index, row in enumerate(rows):
        if len(row) != len(FEATURES):
            raise RequestError(
                f"row {index} has {len(row)} values; the model takes {len(FEATURES)}: {', '.join(FEATURES)}"
            )
        for value in row:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise RequestError(f"row {index} has {value!r}; allowed: finite numbers")
        lines.append(",".join(format(float(value), "g") for value in row))
    return ("\n".join(lines) + "\n").encode()


def decode_predictions(body: bytes, expected: int) -> list[float]:
    """The container answers one probability per row, separated by commas or newlines."""
    text = body.decode().strip()
    values = [float(part) for part in text.replace("\n", ",").split(",") if part.strip()]
    if len(values) != expected:
        raise RequestError(f"expected {expected} predictions, got {len(values)}: {text[:80]!r}")
    return values


def predict(client: Any, endpoint_name: str, rows: Sequence[Sequence[float]]) -> list[float]:
    """Probabilities, one per row, from the endpoint."""
    response = client.invoke_endpoint(
        EndpointName=endpoint_name, ContentType=CONTENT_TYPE, Accept=CONTENT_TYPE, Body=encode_rows(rows)
    )
    return decode_predictions(response["Body"].read(), len(rows))


def stack_output(cloudformation: Any, stack_name: str, key: str) -> str:
    """One output of a deployed stack, e.g. EndpointName."""
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise LookupError(f"stack {stack_name} has no output {key}")
