"""Remove the network interfaces SageMaker leaves in the model's security group after the endpoint is deleted.

SageMaker creates the interfaces of a VPC-connected model in the customer's subnets, outside the stack, and
releases them some minutes after the endpoint is gone; meanwhile CloudFormation's deletion of the model's
security group and subnets fails with DependencyViolation (aws-cloudformation/cloudformation-coverage-roadmap
#1327). This custom resource is deleted after the endpoint and model and before that group and those subnets:
on Delete it waits for SageMaker's interfaces to be released and deletes them.

Which interfaces: those carrying one of ``SecurityGroupIds`` (and in ``VpcId`` when given) that are plausibly
SageMaker's (``is_sagemakers``). Anything else in the group is never touched; it is reported instead.

When: only while the stack itself is being torn down (DELETE_IN_PROGRESS, or ROLLBACK_IN_PROGRESS after a
failed create). A Delete at any other time comes from an update (a replaced physical id, the resource removed
from the template, an update rollback); the endpoint may then still be serving from those interfaces, so such a
Delete only reports what it sees and succeeds at once.

Runs in Lambda (standard library and boto3 only); also ``python -m stacks.handlers.eni_cleanup --help``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from .custom_resource import MAX_REASON, Event, Opener, Outcome, remaining_seconds, run

LOG = logging.getLogger(__name__)

# Stack states in which a Delete means the whole stack is going away (the endpoint is already deleted).
TEARDOWN_STATUSES = frozenset({"DELETE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS"})
# Kept back from Lambda's remaining time for the last sweep and the answer to CloudFormation.
MARGIN_SECONDS = 60.0
FIRST_DELAY_SECONDS = 5.0
MAX_DELAY_SECONDS = 30.0
# Within CloudFormation's 1 KB limit for a physical id, with room to spare.
MAX_PHYSICAL_ID = 255
_GONE = "InvalidNetworkInterfaceID.NotFound"
# DeleteNetworkInterface on an attached interface: InvalidParameterValue "... is currently in use".
_IN_USE_CODES = frozenset({"InvalidNetworkInterface.InUse", "InvalidParameterValue"})


class Ec2Client(Protocol):
    def describe_network_interfaces(self, **kwargs: Any) -> Any: ...

    def delete_network_interface(self, **kwargs: Any) -> Any: ...


class CloudFormationClient(Protocol):
    def describe_stacks(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Clients:
    ec2: Ec2Client
    cloudformation: CloudFormationClient


def boto3_clients(region: str | None = None) -> Clients:
    """Clients with botocore's standard retry mode, so throttling is retried with backoff."""
    config = Config(retries={"mode": "standard", "max_attempts": 8})
    return Clients(
        ec2=boto3.client("ec2", region_name=region, config=config),
        cloudformation=boto3.client("cloudformation", region_name=region, config=config),
    )


class InterfacesRemainError(RuntimeError):
    """Interfaces still block the security group when the time to wait is up."""


@dataclass(frozen=True)
class Target:
    """The security groups (and optionally the VPC) whose SageMaker interfaces are removed."""

    security_group_ids: tuple[str, ...]
    vpc_id: str | None = None

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> Target:
        groups = properties.get("SecurityGroupIds")
        if not isinstance(groups, list) or not groups or not all(_is_id(g, "sg-") for g in groups):
            raise ValueError(f"SecurityGroupIds must be a non-empty list of security group ids (sg-...): {groups!r}")
        vpc_id = properties.get("VpcId") or None
        if vpc_id is not None and not _is_id(vpc_id, "vpc-"):
            raise ValueError(f"VpcId must be a VPC id (vpc-...) or absent: {vpc_id!r}")
        return cls(tuple(sorted(set(groups))), vpc_id)

    @property
    def physical_id(self) -> str:
        """Derived from the properties: the same groups give the same id, whatever their order."""
        readable = "sagemaker-eni-cleanup:" + ",".join(self.security_group_ids)
        if self.vpc_id:
            readable += f"@{self.vpc_id}"
        if len(readable) <= MAX_PHYSICAL_ID:
            return readable
        return "sagemaker-eni-cleanup:" + hashlib.sha256(readable.encode()).hexdigest()[:32]

    @property
    def filters(self) -> list[dict[str, Any]]:
        # Never empty: a DescribeNetworkInterfaces without a group filter would list the whole account.
        filters: list[dict[str, Any]] = [{"Name": "group-id", "Values": list(self.security_group_ids)}]
        if self.vpc_id:
            filters.append({"Name": "vpc-id", "Values": [self.vpc_id]})
        return filters


def _is_id(value: object, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix) and len(value) > len(prefix)


def is_sagemakers(interface: Mapping[str, Any]) -> bool:
    """Whether an interface found in the model's group is plausibly one SageMaker made for the endpoint.

    SageMaker creates them as the model's execution role, in a session it names ``SageMaker``, so RequesterId
    reads ``<role id>:SageMaker``; some carry a description naming SageMaker. They are plain interfaces, never
    attached to an instance of this account (SageMaker's instances live in a service account).
    """
    if interface.get("InterfaceType", "interface") != "interface":
        return False  # VPC endpoint, Lambda, NAT, load balancer... interfaces are other services'
    attachment = interface.get("Attachment") or {}
    if attachment.get("InstanceId") and attachment.get("InstanceOwnerId") == interface.get("OwnerId"):
        return False  # an EC2 instance of this account
    requester = str(interface.get("RequesterId", ""))
    description = str(interface.get("Description", ""))
    return requester.lower().endswith(":sagemaker") or "sagemaker" in description.lower()


def summary(interface: Mapping[str, Any]) -> str:
    """One line naming what an interface is, for logs and for the failure reason."""
    return (
        f"{interface['NetworkInterfaceId']} ({interface.get('Status', '?')}, "
        f"type {interface.get('InterfaceType', '?')}, requester {interface.get('RequesterId', '?')}, "
        f"description {interface.get('Description', '')!r})"
    )


def list_interfaces(ec2: Ec2Client, target: Target) -> Iterator[dict[str, Any]]:
    """Every interface in the target's groups (and VPC), page by page."""
    token: str | None = None
    while True:
        page = ec2.describe_network_interfaces(Filters=target.filters, **({"NextToken": token} if token else {}))
        yield from page.get("NetworkInterfaces", [])
        token = page.get("NextToken")
        if not token:
            return


def delete_interface(ec2: Ec2Client, interface_id: str) -> str:
    """Delete one interface: ``deleted``, ``vanished`` (already gone) or ``busy`` (attached again, or still)."""
    try:
        ec2.delete_network_interface(NetworkInterfaceId=interface_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = str(error.response.get("Error", {}).get("Message", "")).lower()
        if code == _GONE:
            return "vanished"
        if code in _IN_USE_CODES and "in use" in message:
            return "busy"
        raise
    return "deleted"


@dataclass(frozen=True)
class Sweep:
    """What one pass over the group found and did."""

    deleted: tuple[str, ...] = ()
    vanished: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()  # SageMaker's, not yet released
    foreign: tuple[str, ...] = ()  # summaries of interfaces that are not SageMaker's: left alone


def sweep_once(ec2: Ec2Client, target: Target, *, delete: bool = True) -> Sweep:
    """List the group's interfaces once; delete the released SageMaker ones (when ``delete``)."""
    deleted: list[str] = []
    vanished: list[str] = []
    waiting: list[str] = []
    foreign: list[str] = []
    # The whole listing first: deleting between pages could shift what the next page holds.
    for interface in list(list_interfaces(ec2, target)):
        interface_id = interface["NetworkInterfaceId"]
        if not is_sagemakers(interface):
            foreign.append(summary(interface))
        elif interface.get("Status") != "available" or not delete:
            waiting.append(interface_id)
        else:
            by_outcome = {"deleted": deleted, "vanished": vanished, "busy": waiting}
            by_outcome[delete_interface(ec2, interface_id)].append(interface_id)
    return Sweep(tuple(deleted), tuple(vanished), tuple(waiting), tuple(foreign))


@dataclass(frozen=True)
class Cleanup:
    """The outcome of ``clean_up``: everything deleted, and what still remains when it stopped."""

    deleted: tuple[str, ...]
    vanished: tuple[str, ...]
    remaining: tuple[str, ...]
    foreign: tuple[str, ...]
    waited_seconds: float

    @property
    def complete(self) -> bool:
        return not self.remaining and not self.foreign


def clean_up(
    ec2: Ec2Client,
    target: Target,
    *,
    budget_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Cleanup:
    """Sweep until no SageMaker interface is left, backing off between sweeps, for at most ``budget_seconds``."""
    start = clock()
    deadline = start + budget_seconds
    delay = FIRST_DELAY_SECONDS
    deleted: list[str] = []
    vanished: list[str] = []
    while True:
        sweep = sweep_once(ec2, target)
        deleted += sweep.deleted
        vanished += sweep.vanished
        left = deadline - clock()
        if not sweep.waiting or left <= 0:
            return Cleanup(tuple(deleted), tuple(vanished), sweep.waiting, sweep.foreign, clock() - start)
        LOG.info("waiting %.0f s for SageMaker to release %s", min(delay, left), ", ".join(sweep.waiting))
        sleep(min(delay, left))
        delay = min(delay * 2, MAX_DELAY_SECONDS)


def _fit(items: Sequence[str], limit: int) -> str:
    """Comma-separated items within ``limit`` characters, ending with "and N more" when some are left out."""
    shown: list[str] = []
    for index, item in enumerate(items):
        more = len(items) - index
        if len(", ".join([*shown, item])) + len(f", and {more} more") > limit:
            return ", ".join([*shown, f"and {more} more"])
        shown.append(item)
    return ", ".join(shown)


def failure_reason(target: Target, result: Cleanup, region: str | None) -> str:
    """Why the cleanup stops short and what to do, within CloudFormation's reason length."""
    command = ".venv/bin/python -m stacks.handlers.eni_cleanup " + " ".join(
        f"--security-group-id {group}" for group in target.security_group_ids
    )
    if region:
        command += f" --region {region}"
    advice = f" Retry the stack deletion (it runs this cleanup again), or run `{command}` and then retry."
    if result.foreign:
        advice += " Interfaces that are not SageMaker's must be detached or deleted by whoever owns them."
    remaining_head = (
        f"SageMaker has not released {len(result.remaining)} network interface(s) in"
        f" {', '.join(target.security_group_ids)} after {result.waited_seconds:.0f} s: "
    )
    foreign_head = f"{len(result.foreign)} interface(s) in the group are not SageMaker's and were left alone: "
    # run() prefixes the exception's class name; the lists get what the fixed text leaves.
    fixed = len(f"{InterfacesRemainError.__name__}: ") + len(advice)
    fixed += (len(remaining_head) + 2 if result.remaining else 0) + (len(foreign_head) + 2 if result.foreign else 0)
    room = MAX_REASON - fixed
    # Ids are short and summaries long: when both are listed, the ids get a third of the room.
    ids_room = room // 3 if result.foreign else room
    parts = []
    if result.remaining:
        parts.append(remaining_head + _fit(result.remaining, ids_room) + ".")
    if result.foreign:
        parts.append(foreign_head + _fit(result.foreign, room - ids_room if result.remaining else room) + ".")
    return " ".join(parts) + advice


def stack_status(cloudformation: CloudFormationClient, stack_id: str) -> str | None:
    """The stack's status, or None when it cannot be read."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_id).get("Stacks", [])
    except ClientError as error:
        LOG.warning("cannot read the status of %s: %s", stack_id, error)
        return None
    return str(stacks[0]["StackStatus"]) if stacks else None


def on_event(
    event: Event,
    context: Any,
    *,
    clients: Callable[[], Clients] = boto3_clients,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """The custom resource's action: Create and Update validate and name; Delete cleans up (see module doc)."""
    request = event["RequestType"]
    properties = event.get("ResourceProperties", {})
    if request in ("Create", "Update"):
        return Target.from_properties(properties).physical_id, {}
    if request != "Delete":
        raise ValueError(f"unknown RequestType {request!r}")
    physical_id = str(event["PhysicalResourceId"])
    try:
        target = Target.from_properties(properties)
    except ValueError as error:
        # The rollback of a Create that failed on these same properties: there is nothing to clean up.
        LOG.warning("nothing to clean up: %s", error)
        return physical_id, {}
    chosen = clients()
    status = stack_status(chosen.cloudformation, event["StackId"])
    if status is not None and status not in TEARDOWN_STATUSES:
        sweep = sweep_once(chosen.ec2, target, delete=False)
        LOG.info(
            "stack is %s, not being deleted: leaving %d SageMaker and %d other interface(s) in %s alone",
            status,
            len(sweep.waiting),
            len(sweep.foreign),
            ", ".join(target.security_group_ids),
        )
        return physical_id, {}
    if status is None:
        LOG.warning("assuming the stack is being deleted")
    budget = remaining_seconds(context) - MARGIN_SECONDS
    result = clean_up(chosen.ec2, target, budget_seconds=budget, sleep=sleep, clock=clock)
    LOG.info("deleted %s; already gone %s", result.deleted or "none", result.vanished or "none")
    if not result.complete:
        raise InterfacesRemainError(failure_reason(target, result, region=str(event["StackId"]).split(":")[3]))
    return physical_id, {}


def handler(
    event: Event,
    context: Any,
    *,
    clients: Callable[[], Clients] = boto3_clients,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    opener: Opener = urllib.request.urlopen,
) -> dict[str, Any]:
    """Lambda entry point: answers CloudFormation exactly once (see ``custom_resource.run``)."""

    def action(request: Event, lambda_context: Any) -> Outcome:
        return on_event(request, lambda_context, clients=clients, sleep=sleep, clock=clock)

    return run(event, context, action, opener=opener)


REGION_HELP = "give --region REGION (or set AWS_REGION, or a region in the AWS profile)"
CREDENTIALS_HELP = "sign in (aws sso login, or AWS_PROFILE=NAME) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"


def missing_configuration(error: NoRegionError | NoCredentialsError) -> str:
    """One line naming what the command lacks (the region, the credentials or both) and how to give it."""
    if isinstance(error, NoCredentialsError):
        return f"no AWS credentials found: {CREDENTIALS_HELP}"
    # Say now if the credentials are missing too, rather than on the next try. The default session is the one
    # boto3.client() tried: credentials it found are cached there (and not announced in the log again).
    if (boto3.DEFAULT_SESSION or boto3.session.Session()).get_credentials() is None:
        return f"no AWS region and no AWS credentials found: {REGION_HELP}, and {CREDENTIALS_HELP}"
    return f"no AWS region: {REGION_HELP}"


def main(argv: Sequence[str] | None = None, *, clients: Callable[[str | None], Clients] = boto3_clients) -> int:
    """The same cleanup from a shell, after the endpoint is deleted; exit status 1 if interfaces remain, 2 if it
    could not start (a wrong argument, no AWS region or credentials)."""
    parser = argparse.ArgumentParser(
        prog="python -m stacks.handlers.eni_cleanup",
        description="Wait for and delete the network interfaces SageMaker left in a model's security group.",
    )
    parser.add_argument(
        "--security-group-id", action="append", required=True, dest="groups", metavar="SG_ID", help="repeatable"
    )
    parser.add_argument("--vpc-id")
    parser.add_argument("--region")
    parser.add_argument("--wait-seconds", type=float, default=900.0, help="how long to wait (default 900)")
    parser.add_argument("--dry-run", action="store_true", help="list and classify only; delete nothing")
    args = parser.parse_args(argv)
    try:
        target = Target.from_properties({"SecurityGroupIds": args.groups, "VpcId": args.vpc_id})
    except ValueError as error:
        parser.error(str(error))
    try:
        ec2 = clients(args.region).ec2
        if args.dry_run:
            sweep = sweep_once(ec2, target, delete=False)
            print(f"SageMaker's: {', '.join(sweep.waiting) or 'none'}")
            print(f"not SageMaker's (left alone): {'; '.join(sweep.foreign) or 'none'}")
            return 0
        result = clean_up(ec2, target, budget_seconds=args.wait_seconds)
    except (NoRegionError, NoCredentialsError) as error:
        # A client needs a region, its first call credentials: without them nothing was touched.
        print(f"{parser.prog}: {missing_configuration(error)}", file=sys.stderr)
        return 2
    print(f"deleted: {', '.join(result.deleted) or 'none'}")
    if not result.complete:
        print(failure_reason(target, result, region=args.region), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
