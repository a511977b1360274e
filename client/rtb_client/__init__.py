"""The kit's client for the traffic-filter endpoint: rows in, one prediction per row out, for every profile.

Ad servers should keep one client per process: it pools and keeps alive its HTTPS connections to the
runtime VPC endpoint, and its timeouts and retries are sized for a 20 ms budget, not the SDK's 60 s. By default
``runtime_client`` gives the fast path (``FastRuntimeClient``: boto3's ``invoke_endpoint``, its answers and its
exceptions, for a fraction of its CPU); ``transport="boto3"`` gives boto3's own client.

Every shape comes from the model's manifest (``ModelSchema.from_manifest``): how many features a row has,
and what the model answers per row (a probability, a value, or ``columns`` class probabilities).
Each serving profile's container takes its own request format (tests/fixtures/client/README.md names the
sources): ``cpu``, the built-in XGBoost container, text/csv; ``gpu``, Triton Inference Server with the FIL
backend, the KServe v2 JSON protocol; ``inferentia``, the Neo PyTorch container, a JSON array per row.
Numbers are sent exactly (``repr(float(x))``, the shortest text that reads back as the same float) and
answers are checked strictly: a prediction that does not fit the schema is a RequestError, never a guess.

To stay in its Availability Zone, a client calls the runtime VPC endpoint's zonal DNS name for its own AZ
(``zonal_runtime_client``, or ``runtime_endpoint_url`` with ``runtime_client(endpoint_url=...)``): the default
private DNS name answers with every AZ's endpoint interface.
"""

from __future__ import annotations

from .batching import MAX_WAIT_US_LIMIT, MicroBatcher
from .calls import predict
from .codecs import (
    CONTENT_TYPE,
    TRITON_INPUT,
    TRITON_OUTPUT,
    Codec,
    codec_for,
    decode_predictions,
    encode_rows,
    number_text,
)
from .fast import ClientMeta, FastRuntimeClient
from .schema import (
    FLOAT32_MAX,
    MISSING_REFUSED,
    OBJECTIVE_KINDS,
    OUTPUT_KINDS,
    PROFILES,
    SUM_TOLERANCE,
    ArrayLike,
    ModelSchema,
    Prediction,
    RequestError,
    Row,
    Rows,
    check_rows,
    is_missing,
)
from .sdk import TRANSPORTS, runtime_client, stack_output
from .zonal import (
    DISCOVERY_TIMEOUT,
    ECS_METADATA_VARIABLE,
    IMDS_TOKEN_TTL_SECONDS,
    IMDS_URL,
    ZonalFallbackWarning,
    availability_zone,
    logger,
    regional_runtime_url,
    runtime_endpoint_url,
    zonal_runtime_client,
)

__all__ = [
    "CONTENT_TYPE",
    "DISCOVERY_TIMEOUT",
    "ECS_METADATA_VARIABLE",
    "FLOAT32_MAX",
    "IMDS_TOKEN_TTL_SECONDS",
    "IMDS_URL",
    "MAX_WAIT_US_LIMIT",
    "MISSING_REFUSED",
    "OBJECTIVE_KINDS",
    "OUTPUT_KINDS",
    "PROFILES",
    "SUM_TOLERANCE",
    "TRANSPORTS",
    "TRITON_INPUT",
    "TRITON_OUTPUT",
    "ArrayLike",
    "ClientMeta",
    "Codec",
    "FastRuntimeClient",
    "MicroBatcher",
    "ModelSchema",
    "Prediction",
    "RequestError",
    "Row",
    "Rows",
    "ZonalFallbackWarning",
    "availability_zone",
    "check_rows",
    "codec_for",
    "decode_predictions",
    "encode_rows",
    "is_missing",
    "logger",
    "number_text",
    "predict",
    "regional_runtime_url",
    "runtime_client",
    "runtime_endpoint_url",
    "stack_output",
    "zonal_runtime_client",
]
