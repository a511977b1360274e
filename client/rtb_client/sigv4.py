"""AWS Signature Version 4 for SageMaker Runtime's InvokeEndpoint, signing exactly what botocore's SigV4Auth signs.

AWS's document: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html (canonical request,
string to sign, the day's signing key, the Authorization header). The day's signing key, four HMACs deep, is
cached per (secret key, date, Region, service): a call then costs one SHA-256 of the body, one of the canonical
request and one HMAC. tests/test_client_sigv4.py proves the signatures equal botocore's on thousands of requests.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Mapping

ALGORITHM = "AWS4-HMAC-SHA256"
# SageMaker Runtime signs as "sagemaker" (its service model's signingName), not as its endpoint prefix.
SERVICE = "sagemaker"
# What the signer never signs (botocore's SIGNED_HEADERS_BLACKLIST): hop-by-hop headers and those a proxy or
# tracer may rewrite. The client sends none of them signed; a caller's header of these names stays unsigned.
UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def amz_date(epoch_seconds: float) -> str:
    """The X-Amz-Date of a moment: ISO 8601 basic format in UTC, e.g. 20261208T093000Z."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch_seconds))


@functools.lru_cache(maxsize=32)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"); ``date`` is
    YYYYMMDD. Cached: it changes only with the day, the keys, the Region or the service."""
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def invocations_path(endpoint_name: str) -> str:
    """InvokeEndpoint's request path, ``/endpoints/{EndpointName}/invocations``, the name percent-encoded as
    botocore's rest-json serializer encodes a URI label: every byte but A-Z a-z 0-9 - . _ ~ (so '/' is %2F)."""
    return f"/endpoints/{urllib.parse.quote(endpoint_name, safe='-._~')}/invocations"


@functools.lru_cache(maxsize=1024)
def canonical_path(path: str) -> str:
    """The canonical URI of a request path: dot segments and empty segments removed (RFC 3986 5.2.4, and AWS's
    "remove consecutive slashes"), then URI-encoded once more, as AWS asks of every service but S3: a name's
    %2F is signed as %252F. Only '/' and '~' stay as they are (botocore's choice of safe characters)."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    normalized = ("/" if path.startswith("/") else "") + "/".join(kept) + ("/" if path.endswith("/") and kept else "")
    return urllib.parse.quote(normalized or "/", safe="/~")


def host_header(scheme: str, hostname: str, port: int | None) -> str:
    """The Host value that is signed and sent: the name in lower case, an IPv6 address in brackets, the port only
    when it is not the scheme's default (as botocore derives it from the URL)."""
    host = hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return host


def _trimmed(value: str) -> str:
    # Trimall: no leading or trailing whitespace, and each run of spaces inside one space.
    return " ".join(value.split())


def sign(
    *,
    method: str,
    host: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    token: str | None,
    region: str,
    timestamp: str,
    service: str = SERVICE,
) -> dict[str, str]:
    """The headers to send, signed: Host, ``headers``, X-Amz-Date (``timestamp``, from ``amz_date``),
    X-Amz-Security-Token when there is a session token, and Authorization. ``path`` is the request path as sent
    (already percent-encoded); there is no query string. Every header is signed but the UNSIGNED_HEADERS."""
    signed = {"Host": host, **headers, "X-Amz-Date": timestamp}
    if token:
        signed["X-Amz-Security-Token"] = token
    names: dict[str, str] = {}
    for name, value in signed.items():
        lower = name.lower()
        if lower not in UNSIGNED_HEADERS:
            names[lower] = _trimmed(value) if lower not in names else f"{names[lower]},{_trimmed(value)}"
    ordered = sorted(names)
    signed_names = ";".join(ordered)
    canonical = "\n".join(
        (
            method.upper(),
            canonical_path(path),
            "",  # the canonical query string: InvokeEndpoint has none
            "".join(f"{name}:{names[name]}\n" for name in ordered),
            signed_names,
            hashlib.sha256(body).hexdigest(),
        )
    )
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    string_to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = signing_key(secret_key, timestamp[:8], region, service)
    signature = hmac.digest(key, string_to_sign.encode(), "sha256").hex()
    signed["Authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed_names}, Signature={signature}"
    )
    return signed
