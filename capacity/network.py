"""What a peak rate asks of the network and of the clients: bytes per call on the wire, the interface endpoint's
bandwidth per Availability Zone against its documented limits, and the client CPU cores the calls take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# An interface VPC endpoint "can support a bandwidth of up to 10 Gbps per Availability Zone, and automatically
# scales up to 100 Gbps"; beyond that, AWS support. The page does not say whether the figure is per direction, so
# the plan adds requests and responses (the cautious reading).
# https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-limits-endpoints.html
ENDPOINT_GBPS_PER_AZ = 10.0
ENDPOINT_GBPS_PER_AZ_SCALED = 100.0

# The request line and headers of a SigV4-signed InvokeEndpoint call with temporary (role) credentials: botocore
# 1.44 renders 1,666 bytes with a 1,000-character session token (Authorization 231, User-Agent 134,
# X-Amz-Security-Token 1,000, ...; rendered offline on 2026-12-08, no call made), plus Host, TLS record framing
# and TCP/IP headers. Session tokens vary in length: give --request-bytes for yours.
REQUEST_OVERHEAD_BYTES = 1800
# SageMaker's answer: the status line and headers (x-amzn-RequestId, x-Amzn-Invoked-Production-Variant, Date,
# Content-Type, Content-Length), TLS and TCP/IP framing. An estimate: no real endpoint's answer was captured.
RESPONSE_OVERHEAD_BYTES = 400
# The XGBoost container answers text/csv with one probability per line, e.g. "0.652265191078186\n" (18 bytes; its
# serving code, GitHub aws/sagemaker-xgboost-container): 20 leaves room for longer floats.
RESPONSE_BYTES_PER_ROW = 20

# Client CPU per InvokeEndpoint call, in calls per client CPU-second. Neither is measured by this tool: the
# figures come from the kit's client measurements (docs/client-latency.md, 2026-12-07: a signer that caches the
# day's signing key over http.client 4,000-4,800, boto3 about 600, on a 2-core x86_64 machine over loopback
# without TLS). TLS to the real endpoint costs more: measure your own and pass --client-calls-per-core.
FAST_CLIENT_CALLS_PER_CORE = 4000.0
BOTO3_CALLS_PER_CORE = 600.0


@dataclass(frozen=True)
class WireSize:
    """Bytes one call puts on the wire each way."""

    request: int
    response: int

    @property
    def both(self) -> int:
        return self.request + self.response


def wire_size(
    sample_row: str,
    rows_per_request: int = 1,
    *,
    request_overhead: int = REQUEST_OVERHEAD_BYTES,
    response_overhead: int = RESPONSE_OVERHEAD_BYTES,
    response_per_row: int = RESPONSE_BYTES_PER_ROW,
) -> WireSize:
    """A text/csv call of ``rows_per_request`` rows like ``sample_row`` (one newline each) and its answer."""
    body = rows_per_request * (len(sample_row.encode()) + 1)
    return WireSize(request=request_overhead + body, response=response_overhead + rows_per_request * response_per_row)


def gbps(requests_per_second: float, bytes_per_call: int) -> float:
    """Gigabits per second for a request rate at a size per call."""
    return requests_per_second * bytes_per_call * 8 / 1e9


def bandwidth_verdict(per_az_gbps: float) -> str:
    """Where a per-AZ load sits against the interface endpoint's documented bandwidth."""
    if per_az_gbps <= ENDPOINT_GBPS_PER_AZ:
        return f"within the {ENDPOINT_GBPS_PER_AZ:g} Gbps per AZ an interface endpoint supports by default"
    if per_az_gbps <= ENDPOINT_GBPS_PER_AZ_SCALED:
        return (
            f"above the default {ENDPOINT_GBPS_PER_AZ:g} Gbps per AZ: relies on the endpoint's automatic scaling to "
            f"{ENDPOINT_GBPS_PER_AZ_SCALED:g} Gbps (how fast is not documented: tell AWS support before the peak)"
        )
    return (
        f"above the {ENDPOINT_GBPS_PER_AZ_SCALED:g} Gbps per AZ an interface endpoint scales to: spread the clients "
        "over more AZs, batch rows per request, or ask AWS support"
    )


def client_cores(requests_per_second: float, calls_per_core: float) -> int:
    """CPU cores the calls alone take at ``calls_per_core`` calls per CPU-second (the ad server's own work is
    extra)."""
    return math.ceil(requests_per_second / calls_per_core - 1e-9)
