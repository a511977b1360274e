"""Rows in, one checked prediction per row out, through any client with SageMaker Runtime's invoke_endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .codecs import codec_for
from .schema import ModelSchema, Prediction


def predict(
    client: Any, endpoint_name: str, rows: Sequence[Sequence[float]], schema: ModelSchema, profile: str = "cpu"
) -> list[Prediction]:
    """One checked prediction per row from the endpoint (a float, or a tuple of class probabilities):
    as many requests as the profile needs, in order."""
    codec = codec_for(profile)
    schema.check_rows(rows)
    predictions: list[Prediction] = []
    for start in range(0, len(rows), codec.max_rows_per_request):
        chunk = rows[start : start + codec.max_rows_per_request]
        response = client.invoke_endpoint(
            EndpointName=endpoint_name, ContentType=codec.content_type, Accept=codec.accept, Body=codec.encode(chunk)
        )
        predictions += codec.decode(response["Body"].read(), len(chunk), schema)
    return predictions
