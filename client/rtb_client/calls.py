"""Rows in, one checked prediction per row out, through any client with SageMaker Runtime's invoke_endpoint."""

from __future__ import annotations

from typing import Any

from .codecs import codec_for
from .schema import ModelSchema, Prediction, Rows


def predict(client: Any, endpoint_name: str, rows: Rows, schema: ModelSchema, profile: str = "cpu") -> list[Prediction]:
    """One checked prediction per row from the endpoint (a float, or a tuple of class probabilities): as many
    requests as the profile needs, in order. Rows may be lists, tuples or a 2-D numpy array; a missing value is
    None or NaN where the profile scores it as XGBoost does (cpu, gpu), refused before any request elsewhere."""
    codec = codec_for(profile)
    checked = schema.checked_rows(rows, profile)
    predictions: list[Prediction] = []
    for start in range(0, len(checked), codec.max_rows_per_request):
        chunk = checked[start : start + codec.max_rows_per_request]
        response = client.invoke_endpoint(
            EndpointName=endpoint_name, ContentType=codec.content_type, Accept=codec.accept, Body=codec.encode(chunk)
        )
        predictions += codec.decode(response["Body"].read(), len(chunk), schema)
    return predictions
