"""stacks/handlers/custom_resource.py: every request is answered once, with a PUT CloudFormation accepts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from stacks.handlers.custom_resource import MAX_REASON, Event, Outcome, remaining_seconds, run

from .cfn_fakes import FakeOpener

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/RtbInference-dev/0b1c2d3e"
URL = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?X-Amz-Signature=abc"


def event(request_type: str = "Create", **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": URL,
        "StackId": STACK_ID,
        "RequestId": "req-1",
        "LogicalResourceId": "EniCleanup",
        "ResourceType": "Custom::EniCleanup",
        "ResourceProperties": {"ServiceToken": "arn"},
        **extra,
    }


def succeed(physical_id: str = "pid-1", data: dict[str, str] | None = None) -> Any:
    def action(_event: Event, _context: Any) -> Outcome:
        return physical_id, data or {}

    return action


def fail(message: str) -> Any:
    def action(_event: Event, _context: Any) -> Outcome:
        raise RuntimeError(message)

    return action


def test_success_is_one_put_with_an_empty_content_type_and_the_fields_cloudformation_reads() -> None:
    opener = FakeOpener()
    sent = run(event(), None, succeed("pid-1", {"Name": "x"}), opener=opener)
    (request,) = opener.requests
    assert request.get_method() == "PUT"
    assert request.full_url == URL
    # The pre-signed URL is signed without a content type: urllib must not add its form default.
    assert request.get_header("Content-type") == ""
    assert isinstance(request.data, bytes)
    assert request.get_header("Content-length") == str(len(request.data))
    assert opener.timeouts == [30]
    assert opener.body() == sent
    assert sent == {
        "Status": "SUCCESS",
        "Reason": "",
        "PhysicalResourceId": "pid-1",
        "StackId": STACK_ID,
        "RequestId": "req-1",
        "LogicalResourceId": "EniCleanup",
        "NoEcho": False,
        "Data": {"Name": "x"},
    }


def test_an_exception_is_answered_failed_with_its_type_and_message() -> None:
    opener = FakeOpener()
    sent = run(event("Delete", PhysicalResourceId="pid-1"), None, fail("boom"), opener=opener)
    assert len(opener.requests) == 1
    assert sent["Status"] == "FAILED"
    assert sent["Reason"] == "RuntimeError: boom"
    assert sent["PhysicalResourceId"] == "pid-1"
    assert sent["Data"] == {}


def test_a_long_reason_is_cut_to_what_cloudformation_shows() -> None:
    sent = run(event(), None, fail("x" * 5000), opener=FakeOpener())
    assert len(sent["Reason"]) == MAX_REASON
    assert sent["Reason"].startswith("RuntimeError: xxx")


def test_a_failed_create_reports_the_log_stream_as_physical_id() -> None:
    context = SimpleNamespace(log_stream_name="2026/11/21/[$LATEST]abc")
    sent = run(event(), context, fail("bad properties"), opener=FakeOpener())
    assert sent["PhysicalResourceId"] == "2026/11/21/[$LATEST]abc"


def test_a_failed_create_outside_lambda_falls_back_to_the_request_id() -> None:
    sent = run(event(), object(), fail("bad properties"), opener=FakeOpener())
    assert sent["PhysicalResourceId"] == "req-1"


def test_a_failed_update_keeps_the_physical_id_it_was_given() -> None:
    context = SimpleNamespace(log_stream_name="stream")
    sent = run(event("Update", PhysicalResourceId="pid-old"), context, fail("nope"), opener=FakeOpener())
    assert sent["PhysicalResourceId"] == "pid-old"


def test_remaining_seconds_reads_the_lambda_context_or_falls_back() -> None:
    assert remaining_seconds(SimpleNamespace(get_remaining_time_in_millis=lambda: 123_456)) == 123.456
    assert remaining_seconds(None) == 600.0
    assert remaining_seconds(object(), default=5.0) == 5.0


# --- the real urllib PUT, received by a server on the loopback ----------------------------------------------


class Received:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes, list[str]]] = []


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Received]]:
    """An HTTP server on 127.0.0.1 (any free port) that records each request and answers 200."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            raw_names = [name for name, _ in self.headers.items()]
            received.requests.append((self.command, self.path, dict(self.headers.items()), body, raw_names))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/response?X-Amz-Signature=abc", received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_the_real_put_is_well_formed_on_the_wire(server: tuple[str, Received]) -> None:
    url, received = server
    sent = run(event(ResponseURL=url), None, succeed("pid-wire"))
    ((method, path, headers, body, names),) = received.requests
    assert method == "PUT"
    assert path == "/response?X-Amz-Signature=abc"
    lowered = {name.lower(): value for name, value in headers.items()}
    assert lowered["content-type"] == ""
    assert [name.lower() for name in names].count("content-type") == 1
    assert lowered["content-length"] == str(len(body))
    assert json.loads(body) == sent
    assert sent["Status"] == "SUCCESS"
    assert sent["PhysicalResourceId"] == "pid-wire"


def test_a_non_ascii_reason_and_a_long_id_stay_within_cloudformations_4096_bytes() -> None:
    from stacks.handlers.custom_resource import MAX_BODY_BYTES, encode, response_body

    event = {"StackId": "s" * 200, "RequestId": "r", "LogicalResourceId": "l", "ResponseURL": "u"}
    body = response_body(event, status="FAILED", physical_id="p" * 255, reason='é€\n"' * 900)
    payload = encode(body)
    assert len(payload) <= MAX_BODY_BYTES
    assert json.loads(payload)["Reason"].startswith("é€")
