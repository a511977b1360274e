"""moto in this process: its server on 127.0.0.1, the resource types its CloudFormation skips, and the patches of
its internals (Lambda routed to the stand-ins, AWS-shaped DnsEntries, the stack outputs rebuilt)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from unittest import mock

from devtools.rehearsal.base import HOST, HTTP_TIMEOUT_SECONDS, RehearsalError, progress
from devtools.rehearsal.cdk_cli import Target
from devtools.rehearsal.stand_ins import KIT_RESOURCE_TYPES, PROVIDER_RESOURCE_TYPE, LambdaStandIn

MOTO_VERSION = "5.2.5"  # the moto internals patched below are this version's

# Types moto's CloudFormation skips with a warning, per stack (devtools/rehearse.py's docstring lists them); any
# other fails.
BOOTSTRAP_STACK = "CDKToolkit"
KNOWN_SKIPPED_BOOTSTRAP = frozenset({"AWS::S3::BucketPolicy"})
KNOWN_SKIPPED_APP = frozenset(
    {
        "AWS::EC2::SecurityGroupEgress",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::SNS::TopicPolicy",
        # The data-capture and Neo output buckets' TLS-only policies (prod, inferentia).
        "AWS::S3::BucketPolicy",
        # The client probes' asynchronous-invocation settings (prod): no retries, a one-minute event age.
        "AWS::Lambda::EventInvokeConfig",
    }
)
SKIPPED_TYPE_MESSAGE = "No Moto CloudFormation support for %s"


def unexpected_skips(skipped: set[str], template_types: set[str] | None, known: frozenset[str]) -> list[str]:
    """The types moto skipped in one stack (``template_types``; None: every skipped type) beyond ``known``."""
    in_stack = skipped if template_types is None else skipped & template_types
    return sorted(in_stack - known)


class SkippedTypes(logging.Filter):
    """Collects, and keeps off the console, moto's warning for each resource type its CloudFormation skips."""

    def __init__(self) -> None:
        super().__init__()
        self.types: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == SKIPPED_TYPE_MESSAGE and isinstance(record.args, tuple) and record.args:
            self.types.add(str(record.args[0]))
            return False
        return True


@contextlib.contextmanager
def running_moto(port: int) -> Iterator[tuple[int, Callable[[], bool]]]:
    """moto's server on 127.0.0.1 in this process (``port`` 0: a free one); yields its port and a liveness check.

    On exit stops the server, closes its socket, and checks the port is free again.
    """
    import moto
    from moto.server import ThreadedMotoServer

    if moto.__version__ != MOTO_VERSION:
        raise RehearsalError(f"moto {moto.__version__}: this script patches moto {MOTO_VERSION}'s internals; re-check")
    if port and not port_is_free(port):
        raise RehearsalError(f"port {port} on {HOST} is in use")
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    if not finished(server.start):
        raise RehearsalError(f"moto's server did not start on {HOST}:{port}")
    port = int(server.get_host_and_port()[1])
    try:
        yield port, lambda: server._thread is not None and server._thread.is_alive()
    finally:
        stopped = finished(server.stop)
        if server._server is not None:  # ThreadedMotoServer.stop() leaves the listening socket open
            server._server.server_close()
        if stopped and port_is_free(port):
            progress(f"moto server stopped; {HOST}:{port} is free")
        elif sys.exc_info()[0] is None:
            raise RehearsalError(f"moto's server on {HOST}:{port} did not stop")
        else:
            progress(f"WARNING: moto's server on {HOST}:{port} did not stop")


def finished(action: Callable[[], object], timeout: float = HTTP_TIMEOUT_SECONDS) -> bool:
    """Run ``action`` in a thread; False if it has not returned within ``timeout`` (moto's waits have none)."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def aws_shaped_dns_entries(
    service_name: str, endpoint_id: str, azs: list[str], private_dns: bool
) -> list[dict[str, str]]:
    """DnsEntries as AWS lists them for an interface endpoint (PrivateLink guide, "DNS hostnames"): the
    endpoint-specific regional name, one zonal name per AZ of its subnets, and the service's own name when
    private DNS is on. moto lists a single name of another shape, which has no AZ in it."""
    _, _, region, *service = service_name.split(".")
    domain = f"{'.'.join(reversed(service))}.{region}.vpce.amazonaws.com"
    suffix = hashlib.sha256(endpoint_id.encode()).hexdigest()[:8]
    zone = hashlib.sha256(domain.encode()).hexdigest()[:13].upper()
    names = [f"{endpoint_id}-{suffix}.{domain}", *(f"{endpoint_id}-{suffix}-{az}.{domain}" for az in sorted(set(azs)))]
    if private_dns:
        names.append(f"{'.'.join(reversed(service))}.{region}.amazonaws.com")
    return [{"dns_name": name, "hosted_zone_id": zone} for name in names]


@contextlib.contextmanager
def lambda_routed_to(stand_in: LambdaStandIn, port: int) -> Iterator[None]:
    """Route every Lambda invocation in moto to ``stand_in``, address ResponseURLs to this server, and give
    interface endpoints AWS's DnsEntries (``aws_shaped_dns_entries``)."""
    from moto import settings
    from moto.awslambda.models import LambdaFunction
    from moto.ec2.models.vpcs import VPCBackend

    create_vpc_endpoint = VPCBackend.create_vpc_endpoint

    def create_with_aws_dns_entries(backend: Any, *args: Any, **kwargs: Any) -> Any:
        endpoint = create_vpc_endpoint(backend, *args, **kwargs)
        if str(endpoint.vpc_endpoint_type).lower() == "interface":
            azs = [backend.get_subnet(subnet_id).availability_zone for subnet_id in endpoint.subnet_ids or []]
            endpoint.dns_entries = aws_shaped_dns_entries(
                endpoint.service_name, endpoint.id, azs, bool(endpoint.private_dns_enabled)
            )
        return endpoint

    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(VPCBackend, "create_vpc_endpoint", create_with_aws_dns_entries))
        # moto addresses ResponseURLs to a Docker container's view of the host (host.docker.internal, or an
        # address it asks the Docker socket for); the one answering here is this process.
        patches.enter_context(mock.patch.object(settings, "moto_server_host", lambda: "http://localhost"))
        patches.enter_context(mock.patch.dict(os.environ, {"MOTO_PORT": str(port)}))
        patches.enter_context(
            mock.patch.object(LambdaFunction, "_invoke_lambda", lambda self, event=None: stand_in(self, event))
        )
        yield


@contextlib.contextmanager
def recording_endpoint_creations() -> Iterator[list[str]]:
    """Yields the names of the SageMaker endpoints moto creates, appended in the order it creates them. moto's
    CloudFormation creates a stack's resources in their DependsOn order (``ResourceMap.create``), so for a stage with
    shards this is the order the template's chain of endpoints decides."""
    from moto.sagemaker.models import SageMakerModelBackend

    created: list[str] = []
    create_endpoint = SageMakerModelBackend.create_endpoint

    def create_and_record(backend: Any, endpoint_name: str, *args: Any, **kwargs: Any) -> Any:
        endpoint = create_endpoint(backend, endpoint_name, *args, **kwargs)
        created.append(endpoint_name)
        return endpoint

    with mock.patch.object(SageMakerModelBackend, "create_endpoint", create_and_record):
        yield created


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that is bound but never listens: connections to it are refused while it is held."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        yield int(sock.getsockname()[1])


def wait_for_custom_resources(
    target: Target, template: Mapping[str, Any], stand_in: LambdaStandIn, deadline: float
) -> None:
    """Until every Custom:: resource of the template was answered SUCCESS and moto marked it created.

    moto's change-set execution reports CREATE_COMPLETE before the answers arrive, so this waits on its own.
    """
    from moto.cloudformation.models import cloudformation_backends

    resources = template.get("Resources", {})
    custom = {
        lid
        for lid, res in resources.items()
        if str(res.get("Type", "")).startswith("Custom::") or res.get("Type") == "AWS::CloudFormation::CustomResource"
    }
    foreign = {lid for lid in custom if resources[lid]["Type"] not in {PROVIDER_RESOURCE_TYPE, *KIT_RESOURCE_TYPES}}
    if foreign:
        raise RehearsalError(f"custom resources without a stand-in: {', '.join(sorted(foreign))}")
    while True:
        stand_in.raise_if_failed()
        backend = cloudformation_backends[target.account][target.region]
        stacks = [s for s in backend.stacks.values() if s.name == target.stack]
        created = {lid for s in stacks for lid, res in s.custom_resources.items() if res.is_created()}
        if custom <= set(stand_in.answers) and custom <= created:
            # moto 5.2.5 builds a stack's outputs from the template it was created with, which for a change set
            # (what the CLI deploys with) is empty, and never again; so they are built here from the executed
            # template, now that the custom resources whose attributes they read have answered.
            for stack in stacks:
                stack._parse_template()
                stack.output_map = stack._create_output_map()
            return
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(custom - created))
            raise RehearsalError(f"custom resources never answered (the stand-in did not run?): {missing}")
        time.sleep(0.2)
