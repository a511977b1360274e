"""The client-path probe: what an ad server in one AZ sees when it calls the endpoint (stacks/client_probe.py).

Every run sends a burst of real InvokeEndpoint calls on one kept-alive HTTPS connection, as a pooled client
does, to the name an ad server in this AZ connects to: the runtime interface endpoint's zonal DNS name for
``PROBE_AZ``, chosen from ``ZONAL_DNS_NAMES`` by the client package's ``runtime_endpoint_url`` (TLS verified for
that name). It prints one CloudWatch embedded metric format line: the round trips, the errors, and whether every
address it connected to is this AZ's interface (inside this AZ's subnet, ``ZONAL_CIDR``). The verdict judges
the connected peer, not the DNS answer: the regional private DNS name answers with every AZ's interface by
design, and what matters is where the connection went. Standard library, botocore (in the Lambda runtime) and
the kit's client module for the endpoint's name and the profile's request and answer formats.

Endpoint failures are counted, never raised: the metrics are the signal, and the missing-data alarm covers
a run that published nothing. A misconfigured function (bad environment) raises.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import rtb_client
from rtb_client import OUTPUT_KINDS, PROFILES, ModelSchema, RequestError, codec_for

MAX_BURST = 100
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 2.0
# Calls are not started this close to Lambda's cut-off: a run that is cut off publishes nothing at all.
RESERVE_SECONDS = 5.0
MAX_REPORTED_ERRORS = 5

Resolver = Callable[[str], set[str]]
# (url, headers, body) -> the headers to send, signed.
Signer = Callable[[str, dict[str, str], bytes], dict[str, str]]
Connector = Callable[["ProbeConfig"], http.client.HTTPConnection]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProbeConfig:
    """The function's environment, checked."""

    endpoint_name: str
    region: str
    profile: str
    az: str
    zonal_cidr: Network
    row: tuple[float, ...]
    schema: ModelSchema
    burst_size: int
    latency_slo_ms: float
    namespace: str
    endpoint_url: str
    # Why the probe is not on its AZ's zonal name (None when it is): reported with every run's errors.
    fallback: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint_url).hostname or ""

    @property
    def path(self) -> str:
        return f"/endpoints/{self.endpoint_name}/invocations"


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ValueError(f"{name} is not set; allowed: a non-empty value")
    return value


def _whole(environ: Mapping[str, str], name: str, low: int, high: int) -> int:
    text = _required(environ, name)
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name}={text!r} is invalid; allowed: a whole number from {low} to {high}")
    return int(text)


def load_config(environ: Mapping[str, str]) -> ProbeConfig:
    """The probe's settings from its environment; ValueError with one line naming the variable otherwise."""
    region = _required(environ, "AWS_REGION")
    profile = _required(environ, "PROFILE")
    if profile not in PROFILES:
        raise ValueError(f"PROFILE={profile!r} is invalid; allowed: one of {list(PROFILES)}")
    cidr_text = _required(environ, "ZONAL_CIDR")
    try:
        zonal_cidr = ipaddress.ip_network(cidr_text)
    except ValueError:
        raise ValueError(f"ZONAL_CIDR={cidr_text!r} is invalid; allowed: a network such as 10.43.0.0/18") from None
    sample = _required(environ, "SAMPLE_ROW")
    try:
        row = tuple(float(value) for value in sample.split(","))
    except ValueError:
        raise ValueError(f"SAMPLE_ROW={sample[:60]!r} is invalid; allowed: comma-separated numbers") from None
    kind = _required(environ, "OUTPUT_KIND")
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"OUTPUT_KIND={kind!r} is invalid; allowed: one of {list(OUTPUT_KINDS)}")
    columns = _whole(environ, "OUTPUT_COLUMNS", 1, 10_000)
    try:
        schema = ModelSchema(tuple(f"f{index}" for index in range(len(row))), kind, columns)
        schema.check_rows([row])
    except (ValueError, RequestError) as error:
        raise ValueError(f"SAMPLE_ROW or OUTPUT_COLUMNS is invalid: {error}") from None
    slo_text = _required(environ, "LATENCY_SLO_MS")
    try:
        slo_ms = float(slo_text)
    except ValueError:
        slo_ms = math.nan
    if not (math.isfinite(slo_ms) and slo_ms > 0):
        raise ValueError(f"LATENCY_SLO_MS={slo_text!r} is invalid; allowed: a positive number of milliseconds")
    az = _required(environ, "PROBE_AZ")
    fallback = None
    endpoint_url = environ.get("PROBE_ENDPOINT_URL")  # a local endpoint in the tests
    if not endpoint_url:
        names = _required(environ, "ZONAL_DNS_NAMES")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                # The ad servers' own choice of name (the client package), with the AZ given, never discovered.
                endpoint_url = rtb_client.runtime_endpoint_url(region, names, az=az, discover=False)
            except ValueError as error:
                raise ValueError(f"ZONAL_DNS_NAMES={names[:120]!r} is invalid: {error}") from None
        fallback = "; ".join(" ".join(str(warning.message).split()) for warning in caught) or None
    if urlsplit(endpoint_url).scheme not in ("http", "https") or not urlsplit(endpoint_url).hostname:
        raise ValueError(f"PROBE_ENDPOINT_URL={endpoint_url!r} is invalid; allowed: an http(s) URL")
    return ProbeConfig(
        endpoint_name=_required(environ, "ENDPOINT_NAME"),
        region=region,
        profile=profile,
        az=az,
        zonal_cidr=zonal_cidr,
        row=row,
        schema=schema,
        burst_size=_whole(environ, "BURST_SIZE", 1, MAX_BURST),
        latency_slo_ms=slo_ms,
        namespace=_required(environ, "METRIC_NAMESPACE"),
        endpoint_url=endpoint_url,
        fallback=fallback,
    )


def resolve(host: str) -> set[str]:
    """The addresses the resolver answers for ``host`` (the VPC resolver inside the VPC): for diagnosis only."""
    return {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}


def sigv4_signer(region: str) -> Signer:
    """SigV4 for SageMaker Runtime with the function's own credentials (the caller policy's role)."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise ValueError("no AWS credentials in the function's environment")
    auth = SigV4Auth(credentials, "sagemaker", region)

    def sign(url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        auth.add_auth(request)
        return dict(request.headers.items())

    return sign


def connect(config: ProbeConfig) -> http.client.HTTPConnection:
    """One connection, opened (TCP and TLS) before any call is timed: a pooled client's calls pay neither."""
    parts = urlsplit(config.endpoint_url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=CONNECT_TIMEOUT_SECONDS)
    connection.connect()
    if connection.sock is not None:
        connection.sock.settimeout(READ_TIMEOUT_SECONDS)
    return connection


def zonal_check(peers: list[str], zonal_cidr: Network) -> bool | None:
    """True when every address the probe connected to lies in this AZ's subnet (its interface's); None when
    there is nothing to judge (no connection: the errors say why). The DNS answer is not judged: where the
    connection went is what the ad servers pay for in latency and cross-AZ traffic."""
    if not peers:
        return None

    def inside(address: str) -> bool:
        try:
            return ipaddress.ip_address(address) in zonal_cidr
        except ValueError:
            return False

    return all(inside(address) for address in peers)


def nearest_rank(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (an observed value); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def emf_record(
    config: ProbeConfig,
    *,
    timestamp_ms: int,
    samples_ms: list[float],
    failed_calls: int,
    errors: list[str],
    dns_answer: set[str],
    peers: list[str],
) -> dict[str, Any]:
    """One embedded-metric-format record. ClientRoundTrip holds every sample (CloudWatch takes an array and
    computes percentiles over the period); without samples it is left out, never sent empty, and so is
    CrossAzAnswers when there was nothing to judge."""
    same_az = zonal_check(peers, config.zonal_cidr)
    metrics = [{"Name": "ClientRoundTrip", "Unit": "Milliseconds"}] if samples_ms else []
    metrics += [{"Name": "ProbeRequests", "Unit": "Count"}, {"Name": "ProbeErrors", "Unit": "Count"}]
    if same_az is not None:
        metrics.append({"Name": "CrossAzAnswers", "Unit": "Count"})
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": config.namespace,
                    "Dimensions": [["EndpointName", "AvailabilityZone"]],
                    "Metrics": metrics,
                }
            ],
        },
        "EndpointName": config.endpoint_name,
        "AvailabilityZone": config.az,
        "ProbeRequests": config.burst_size,
        "ProbeErrors": failed_calls,
        "p50_ms": _rounded(nearest_rank(samples_ms, 0.50)),
        "p99_ms": _rounded(nearest_rank(samples_ms, 0.99)),
        "latency_slo_ms": config.latency_slo_ms,
        "endpoint_url": config.endpoint_url,
        "dns_answer": sorted(dns_answer),
        "zonal_cidr": str(config.zonal_cidr),
        "connected": peers[0] if peers else None,
        "peers": sorted(set(peers)),
        "errors": errors[:MAX_REPORTED_ERRORS],
    }
    if samples_ms:
        record["ClientRoundTrip"] = [round(value, 3) for value in samples_ms]
    if same_az is not None:
        record["CrossAzAnswers"] = 0 if same_az else 1
    return record


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:200]


def run(
    config: ProbeConfig,
    *,
    resolver: Resolver | None = None,
    signer: Signer | None = None,
    connector: Connector = connect,
    clock: Callable[[], float] = time.perf_counter,
    wall_clock: Callable[[], float] = time.time,
    seconds_left: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """One run: resolve, connect, send the burst, check each answer; the EMF record. ``seconds_left`` (the
    Lambda context's remaining time) stops the burst in time to publish; calls not sent count as failed."""
    sign = signer or sigv4_signer(config.region)
    codec = codec_for(config.profile)
    body = codec.encode([config.row])
    url = config.endpoint_url.rstrip("/") + config.path
    errors: list[str] = [config.fallback] if config.fallback else []
    try:
        dns_answer = (resolver or resolve)(config.host)
    except OSError as error:
        dns_answer = set()
        errors.append(f"resolving {config.host}: {_one_line(error)}")
    samples: list[float] = []
    peers: list[str] = []
    failed_calls = 0
    connection: http.client.HTTPConnection | None = None
    for sent in range(config.burst_size):
        if seconds_left is not None and seconds_left() < RESERVE_SECONDS:
            failed_calls += config.burst_size - sent
            errors.append(f"stopped before Lambda's timeout: {config.burst_size - sent} calls not sent")
            break
        try:
            if connection is None:
                connection = connector(config)
                if connection.sock is not None:
                    peers.append(str(connection.sock.getpeername()[0]))
            headers = {"Host": config.host, "Content-Type": codec.content_type, "Accept": codec.accept}
            signed = sign(url, headers, body)
            start = clock()
            connection.request("POST", config.path, body=body, headers=signed)
            response = connection.getresponse()
            answer = response.read()
            elapsed_ms = (clock() - start) * 1000
            if response.status != 200:
                raise RequestError(f"HTTP {response.status}: {answer[:80]!r}")
            codec.decode(answer, 1, config.schema)
            samples.append(elapsed_ms)
        except (OSError, http.client.HTTPException) as error:
            failed_calls += 1
            errors.append(_one_line(error))
            if connection is not None:
                connection.close()
            connection = None  # the next call reconnects, and its address is checked too
        except ValueError as error:  # RequestError included: a non-200 or an answer the client refuses
            failed_calls += 1
            errors.append(_one_line(error))
    if connection is not None:
        connection.close()
    return emf_record(
        config,
        timestamp_ms=int(wall_clock() * 1000),
        samples_ms=samples,
        failed_calls=failed_calls,  # a resolver error alone is reported in errors, not counted as a call
        errors=errors,
        dns_answer=dns_answer,
        peers=peers,
    )


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: one run, one EMF line on stdout (the function's log group)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds_left = (lambda: remaining() / 1000) if callable(remaining) else None
    record = run(load_config(os.environ), seconds_left=seconds_left)
    print(json.dumps(record, separators=(",", ":")), flush=True)
    return record
