"""Local deploy rehearsal: the real ``cdk bootstrap`` and ``cdk deploy`` of one stage, against moto on 127.0.0.1.

``make rehearse`` (or ``python scripts/rehearse.py --stage dev``) starts moto's server inside this process on
127.0.0.1, runs the pinned CDK CLI (node_modules/.bin/cdk) against it with fake credentials and
``AWS_ENDPOINT_URL=http://localhost:PORT``, checks with boto3 that the stack reached CREATE_COMPLETE, that the
SageMaker endpoint is InService, that the SageMaker Runtime interface endpoint (private DNS on) and the S3 gateway
endpoint exist and that the VPC's default security group has no rules left, then stops the server: also on
failure, on a timeout and on Ctrl-C or SIGTERM. Nothing leaves the machine: the CLI gets no AWS or CDK setting of
the caller (AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE are /dev/null), and every request not addressed to
localhost goes to a proxy port that refuses connections. The synthesized assembly goes to a temporary folder,
and ``--no-lookups`` keeps moto's ids out of cdk.context.json. The stack is not destroyed: moto deletes the VPC
before its endpoints and fails; stopping the server discards everything.

Which stages, and where. Any stage of stacks/stages.py, in the region it names: ``cdk bootstrap`` targets
``aws://ACCOUNT/<the stage's region>`` and the CLI's AWS_REGION and AWS_DEFAULT_REGION are that region, because moto
keeps each region's state apart like AWS (the bootstrap stack, its ``cdk-hnb659fds-assets-ACCOUNT-REGION`` bucket
and the ``/cdk-bootstrap/hnb659fds/version`` parameter exist only where they were bootstrapped). An
environment-agnostic stage (region None) is rehearsed in ``--region``, by default us-east-1 (DEFAULT_REGION), if
its profile's image is published there. Refused at once, with the reason: a stage that uses an existing VPC (it
does not exist in an empty moto account), one whose profile compiles its model with Neo (no stand-in), and one that
names an account other than moto's; tests/test_deploy_rehearsal.py rehearses those in-process.

The kit's own custom resources. ``Custom::SageMakerEniCleanup`` (stacks/teardown.py) and
``Custom::RuntimeZonalDnsNames`` (stacks/zonal_dns.py) are served by Python in this repository; the rehearsal checks
that each deployed zip holds exactly this checkout's ``stacks/handlers`` files and runs that handler in this
process against moto's EC2 and CloudFormation APIs (the cleanup, on Create, only names itself; the zonal names are
read from the runtime endpoint's DnsEntries). moto lists one DNS name of its own shape for an interface endpoint;
the rehearsal gives it the entries AWS lists (``aws_shaped_dns_entries``: the regional name, one zonal name per
subnet AZ, the private DNS name), so the handler reads what it would read on AWS, and the summary checks that the
stack's RuntimeZonalDnsNames output names each AZ's own entry.

CDK's Lambda function. The ``dev`` template also has CDK's custom resource ``Custom::VpcRestrictDefaultSG``
(CDK's provider that strips the rules of the VPC's default security group). moto runs Lambda code only in
Docker; without it the invocation fails, nobody answers the custom resource, and moto's change-set execution
marks the stack CREATE_COMPLETE all the same: a green deploy in which the handler never ran. This script
therefore replaces moto's Docker call (``LambdaFunction._invoke_lambda``, the one path every invocation takes:
custom resources and the Invoke API alike) with a dispatcher. Besides the kit's handler it recognises CDK's provider
as shipped with aws-cdk-lib 2.275.0 (handler, description, and the sha256 of both files of its code asset), and
runs a Python stand-in that makes the handler's EC2 calls through moto's API and PUTs the response body CDK's
``__entrypoint__.js`` would to the event's ResponseURL. Any other invocation, any FAILED answer and any
custom resource left unanswered fails the rehearsal.

What a green rehearsal does not prove (moto 5.2.5; each item seen in a run of the ``dev`` stage):

- IAM is not evaluated. The server takes any keys; a session of the SageMaker execution role lists buckets and
  roles and creates a VPC, none of which its policy allows. The execution policy, the bootstrap roles, the VPC
  endpoint policies and the KMS key policy are stored, never enforced.
- No Lambda runtime runs; the kit's handler runs in this process. The default-security-group handler is the
  Python stand-in described above, which mirrors CDK's handler but is not it. moto's default security group also
  lacks AWS's self-referencing ingress rule, so only the handler's egress revoke changes anything here (the
  summary shows both calls).
- Application Auto Scaling: ``ScalableTarget`` and ``ScalingPolicy`` are skipped (moto warns, creates nothing,
  the stack still completes); DescribeScalableTargets is empty.
- Monitoring: ``AWS::CloudWatch::Alarm`` (metric-math alarms) and ``AWS::SNS::TopicPolicy`` are skipped the same
  way; the topic and the dashboard are created. So is ``AWS::Lambda::EventInvokeConfig`` (the client probes' "no
  retries, one-minute event age", in ``prod``).
- Security-group egress: ``AWS::EC2::SecurityGroupEgress`` is skipped, and the ``SecurityGroupEgress`` property of
  ``AWS::EC2::SecurityGroup`` is ignored, so every group keeps moto's allow-all egress (the endpoint group's
  "disallow all" rule and the model group's HTTPS-only rule are absent). Ingress rules are created.
  ``AWS::S3::BucketPolicy`` is skipped too (the bootstrap bucket's; in ``prod`` the capture buckets'). Any
  other skipped type fails the rehearsal.
- Ignored settings: ``EndpointName`` (moto generates one), ``EnableNetworkIsolation`` (DescribeModel says false),
  ``EnableDnsHostnames`` (the VPC reports it off), ``PrivateDnsEnabled`` (stored, but moto serves no DNS), the
  endpoint config's ``KmsKeyId``
  (stored, nothing is encrypted; DescribeKey on the stack's key even fails with HTTP 500).
- No model is served: the endpoint is InService at once with two instances, no image is pulled, no artifact
  downloaded, and InvokeEndpoint returns the canned bytes ``body``.
- Instance types: moto accepts 66 SageMaker instance types, botocore knows 277 (stacks/data/instance_types.json);
  moto rejects, for example, ml.c6i, ml.c7i, ml.m7i, ml.g5 and ml.g6, which SageMaker takes.
- CloudFormation itself: a change set executes synchronously and reports CREATE_COMPLETE whatever its custom
  resources answer, or whether they answer at all; a failed one leaves the stack REVIEW_IN_PROGRESS with what
  it had created (no rollback); a custom resource's FAILED answer is ignored (with CreateStack the stack stays
  CREATE_IN_PROGRESS forever); a stack created from a change set keeps the outputs of the empty template it was
  created with (none), so the rehearsal rebuilds them from the executed template once the custom resources answered.

A green rehearsal is therefore not a real deploy. It proves that the CLI, the bootstrap, the asset publishing and
the template's wiring work end to end, that moto creates every resource it supports, and that the stand-in for
the default-security-group handler ran and was answered.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from stacks.settings import StageSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python scripts/rehearse.py`: the kit's handlers are imported
    sys.path.insert(0, str(REPO_ROOT))
NODE_BIN = REPO_ROOT / "node_modules" / ".bin"
CDK = NODE_BIN / "cdk"
MOTO_VERSION = "5.2.5"  # the moto internals patched below are this version's
HOST = "127.0.0.1"
ACCOUNT = "123456789012"  # moto's default account
# Where an environment-agnostic stage (region None) is rehearsed unless --region names another: the region
# the shipped stages use. Any region works whose container image the stage's profile publishes.
DEFAULT_REGION = "us-east-1"
# `cdk bootstrap` writes its version here, in the region it bootstraps; `cdk deploy` reads it in the stack's.
BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION_PARAMETER = f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
DEFAULT_TIMEOUT_SECONDS = 240.0
HTTP_TIMEOUT_SECONDS = 10.0

# CDK's provider for Custom::VpcRestrictDefaultSG in aws-cdk-lib 2.275.0: the stand-in below mirrors its
# index.js (the EC2 calls) and __entrypoint__.js (the response). When aws-cdk-lib changes either file, the
# rehearsal stops with the new digests: re-read both files, update the stand-in, then these digests.
PROVIDER_RESOURCE_TYPE = "Custom::VpcRestrictDefaultSG"
PROVIDER_HANDLER = "__entrypoint__.handler"
PROVIDER_DESCRIPTION = "Lambda function for removing all inbound/outbound rules from the VPC default security group"
PROVIDER_CODE_SHA256 = {
    "__entrypoint__.js": "62f195f927919321aa8b4351a3868d0c2ec1074f337aa46c1d92157fdc5f5f07",
    "index.js": "453edb4b4fa26bf074a551b33aa0f9e1c5e2bb8e4c84bcbcb82e26150652f9ff",
}
# __entrypoint__.js's markers for a physical id it never got.
CREATE_FAILED_MARKER = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"
MISSING_PHYSICAL_ID_MARKER = "AWSCDK::CustomResourceProviderFramework::MISSING_PHYSICAL_ID"
# moto's ResponseURL path (moto/cloudformation/custom_model.py); the region is the stack's.
RESPONSE_PATH = re.compile(r"^/cloudformation_(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)/cfnresponse$")

# The kit's own custom resources (stacks/teardown.py, stacks/zonal_dns.py): their handlers are Python in this
# repository, so the rehearsal runs that very code, in this process, against moto, after checking the deployed
# zip holds it. Lambda handler -> (module in stacks/handlers, the resource type it serves).
KIT_HANDLERS = {
    "handlers.eni_cleanup.handler": ("eni_cleanup", "Custom::SageMakerEniCleanup"),
    "handlers.zonal_dns.handler": ("zonal_dns", "Custom::RuntimeZonalDnsNames"),
}
KIT_RESOURCE_TYPES = frozenset(resource_type for _, resource_type in KIT_HANDLERS.values())

# Types moto's CloudFormation skips with a warning, per stack (listed in the docstring); any other fails.
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


class RehearsalError(Exception):
    """A failed rehearsal; the message is the one-line reason."""


# --- where the stage goes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The stage's stack, and the account and region it is bootstrapped and deployed in."""

    stage: str
    stack: str
    account: str
    region: str
    # The container image the model must run in this region (environment-agnostic: the template's mapping).
    image: str

    @property
    def environment(self) -> str:
        """The environment ``cdk bootstrap`` takes: the one the stack deploys to."""
        return f"aws://{self.account}/{self.region}"

    @property
    def runtime_service(self) -> str:
        return f"com.amazonaws.{self.region}.sagemaker.runtime"

    @property
    def s3_service(self) -> str:
        return f"com.amazonaws.{self.region}.s3"


def target_of(settings: StageSettings, *, region: str | None = None) -> Target:
    """Where ``settings`` is rehearsed; RehearsalError naming what the rehearsal cannot do for this stage.

    ``region`` picks the region of an environment-agnostic stage (default DEFAULT_REGION); a stage that
    names its region is rehearsed there and nowhere else.
    """
    where = f"stage {settings.name!r}"
    if settings.serving.compiled:
        raise RehearsalError(
            f"{where}: the {settings.profile} profile compiles its model with SageMaker Neo during the deploy, "
            "which moto does not have and this script has no stand-in for; tests/test_deploy_rehearsal.py "
            "rehearses it in-process with the uncompiled model"
        )
    if settings.vpc_id is not None:
        raise RehearsalError(
            f"{where}: it uses the existing VPC {settings.vpc_id}, which an empty moto account does not have; "
            "tests/test_deploy_rehearsal.py rehearses it in-process against a copy of the looked-up VPC"
        )
    if settings.account is not None and settings.account != ACCOUNT:
        raise RehearsalError(
            f"{where}: it deploys to account {settings.account}, moto serves only its default account {ACCOUNT}; "
            "set account=None (or that id) in a copy of the stage to rehearse it"
        )
    if region is not None and settings.region is not None and region != settings.region:
        raise RehearsalError(f"{where} deploys to {settings.region}: --region applies only to stages without one")
    chosen = settings.region or region or DEFAULT_REGION
    registry = settings.serving.registry(settings.container_version)
    found = registry.image(chosen)
    if found is None:  # a stage's own region is validated with its settings already
        image = f"{settings.serving.image_label} {settings.container_version} image"
        raise RehearsalError(
            f"{where}: --region {chosen}: SageMaker publishes no {image} there (the template's image mapping "
            f"has no entry for it); allowed: one of {', '.join(sorted(registry.regions))}"
        )
    return Target(stage=settings.name, stack=settings.stack_name, account=ACCOUNT, region=chosen, image=found[1])


# --- the environment of the CLI ----------------------------------------------------------------------------


def isolated_environment(
    base: Mapping[str, str], *, endpoint_url: str, region: str, cdk_home: Path, dead_proxy: str
) -> dict[str, str]:
    """``base`` without any AWS, CDK or proxy setting, plus fake credentials aimed at moto, in ``region``.

    ``region`` is the CLI's default region: where an environment-agnostic stack goes, and where the SDK
    calls of both commands are signed for. Requests to localhost go straight to moto; any other goes to
    ``dead_proxy``, which refuses connections.
    """
    env = {
        name: value
        for name, value in base.items()
        if not name.upper().startswith(("AWS_", "CDK_")) and name.upper() not in PROXY_VARIABLES
    }
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "CDK_HOME": str(cdk_home),
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "CDK_DISABLE_VERSION_CHECK": "true",
            "PATH": os.pathsep.join([str(NODE_BIN), base.get("PATH", os.defpath)]),
        }
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = env[name.lower()] = dead_proxy
    env["NO_PROXY"] = env["no_proxy"] = f"localhost,{HOST}"
    return env


def cli_commands(target: Target, output: Path) -> list[tuple[str, list[str]]]:
    """The two CLI runs, named: bootstrap of the environment the stack deploys to, then deploy of the stack.

    moto keeps each region's state apart, like AWS: bootstrapping another region than the stack's leaves the
    stack's region without the bootstrap stack, bucket and version parameter.
    """
    common = ["-c", f"stage={target.stage}", "--no-lookups", "--no-notices", "--output", str(output)]
    return [
        ("cdk bootstrap", ["bootstrap", target.environment, *common]),
        ("cdk deploy", ["deploy", target.stack, "--require-approval", "never", *common]),
    ]


def unexpected_skips(skipped: set[str], template_types: set[str] | None, known: frozenset[str]) -> list[str]:
    """The types moto skipped in one stack (``template_types``; None: every skipped type) beyond ``known``."""
    in_stack = skipped if template_types is None else skipped & template_types
    return sorted(in_stack - known)


# --- the stand-in for CDK's VpcRestrictDefaultSG handler ---------------------------------------------------


@dataclass(frozen=True)
class Ec2Call:
    """One EC2 API call of the handler: the boto3 method, its parameters, and whether a missing rule is fine."""

    method: str
    params: dict[str, Any]
    ignore_not_found: bool = False


def egress_rule(group_id: str) -> dict[str, Any]:
    """The default egress rule (all traffic to 0.0.0.0/0), as index.js writes it."""
    return {"GroupId": group_id, "IpPermissions": [{"IpRanges": [{"CidrIp": "0.0.0.0/0"}], "IpProtocol": "-1"}]}


def ingress_rule(group_id: str, account: str) -> dict[str, Any]:
    """The default ingress rule (all traffic from the group itself), as index.js writes it."""
    pair = {"GroupId": group_id, "UserId": account}
    return {"GroupId": group_id, "IpPermissions": [{"UserIdGroupPairs": [pair], "IpProtocol": "-1"}]}


def _revoke(group_id: str, account: str) -> list[Ec2Call]:
    return [
        Ec2Call("revoke_security_group_egress", egress_rule(group_id), ignore_not_found=True),
        Ec2Call("revoke_security_group_ingress", ingress_rule(group_id, account), ignore_not_found=True),
    ]


def _restore(group_id: str, account: str) -> list[Ec2Call]:
    return [
        Ec2Call("authorize_security_group_ingress", ingress_rule(group_id, account)),
        Ec2Call("authorize_security_group_egress", egress_rule(group_id)),
    ]


def handler_calls(event: Mapping[str, Any]) -> list[Ec2Call]:
    """The EC2 calls CDK's handler makes for ``event``, in order (index.js and __entrypoint__.js)."""
    if event["RequestType"] == "Delete" and event.get("PhysicalResourceId") == CREATE_FAILED_MARKER:
        return []  # __entrypoint__.js: a DELETE after a failed CREATE is answered without the handler
    properties = event["ResourceProperties"]
    group_id, account = properties["DefaultSecurityGroupId"], properties["Account"]
    match event["RequestType"]:
        case "Create":
            return _revoke(group_id, account)
        case "Update":
            old_group_id = event["OldResourceProperties"]["DefaultSecurityGroupId"]
            if old_group_id == group_id:
                return []
            return _restore(old_group_id, account) + _revoke(group_id, account)
        case "Delete":
            return _restore(group_id, account)
        case other:
            raise ValueError(f"unknown RequestType {other!r}")


def response_body(event: Mapping[str, Any], *, error: str | None = None) -> dict[str, Any]:
    """The body __entrypoint__.js PUTs to the ResponseURL after the handler succeeded, or failed with ``error``.

    The handler returns nothing, so on success the physical id is the event's, else the request id.
    """
    physical_id = event.get("PhysicalResourceId")
    if error is None:
        status, reason = "SUCCESS", "SUCCESS"
        if physical_id is None:
            physical_id = event["RequestId"]
    else:
        status, reason = "FAILED", error
        if not physical_id and event["RequestType"] == "Create":
            physical_id = CREATE_FAILED_MARKER
    return {
        "Status": status,
        "Reason": reason,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "PhysicalResourceId": physical_id or MISSING_PHYSICAL_ID_MARKER,
        "LogicalResourceId": event["LogicalResourceId"],
    }


def code_files(code_zip: bytes) -> dict[str, bytes]:
    """The files of a Lambda function's zip, by name."""
    with zipfile.ZipFile(io.BytesIO(code_zip)) as archive:
        return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}


def provider_mismatch(*, handler: str | None, description: str | None, code_zip: bytes) -> str | None:
    """Why a Lambda function is not the VpcRestrictDefaultSG provider the stand-in mirrors; None if it is."""
    if handler != PROVIDER_HANDLER:
        return f"handler {handler!r}, not {PROVIDER_HANDLER!r}"
    if description != PROVIDER_DESCRIPTION:
        return f"description {description!r}, not CDK's VpcRestrictDefaultSG provider's"
    try:
        files = code_files(code_zip)
    except zipfile.BadZipFile:
        return "its code is not a zip file"
    digests = {name: hashlib.sha256(content).hexdigest() for name, content in sorted(files.items())}
    if digests != PROVIDER_CODE_SHA256:
        return f"code differs from the handler the stand-in mirrors (aws-cdk-lib changed it?): sha256 {digests}"
    return None


def kit_handler_mismatch(code_zip: bytes, module: str) -> str | None:
    """Why a function's code is not this checkout's stacks/handlers files for ``module``; None if it is."""
    try:
        files = code_files(code_zip)
    except zipfile.BadZipFile:
        return "its code is not a zip file"
    from stacks.handler_code import STACKS_DIR, handler_files

    expected = {path: (STACKS_DIR / path).read_bytes() for path in handler_files(module)}
    if files != expected:
        return f"its code is not this checkout's stacks/handlers ({sorted(files)} vs {sorted(expected)})"
    return None


@dataclass(frozen=True)
class LambdaContext:
    """What the kit's handlers read of Lambda's context object."""

    log_stream_name: str = "rehearsal"
    remaining_millis: int = 900_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def check_response_url(url: str, port: int) -> None:
    """Refuse any ResponseURL that is not this rehearsal's moto server."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("localhost", HOST) or parts.port != port:
        raise RehearsalError(f"refusing to send a custom-resource response to {url}: not this rehearsal's server")


def response_region(url: str) -> str:
    """The region of the stack a ResponseURL answers: moto writes it into the path, ``/cloudformation_REGION/...``."""
    match = RESPONSE_PATH.match(urlsplit(url).path)
    if match is None:
        raise RehearsalError(f"refusing to send a custom-resource response to {url}: not moto's cfnresponse path")
    return match["region"]


def response_opener(url: str) -> urllib.request.OpenerDirector:
    """An opener for answers to ``url``: no proxy, and a User-Agent naming the stack's region.

    moto files an answer under the region of the request, which it takes from the host name, the User-Agent's
    ``region/NAME`` or the signature, never from the path it wrote the region into; this unsigned PUT to
    localhost has none of them, so without the header every answer would go to us-east-1's stacks (HTTP 400
    for a stack anywhere else).
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    opener.addheaders = [("User-Agent", f"rtb-rehearsal region/{response_region(url)}")]
    return opener


def put_response(url: str, body: Mapping[str, Any]) -> None:
    """PUT ``body`` to ``url`` as __entrypoint__.js does (JSON, empty content type); no proxy, loopback only."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="PUT", headers={"content-type": ""})
    opener = response_opener(url)
    with opener.open(request, timeout=HTTP_TIMEOUT_SECONDS):
        pass  # urllib raises on an HTTP error status


@dataclass
class Answer:
    """What the stand-in did for one custom-resource request."""

    logical_id: str
    status: str
    outcomes: list[str]


@dataclass
class LambdaStandIn:
    """Takes the place of moto's Docker call for every Lambda invocation.

    Runs the stand-in for CDK's VpcRestrictDefaultSG provider and refuses every other function. It runs in
    moto's threads, where an exception would vanish, so failures are collected for the main thread.
    """

    ec2: Any
    port: int
    cloudformation: Any = None
    send: Callable[[str, Mapping[str, Any]], None] = put_response
    failures: list[str] = field(default_factory=list, init=False)
    answers: dict[str, Answer] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __call__(self, function: Any, event: Any) -> tuple[str, bool, str]:
        """moto's ``LambdaFunction._invoke_lambda``: returns (payload, errored, logs)."""
        try:
            self._invoke(function, event)
        except Exception as error:
            self._fail(f"Lambda function {getattr(function, 'function_name', '?')}: {error}")
            return str(error), True, ""
        return "null", False, ""

    def raise_if_failed(self) -> None:
        with self._lock:
            if self.failures:
                raise RehearsalError(self.failures[0])

    def _fail(self, reason: str) -> None:
        with self._lock:
            self.failures.append(" ".join(reason.split()))

    def _invoke(self, function: Any, event: Any) -> None:
        if function.handler in KIT_HANDLERS:
            self._invoke_kit_handler(function, event)
            return
        mismatch = provider_mismatch(
            handler=function.handler, description=function.description, code_zip=function.code_bytes
        )
        if mismatch is not None:
            raise RehearsalError(
                f"invoked, but moto cannot run Lambda code and there is no stand-in for it ({mismatch})"
            )
        if not isinstance(event, dict) or event.get("ResourceType") != PROVIDER_RESOURCE_TYPE:
            raise RehearsalError(
                f"invoked with something other than a {PROVIDER_RESOURCE_TYPE} request: {event!r:.200}"
            )
        check_response_url(event["ResponseURL"], self.port)
        outcomes, error = self._run(handler_calls(event))
        body = response_body(event, error=error)
        self.send(event["ResponseURL"], body)
        with self._lock:
            self.answers[event["LogicalResourceId"]] = Answer(event["LogicalResourceId"], body["Status"], outcomes)
        if error is not None:
            # moto ignores a FAILED answer (the stack would still complete), so the rehearsal fails here.
            raise RehearsalError(f"the {PROVIDER_RESOURCE_TYPE} stand-in answered FAILED: {error}")

    def _invoke_kit_handler(self, function: Any, event: Any) -> None:
        """Run one of the kit's own handlers on moto's EC2 and CloudFormation APIs."""
        from stacks.handlers import eni_cleanup, zonal_dns

        module, resource_type = KIT_HANDLERS[function.handler]
        mismatch = kit_handler_mismatch(function.code_bytes, module)
        if mismatch is not None:
            raise RehearsalError(f"{function.handler}: {mismatch}")
        if not isinstance(event, dict) or event.get("ResourceType") != resource_type:
            raise RehearsalError(f"invoked with something other than a {resource_type} request: {event!r:.200}")
        check_response_url(event["ResponseURL"], self.port)
        loopback = response_opener(event["ResponseURL"])
        if module == "eni_cleanup":
            body = eni_cleanup.handler(
                event,
                LambdaContext(),
                clients=lambda: eni_cleanup.Clients(ec2=self.ec2, cloudformation=self.cloudformation),
                opener=loopback.open,
            )
        else:
            body = zonal_dns.handler(event, LambdaContext(), ec2=lambda: self.ec2, opener=loopback.open)
        logical_id = event["LogicalResourceId"]
        outcome = f"the kit's handler: {event['RequestType']}"
        if body["Data"].get("Json"):
            outcome += f", zonal DNS names {body['Data']['Json']}"
        with self._lock:
            self.answers[logical_id] = Answer(logical_id, body["Status"], [outcome])
        if body["Status"] != "SUCCESS":
            raise RehearsalError(f"the kit's {resource_type} handler answered FAILED: {body['Reason']}")

    def _run(self, calls: list[Ec2Call]) -> tuple[list[str], str | None]:
        outcomes: list[str] = []
        for call in calls:
            try:
                getattr(self.ec2, call.method)(**call.params)
            except ClientError as client_error:
                code = client_error.response.get("Error", {}).get("Code", "")
                if call.ignore_not_found and code == "InvalidPermission.NotFound":
                    outcomes.append(f"{call.method}: {code} (ignored, as CDK's handler does)")
                    continue
                return outcomes, f"{call.method} failed: {client_error}"
            outcomes.append(f"{call.method}: done")
        return outcomes, None


# --- moto in this process --------------------------------------------------------------------------------


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


# --- the run --------------------------------------------------------------------------------------------

_started = time.monotonic()


def progress(message: str) -> None:
    print(f"[rehearse {time.monotonic() - _started:6.1f}s] {message}", flush=True)


def remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RehearsalError(f"{what}: stopped at the --timeout, {time.monotonic() - _started:.0f} s after the start")
    return left


def run_cli(what: str, args: list[str], *, env: Mapping[str, str], deadline: float, check: Callable[[], None]) -> None:
    """Run the pinned CDK CLI in its own process group; stop it when ``check`` raises, at the deadline or on Ctrl-C.

    Its output is passed through; the last line names the cause when it fails.
    """
    progress(f"{what}: cdk {' '.join(args)}")
    process = subprocess.Popen(
        [str(CDK), *args],
        cwd=REPO_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    last_line: list[str] = []
    echo = threading.Thread(target=pass_through, args=(process, last_line), daemon=True)
    echo.start()
    try:
        while process.poll() is None:
            check()
            remaining(deadline, what)
            time.sleep(0.2)
    finally:
        stop_process_group(process)
        echo.join(timeout=5)
    if process.returncode != 0:
        cause = f": {last_line[0]}" if last_line else " (its output is above)"
        raise RehearsalError(f"{what} exited with status {process.returncode}{cause}")
    check()


def pass_through(process: subprocess.Popen[bytes], last_line: list[str]) -> None:
    """Copy the CLI's output to ours, keeping its last non-blank line in ``last_line``."""
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode(errors="replace")
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.strip():
            last_line[:] = [line.strip()]


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s, to the CLI and everything it started (the app's Python, node)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


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


@dataclass
class Summary:
    stack_status: str
    endpoint_name: str
    endpoint_status: str
    model_image: str
    runtime_vpc_endpoint: str
    s3_vpc_endpoint: str
    default_security_group: str
    zonal_dns_names: str
    stand_in: list[Answer]
    skipped_types: list[str]


def one(items: list[Any], what: str) -> Any:
    if len(items) != 1:
        raise RehearsalError(f"expected exactly one {what}, found {len(items)}")
    return items[0]


def verify(clients: Mapping[str, Any], target: Target) -> Summary:
    """Read back through the APIs what moto built; RehearsalError on the first difference."""
    name, runtime_service, s3_service = target.stack, target.runtime_service, target.s3_service
    cfn, sagemaker, ec2 = clients["cloudformation"], clients["sagemaker"], clients["ec2"]
    status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        raise RehearsalError(f"stack {name} is {status}, not CREATE_COMPLETE")
    physical: dict[str, list[str]] = {}
    for resource in cfn.describe_stack_resources(StackName=name)["StackResources"]:
        if "ResourceType" in resource:  # moto lists each resource it skipped as an entry without type or id
            physical.setdefault(resource["ResourceType"], []).append(resource.get("PhysicalResourceId", ""))

    endpoint_id = one(physical.get("AWS::SageMaker::Endpoint", []), "AWS::SageMaker::Endpoint in the stack")
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_id.rsplit("/", 1)[-1])
    if endpoint["EndpointStatus"] != "InService":
        raise RehearsalError(f"SageMaker endpoint {endpoint['EndpointName']} is {endpoint['EndpointStatus']}")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = one(config["ProductionVariants"], f"production variant of {config['EndpointConfigName']}")
    image = sagemaker.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]["Image"]
    if image != target.image:
        raise RehearsalError(f"the model runs {image}, not {target.image}, the image published in {target.region}")

    vpc_id = one(physical.get("AWS::EC2::VPC", []), "AWS::EC2::VPC in the stack")
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    endpoints = ec2.describe_vpc_endpoints(Filters=in_vpc)["VpcEndpoints"]
    runtime = one(
        [e for e in endpoints if e["ServiceName"] == runtime_service and e["VpcEndpointType"] == "Interface"],
        f"interface endpoint for {runtime_service}",
    )
    if not runtime.get("PrivateDnsEnabled"):
        raise RehearsalError(f"interface endpoint {runtime['VpcEndpointId']} has private DNS off")
    gateway = one(
        [e for e in endpoints if e["ServiceName"] == s3_service and e["VpcEndpointType"] == "Gateway"],
        f"gateway endpoint for {s3_service}",
    )
    stack_endpoints = set(physical.get("AWS::EC2::VPCEndpoint", []))
    if stack_endpoints != {runtime["VpcEndpointId"], gateway["VpcEndpointId"]}:
        raise RehearsalError(f"the stack's VPC endpoints {sorted(stack_endpoints)} are not the ones found")
    zonal = check_zonal_names(cfn.describe_stacks(StackName=name)["Stacks"][0], runtime, ec2)

    default_filter = [*in_vpc, {"Name": "group-name", "Values": ["default"]}]
    group = one(ec2.describe_security_groups(Filters=default_filter)["SecurityGroups"], "default security group")
    if group["IpPermissions"] or group["IpPermissionsEgress"]:
        raise RehearsalError(f"default security group {group['GroupId']} still has rules: the stand-in did not run")
    return Summary(
        stack_status=status,
        endpoint_name=endpoint["EndpointName"],
        endpoint_status=endpoint["EndpointStatus"],
        model_image=image,
        runtime_vpc_endpoint=f"{runtime['VpcEndpointId']} (Interface, {runtime_service}, private DNS on)",
        s3_vpc_endpoint=f"{gateway['VpcEndpointId']} (Gateway, {s3_service})",
        default_security_group=f"{group['GroupId']}: no ingress, no egress rules",
        zonal_dns_names=zonal,
        stand_in=[],
        skipped_types=[],
    )


def check_zonal_names(stack: Mapping[str, Any], runtime: Mapping[str, Any], ec2: Any) -> str:
    """The stack's RuntimeZonalDnsNames output names, for each AZ of the runtime endpoint's subnets, that AZ's
    zonal name among the endpoint's DnsEntries; a summary line, or RehearsalError."""
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    if "RuntimeZonalDnsNames" not in outputs:
        raise RehearsalError(f"the stack has no RuntimeZonalDnsNames output (it has {sorted(outputs)})")
    published = json.loads(outputs["RuntimeZonalDnsNames"])
    subnets = ec2.describe_subnets(SubnetIds=runtime["SubnetIds"])["Subnets"]
    azs = sorted({subnet["AvailabilityZone"] for subnet in subnets})
    entries = {entry["DnsName"] for entry in runtime.get("DnsEntries", [])}
    wrong = {
        az: published.get(az)
        for az in azs
        if published.get(az) not in entries or not str(published[az]).split(".", 1)[0].endswith(f"-{az}")
    }
    if wrong or sorted(published) != azs:
        raise RehearsalError(f"RuntimeZonalDnsNames {published} does not name each AZ's zonal DNS entry of {azs}")
    return f"{', '.join(azs)}: each its AZ's entry of {runtime['VpcEndpointId']}"


def boto3_clients(endpoint_url: str, region: str) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    )
    config = Config(connect_timeout=HTTP_TIMEOUT_SECONDS, read_timeout=30, retries={"max_attempts": 2}, proxies={})
    return {
        service: session.client(service, endpoint_url=endpoint_url, config=config)
        for service in ("cloudformation", "sagemaker", "ec2", "ssm")
    }


def check_bootstrapped(ssm: Any, target: Target) -> None:
    """After ``cdk bootstrap``: its version parameter is where ``cdk deploy`` will read it, the stack's region."""
    try:
        ssm.get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise
        raise RehearsalError(
            f"cdk bootstrap left no {BOOTSTRAP_VERSION_PARAMETER} in {target.environment}, where cdk deploy "
            f"reads it (bootstrapped another region or qualifier?)"
        ) from None


def rehearse(target: Target, port: int, deadline: float) -> Summary:
    """The whole rehearsal of ``target``; the server is stopped however this ends."""
    name = target.stack
    skipped = SkippedTypes()
    logging.getLogger("moto").addFilter(skipped)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    warnings.filterwarnings("ignore", message=r"Tried to parse .* not supported by moto", category=UserWarning)

    progress(f"starting moto {MOTO_VERSION} on {HOST} (in this process)")
    with (
        tempfile.TemporaryDirectory(prefix="rehearse-") as tmp,
        refusing_port() as dead_port,
        running_moto(port) as (port, moto_alive),
    ):
        endpoint_url = f"http://localhost:{port}"
        clients = boto3_clients(endpoint_url, target.region)
        stand_in = LambdaStandIn(ec2=clients["ec2"], port=port, cloudformation=clients["cloudformation"])
        with lambda_routed_to(stand_in, port):
            progress(
                f"moto listening on {HOST}:{port}; the CLI gets AWS_ENDPOINT_URL={endpoint_url}, region {target.region}"
            )
            env = isolated_environment(
                os.environ,
                endpoint_url=endpoint_url,
                region=target.region,
                cdk_home=Path(tmp, "cdk-home"),
                dead_proxy=f"http://{HOST}:{dead_port}",
            )
            output = Path(tmp, "cdk.out")

            def check() -> None:
                stand_in.raise_if_failed()
                if not moto_alive():
                    raise RehearsalError(f"moto's server on {HOST}:{port} stopped during the run")

            (bootstrap, bootstrap_args), (deploy, deploy_args) = cli_commands(target, output)
            run_cli(bootstrap, bootstrap_args, env=env, deadline=deadline, check=check)
            # Only the bootstrap stack exists yet: whatever moto skipped so far is in it.
            check_skips(BOOTSTRAP_STACK, unexpected_skips(skipped.types, None, KNOWN_SKIPPED_BOOTSTRAP))
            check_bootstrapped(clients["ssm"], target)
            run_cli(deploy, deploy_args, env=env, deadline=deadline, check=check)
            template = json.loads(Path(output, f"{name}.template.json").read_text())
            types = {str(resource.get("Type")) for resource in template.get("Resources", {}).values()}
            check_skips(name, unexpected_skips(skipped.types, types, KNOWN_SKIPPED_APP))

            progress("waiting for the custom resources' answers")
            wait_for_custom_resources(target, template, stand_in, deadline)
            progress("verifying through the CloudFormation, SageMaker and EC2 APIs")
            summary = verify(clients, target)
            summary.stand_in = list(stand_in.answers.values())
            summary.skipped_types = sorted(skipped.types & types)
            return summary


def check_skips(stack: str, unexpected: list[str]) -> None:
    if unexpected:
        raise RehearsalError(f"moto skipped resource types it cannot create in {stack}: {', '.join(unexpected)}")


def print_summary(target: Target, summary: Summary, elapsed: float) -> None:
    lines = [
        f"rehearsal of {target.stack} in {target.environment} against moto: OK in {elapsed:.1f} s",
        f"  stack status            {summary.stack_status}",
        f"  SageMaker endpoint      {summary.endpoint_name} ({summary.endpoint_status})",
        f"  model image             {summary.model_image}",
        f"  runtime VPC endpoint    {summary.runtime_vpc_endpoint}",
        f"  S3 VPC endpoint         {summary.s3_vpc_endpoint}",
        f"  default security group  {summary.default_security_group}",
        f"  zonal DNS names         {summary.zonal_dns_names}",
    ]
    for answer in summary.stand_in:
        lines.append(f"  stand-in                {answer.logical_id}: {answer.status}")
        lines.extend(f"                            {outcome}" for outcome in answer.outcomes)
    lines.append(f"  not rehearsed (moto skipped them): {', '.join(summary.skipped_types) or 'none'}")
    lines.append("  a green rehearsal is not a real deploy: see the docstring of scripts/rehearse.py")
    print("\n".join(lines), flush=True)


def load_target(stage: str, *, region: str | None = None) -> Target:
    """The target of stage ``stage`` as stacks/stages.py defines it; RehearsalError if it is unknown or invalid."""
    from stacks.settings import SettingsError
    from stacks.stages import load_stage

    try:
        settings = load_stage(stage)
    except SettingsError as error:
        raise RehearsalError("; ".join([str(error).splitlines()[0].rstrip(":"), *error.problems])) from None
    return target_of(settings, region=region)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stage", default="dev", help="the stage to deploy (default: dev)")
    parser.add_argument(
        "--region",
        help=f"the region of a stage without one (environment-agnostic; default: {DEFAULT_REGION}); "
        "a stage that names its region is rehearsed there",
    )
    parser.add_argument("--port", type=int, default=0, help="moto's port on 127.0.0.1 (default: a free port)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds for the whole run (default: {DEFAULT_TIMEOUT_SECONDS:.0f})",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port < 65536:
        parser.error(f"--port {args.port}: not a TCP port")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C, and CI's cancel (SIGTERM), unwind through the finally blocks that stop the CLI and the server; set
    # explicitly because a shell without job control starts background commands with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    started = _started  # the clock of the progress lines
    try:
        target = load_target(args.stage, region=args.region)
        summary = rehearse(target, args.port, started + args.timeout)
    except RehearsalError as error:
        print(f"rehearse: FAILED after {time.monotonic() - started:.1f} s: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"rehearse: interrupted after {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        return 130
    except Exception as error:  # a bug or an API surprise: the traceback, then the one-line reason
        traceback.print_exc()
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        print(f"rehearse: FAILED after {time.monotonic() - started:.1f} s: {reason}", file=sys.stderr, flush=True)
        return 1
    print_summary(target, summary, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
