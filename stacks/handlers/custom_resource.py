"""The custom-resource protocol for the kit's handlers: answer CloudFormation's request exactly once.

A handler that raises, or never answers, leaves CloudFormation waiting for an hour; ``run`` turns every
outcome, errors included, into one SUCCESS or FAILED response on the pre-signed ResponseURL.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

LOG = logging.getLogger(__name__)
# CloudFormation ignores a response body over 4096 bytes (and the stack then waits for the timeout).
MAX_BODY_BYTES = 4096
# A readable cap on the reason CloudFormation shows in the stack events.
MAX_REASON = 1000

Event = Mapping[str, Any]
# (physical resource id, attributes for Fn::GetAtt)
Outcome = tuple[str, dict[str, str]]
Action = Callable[[Event, Any], Outcome]
Opener = Callable[..., Any]


def response_body(
    event: Event, *, status: str, physical_id: str, reason: str = "", data: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "Status": status,
        "Reason": reason[:MAX_REASON],
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": dict(data or {}),
    }


def encode(body: Mapping[str, Any]) -> bytes:
    """The JSON body, its Reason cut (by UTF-8 bytes) so the whole stays within MAX_BODY_BYTES."""
    reason = str(body.get("Reason", ""))
    without = json.dumps({**body, "Reason": ""}, ensure_ascii=False).encode()
    room = MAX_BODY_BYTES - len(without)
    encoded = reason.encode()
    if len(json.dumps(reason, ensure_ascii=False).encode()) - 2 > room:
        # JSON escaping may grow the text (quotes, control characters): leave it a margin.
        encoded = encoded[: max(0, room // 2)]
        reason = encoded.decode(errors="ignore")
    return json.dumps({**body, "Reason": reason}, ensure_ascii=False).encode()


def respond(event: Event, body: Mapping[str, Any], *, opener: Opener = urllib.request.urlopen) -> None:
    """PUT the body to the pre-signed ResponseURL (S3). Content-Type must be empty for the signature."""
    payload = encode(body)
    request = urllib.request.Request(
        event["ResponseURL"],
        data=payload,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(payload))},
    )
    with opener(request, timeout=30) as reply:
        LOG.info("answered %s %s: HTTP %s", body["Status"], event["LogicalResourceId"], reply.status)


def run(event: Event, context: Any, action: Action, *, opener: Opener = urllib.request.urlopen) -> dict[str, Any]:
    """Run ``action`` for the request and answer CloudFormation with its outcome; returns the body sent."""
    fallback_id = str(event.get("PhysicalResourceId") or getattr(context, "log_stream_name", "") or event["RequestId"])
    try:
        physical_id, data = action(event, context)
        body = response_body(event, status="SUCCESS", physical_id=physical_id, data=data)
    except Exception as error:  # every failure must reach CloudFormation, not only the expected ones
        LOG.exception("%s %s failed", event.get("RequestType"), event.get("LogicalResourceId"))
        body = response_body(event, status="FAILED", physical_id=fallback_id, reason=f"{type(error).__name__}: {error}")
    respond(event, body, opener=opener)
    return body


def remaining_seconds(context: Any, default: float = 600.0) -> float:
    """Seconds left before Lambda stops the function (``default`` outside Lambda)."""
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return getter() / 1000.0 if callable(getter) else default
