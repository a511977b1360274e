"""Calls that stay in the client's Availability Zone: its AZ (ECS task metadata, EC2 instance metadata) and the
runtime interface endpoint's zonal DNS name for it, or the regional name with a warning."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import urllib.parse
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .sdk import runtime_client

if TYPE_CHECKING:
    import boto3

logger = logging.getLogger("rtb_client")  # the name the README documents, for every module of the package

# EC2's instance metadata service, IMDSv2: a PUT for a session token (TTL 1 s to 6 h), then GETs that carry it.
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
IMDS_URL = "http://169.254.169.254"
IMDS_TOKEN_TTL_SECONDS = 60
# ECS sets this variable in each container; `<its value>/task` answers the task's metadata as JSON.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4-response.html
ECS_METADATA_VARIABLE = "ECS_CONTAINER_METADATA_URI_V4"
# Each metadata request's connect and read timeout: both services are link-local and answer in milliseconds;
# where neither exists, discovery gives up within a fraction of a second per request.
DISCOVERY_TIMEOUT = 0.25

# An AZ name as IMDS and ECS print one: us-east-1a, cn-north-1b, us-west-2-lax-1a (a Local Zone).
_AZ = re.compile(r"[a-z]{2,4}(?:-[a-z0-9]+)+")
_REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-\d+")


class ZonalFallbackWarning(RuntimeWarning):
    """The client uses the regional runtime name, not its AZ's zonal one: some of its calls will cross AZs."""


def _fetch(method: str, url: str, headers: Mapping[str, str], timeout: float, limit: int) -> bytes | None:
    """The body of a 200 answer of at most ``limit`` bytes, else None. http.client, not urllib: a proxy named
    in the environment (HTTP_PROXY) must never be sent a link-local metadata request."""
    connection = None
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return None
        # The port always given: http.client would read "fd00:ec2::254" (IMDS over IPv6) as host:port.
        connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=dict(headers))
        response = connection.getresponse()
        body = response.read(limit + 1)
        return body if response.status == 200 and len(body) <= limit else None
    except (OSError, http.client.HTTPException, ValueError):  # refused, timed out, malformed, a bad port
        return None
    finally:
        if connection is not None:
            connection.close()


def _az(value: Any) -> str | None:
    text = value.decode(errors="replace").strip() if isinstance(value, bytes) else value
    return text if isinstance(text, str) and len(text) <= 64 and _AZ.fullmatch(text) else None


def _ecs_availability_zone(metadata_uri: str, timeout: float) -> str | None:
    # AvailabilityZone is in the answer for Fargate tasks only (platform 1.4+ on Linux, 1.0.0 on Windows): a
    # task on EC2 container instances gets None here and asks the instance (IMDS) instead.
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4-response.html
    body = _fetch("GET", metadata_uri.rstrip("/") + "/task", {}, timeout, 1 << 20)
    try:
        task = json.loads(body) if body is not None else None
    except ValueError:
        return None
    return _az(task.get("AvailabilityZone")) if isinstance(task, dict) else None


def _imds_availability_zone(imds_url: str, timeout: float) -> str | None:
    # IMDSv2 only: a GET without a token is refused on instances that require tokens. In a container the PUT's
    # answer takes one more hop: with the instance's hop limit at 1 it never arrives, the request times out and
    # this gives None ("In a container environment, consider ... increasing the hop limit to 2").
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
    base = imds_url.rstrip("/")
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": str(IMDS_TOKEN_TTL_SECONDS)}
    token = _fetch("PUT", f"{base}/latest/api/token", ttl, timeout, 4096)
    if not token:
        return None
    # placement/availability-zone: "The Availability Zone in which the instance launched."
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-categories.html
    answer = _fetch(
        "GET",
        f"{base}/latest/meta-data/placement/availability-zone",
        {"X-aws-ec2-metadata-token": token.decode(errors="replace").strip()},
        timeout,
        256,
    )
    return _az(answer) if answer is not None else None


def availability_zone(
    *,
    environ: Mapping[str, str] | None = None,
    imds_url: str = IMDS_URL,
    timeout: float = DISCOVERY_TIMEOUT,
) -> str | None:
    """This process's Availability Zone name (e.g. us-east-1a), or None if it cannot be found: from ECS task
    metadata v4 when ``ECS_CONTAINER_METADATA_URI_V4`` is set (Fargate), else (or if that has none) from EC2
    instance metadata (IMDSv2). ``timeout`` bounds each request; a failure gives None, never an exception."""
    environ = os.environ if environ is None else environ
    metadata_uri = environ.get(ECS_METADATA_VARIABLE)
    if metadata_uri:
        found = _ecs_availability_zone(metadata_uri, timeout)
        if found is not None:
            return found
    return _imds_availability_zone(imds_url, timeout)


def _domain(region: str) -> str:
    # China's partition ends in .amazonaws.com.cn, as botocore's own endpoint for a cn- Region does.
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def regional_runtime_url(region: str) -> str:
    """SageMaker Runtime's default name in ``region``, which the endpoint's private DNS resolves to its
    interfaces in every AZ: ``https://runtime.sagemaker.<region>.amazonaws.com`` (``.com.cn`` in China)."""
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ValueError(f"region={str(region)[:40]!r} is invalid: allowed: a Region name such as us-east-1")
    return f"https://runtime.sagemaker.{region}.{_domain(region)}"


def _zonal_dns_names(value: Mapping[str, str] | str, region: str) -> dict[str, str]:
    """{az: zonal name} from a mapping or the JSON text of the stack output, every entry checked."""
    parsed: Any = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ValueError(
                f"zonal_dns_names is not JSON: {value[:80]!r}; allowed: a JSON object of AZ to zonal DNS name "
                "(the stack output RuntimeZonalDnsNames)"
            ) from None
    if not isinstance(parsed, Mapping):
        raise ValueError(f"zonal_dns_names is {str(parsed)[:80]!r}; allowed: a mapping of AZ to zonal DNS name")
    domain = _domain(region)
    names = {}
    for az, name in parsed.items():
        if _az(az) != az:
            raise ValueError(f"zonal_dns_names has the key {str(az)[:40]!r}; allowed: AZ names such as {region}a")
        # A zonal name (PrivateLink guide, "DNS hostnames"): vpce-<id>-<suffix>-<az>.<service>.<region>.vpce.<domain>;
        # the endpoint's regional name lacks `-<az>`. SageMaker's guide calls the vpce names with
        # --endpoint-url https://..., so TLS (a certificate for the name) and SigV4 hold there.
        # https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html
        # https://docs.aws.amazon.com/sagemaker/latest/dg/interface-vpc-endpoint.html
        zonal = re.compile(
            rf"vpce-[0-9a-f]+-[0-9a-z]+-{re.escape(az)}\.runtime\.sagemaker\.{re.escape(region)}"
            rf"\.vpce\.{re.escape(domain)}"
        )
        if not isinstance(name, str) or not zonal.fullmatch(name):
            raise ValueError(
                f"zonal_dns_names[{az!r}] is {str(name)[:120]!r}; allowed: the runtime interface endpoint's zonal "
                f"DNS name for {az}, vpce-<id>-<suffix>-{az}.runtime.sagemaker.{region}.vpce.{domain}"
            )
        names[az] = name
    return names


def _endpoint_url(
    region: str, zonal_dns_names: Mapping[str, str] | str, az: str | None, discover: bool, stacklevel: int
) -> str:
    regional = regional_runtime_url(region)
    names = _zonal_dns_names(zonal_dns_names, region)
    if az is not None and _az(az) != az:
        raise ValueError(f"az={str(az)[:40]!r} is invalid: allowed: an AZ name such as {region}a, or None")
    if az is None and discover:
        az = availability_zone()
    if az is not None and az in names:
        return f"https://{names[az]}"
    if az is None:
        told = "not given, and neither ECS task metadata nor EC2 instance metadata told it" if discover else "not given"
        reason = f"this client's Availability Zone is unknown ({told})"
    else:
        reason = f"there is no zonal name for {az} (the names cover {', '.join(sorted(names)) or 'no AZ'})"
    # Private DNS: the default name "resolves to the private IP addresses of the endpoint network interfaces in
    # your VPC", one per AZ, so a connection lands on another AZ's interface about (N-1)/N of the time.
    # https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html
    n = str(len(names)) if len(names) > 1 else "N"
    message = (
        f"rtb_client: {reason}; using the regional name {regional}, whose private DNS answers with every AZ's "
        f"endpoint interface: about {n}-1 in {n} connections cross Availability Zones (more latency per call, "
        "cross-AZ data charges)"
    )
    warnings.warn(message, ZonalFallbackWarning, stacklevel=stacklevel)
    logger.warning(message)
    return regional


def runtime_endpoint_url(
    region: str, zonal_dns_names: Mapping[str, str] | str, *, az: str | None = None, discover: bool = True
) -> str:
    """``https://<zonal name of this AZ>`` from ``zonal_dns_names`` ({az: name}, or the JSON text of the stack
    output RuntimeZonalDnsNames). ``az`` unset: discovered (``availability_zone()``) unless ``discover`` is
    False. No name for the AZ: the regional name, with a ZonalFallbackWarning and a log record. A name that is
    not the runtime endpoint's zonal name for its AZ in ``region`` is a ValueError."""
    return _endpoint_url(region, zonal_dns_names, az, discover, stacklevel=3)


def zonal_runtime_client(
    region: str,
    zonal_dns_names: Mapping[str, str] | str,
    *,
    az: str | None = None,
    session: boto3.Session | None = None,
    **options: Any,
) -> Any:
    """``runtime_client`` on this AZ's zonal name (``runtime_endpoint_url``, which may warn and fall back to
    the regional one); ``options`` are runtime_client's (pool_size, timeouts, verify, ...)."""
    url = _endpoint_url(region, zonal_dns_names, az, True, stacklevel=3)
    return runtime_client(session, region=region, endpoint_url=url, **options)
