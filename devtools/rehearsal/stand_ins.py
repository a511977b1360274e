"""The stand-ins for the Lambda code moto cannot run: the dispatcher that takes the place of moto's Docker call,
the kit's own handlers run in this process, and a Python mirror of CDK's VpcRestrictDefaultSG provider."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from devtools.rehearsal.base import HOST, HTTP_TIMEOUT_SECONDS, RehearsalError

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


# --- which function is which: CDK's provider, the kit's handlers -------------------------------------------


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


# --- running the kit's handlers, and the answer PUT to moto's ResponseURL ----------------------------------


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


# --- the dispatcher in place of moto's Docker call ---------------------------------------------------------


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
