"""The runtime interface endpoint's DNS names, by Availability Zone (stacks/zonal_dns.py).

Private DNS answers ``runtime.sagemaker.<region>.amazonaws.com`` with every AZ's interface of the endpoint, so a
client on that name crosses AZs about (N-1)/N of the time. Each interface endpoint also has a zonal DNS name per
AZ, ``vpce-<id>-<suffix>-<az>.<service>.<region>.vpce.amazonaws.com``, which answers with that AZ's interface
only (PrivateLink guide, "DNS hostnames" of
https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html).
DescribeVpcEndpoints lists them in ``DnsEntries``, whose order AWS does not document; each zonal name carries its
AZ's name in its first label, so this handler picks each client AZ's name by that label, never by position.

On Create and Update it answers, as attributes for ``Fn::GetAtt``: ``Json`` (``{"<az>": "<zonal name>", ...}``,
the form the client package reads), ``Regional`` (the endpoint-specific regional name) and one attribute per AZ
(``az_attribute``). A client AZ without a zonal name (the endpoint has no interface there) fails the deploy in
one line. Delete changes nothing: the names belong to the endpoint.

Runs in Lambda (standard library and boto3 only).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from .custom_resource import Event, Opener, Outcome, run

LOG = logging.getLogger(__name__)
VPCE_SUFFIXES = (".vpce.amazonaws.com", ".vpce.amazonaws.com.cn")


class Ec2Client(Protocol):
    def describe_vpc_endpoints(self, **kwargs: Any) -> Any: ...


def az_attribute(az: str) -> str:
    """The attribute name of one AZ's zonal name: us-east-1a -> UsEast1a (attribute names avoid '-')."""
    return "".join(part[:1].upper() + part[1:] for part in az.split("-"))


def _first_label(name: str) -> str:
    return name.split(".", 1)[0]


def endpoint_names(dns_names: Iterable[str], vpc_endpoint_id: str) -> list[str]:
    """The endpoint-specific names among DnsEntries (the private DNS name, if listed, is not one of them)."""
    return sorted(
        {
            name.lower().rstrip(".")
            for name in dns_names
            if _first_label(name.lower()).startswith(f"{vpc_endpoint_id}-") and name.lower().endswith(VPCE_SUFFIXES)
        }
    )


def zonal_names(dns_names: Iterable[str], vpc_endpoint_id: str, azs: Iterable[str]) -> dict[str, str]:
    """Each AZ's zonal name, found by the ``-<az>`` ending of its first label, whatever the list's order.
    ValueError in one line names the AZs that have none."""
    names = endpoint_names(dns_names, vpc_endpoint_id)
    found: dict[str, str] = {}
    for az in azs:
        matches = [name for name in names if _first_label(name).endswith(f"-{az}")]
        if len(matches) == 1:
            found[az] = matches[0]
    missing = [az for az in azs if az not in found]
    if missing:
        zones = sorted(
            {
                _first_label(name).removeprefix(f"{vpc_endpoint_id}-").split("-", 1)[-1]
                for name in names
                if _first_label(name).count("-") > 2
            }
        )
        raise ValueError(
            f"{vpc_endpoint_id} has no zonal DNS name for {', '.join(missing)} (it has interfaces in "
            f"{', '.join(zones) or 'no AZ'}); add a subnet in each client AZ to the endpoint, or remove the AZ from "
            "client_azs"
        )
    return found


def regional_name(dns_names: Iterable[str], vpc_endpoint_id: str, zonal: Mapping[str, str]) -> str:
    """The endpoint-specific regional name: the endpoint's one name that is not zonal."""
    rest = [name for name in endpoint_names(dns_names, vpc_endpoint_id) if name not in set(zonal.values())]
    regional = [name for name in rest if _first_label(name).count("-") == 2]  # vpce-<id>-<suffix>
    if len(regional) != 1:
        raise ValueError(f"{vpc_endpoint_id} lists {len(regional)} regional DNS names; expected 1: {rest}")
    return regional[0]


def describe(ec2: Ec2Client, vpc_endpoint_id: str, azs: list[str]) -> dict[str, str]:
    """The attributes for ``vpc_endpoint_id``: Json, Regional and one per AZ."""
    (endpoint,) = ec2.describe_vpc_endpoints(VpcEndpointIds=[vpc_endpoint_id])["VpcEndpoints"]
    dns_names = [str(entry.get("DnsName", "")) for entry in endpoint.get("DnsEntries", [])]
    zonal = zonal_names(dns_names, vpc_endpoint_id, azs)
    attributes = {az_attribute(az): name for az, name in zonal.items()}
    attributes["Json"] = json.dumps(zonal, sort_keys=True, separators=(",", ":"))
    attributes["Regional"] = regional_name(dns_names, vpc_endpoint_id, zonal)
    return attributes


def _properties(event: Event) -> tuple[str, list[str]]:
    properties = event.get("ResourceProperties", {})
    endpoint_id = str(properties.get("VpcEndpointId", ""))
    azs = properties.get("AvailabilityZones")
    if not endpoint_id.startswith("vpce-"):
        raise ValueError(f"VpcEndpointId={endpoint_id!r} is invalid; allowed: an interface endpoint id (vpce-...)")
    if not isinstance(azs, list) or not azs or not all(isinstance(az, str) and az for az in azs):
        raise ValueError(f"AvailabilityZones={azs!r} is invalid; allowed: a non-empty list of AZ names")
    return endpoint_id, [str(az) for az in azs]


def boto3_ec2() -> Ec2Client:
    """An EC2 client with botocore's standard retry mode, so throttling is retried with backoff."""
    import boto3
    from botocore.config import Config

    return boto3.client("ec2", config=Config(retries={"mode": "standard", "max_attempts": 8}))  # type: ignore[no-any-return]


def on_event(event: Event, ec2: Callable[[], Ec2Client]) -> Outcome:
    """Create/Update: the names of the endpoint the properties name (its id is the physical id, so another
    endpoint replaces the resource). Delete: nothing to undo."""
    if event["RequestType"] == "Delete":
        return str(event.get("PhysicalResourceId") or event["RequestId"]), {}
    endpoint_id, azs = _properties(event)
    attributes = describe(ec2(), endpoint_id, azs)
    LOG.info("zonal DNS names of %s: %s", endpoint_id, attributes["Json"])
    return endpoint_id, attributes


def handler(
    event: Event,
    context: Any,
    *,
    ec2: Callable[[], Ec2Client] = boto3_ec2,
    opener: Opener = urllib.request.urlopen,
) -> dict[str, Any]:
    """Lambda entry point for Custom::RuntimeZonalDnsNames: answers CloudFormation exactly once."""
    logging.getLogger().setLevel(logging.INFO)
    return run(event, context, lambda request, _context: on_event(request, ec2), opener=opener)
