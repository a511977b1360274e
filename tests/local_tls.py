"""Local HTTP(S) servers for the client's zonal path: a plain server (metadata services) and an HTTPS
InvokeEndpoint stand-in with a trustme certificate for a zonal vpce name, which tests/conftest.py's ``resolve``
fixture makes reachable under that name. Shared by tests/test_client_zonal.py and the probe's tests."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme

REGION = "us-east-1"
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")


def zonal(az: str, region: str = REGION, domain: str = "amazonaws.com") -> str:
    """A zonal name of the form DescribeVpcEndpoints lists (an example endpoint id and suffix)."""
    return f"vpce-0fe5b17a0707d6abc-29p5708s-{az}.runtime.sagemaker.{region}.vpce.{domain}"


NAMES = {az: zonal(az) for az in AZS}
# --- local servers: plain HTTP (metadata services) and HTTPS with a trustme certificate (the endpoint) -----


@dataclass
class Seen:
    """What a local server received: (method, path, lower-cased headers, body) per request, and TLS facts."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    handshake_failures: list[str] = field(default_factory=list)


Route = Callable[[str, str, dict[str, str]], tuple[int, bytes]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.seen.requests.append((self.command, self.path, headers, body))
        status, payload = self.server.route(self.command, self.path, headers)
        self.send_response(status)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on server_close, so Seen is complete once the server's block has ended.
    daemon_threads = False

    def __init__(self, route: Route, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.route, self.context, self.seen = route, context, Seen()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(30.0)
        try:  # the handshake runs in the handler's thread: a refused certificate ends only this connection
            wrapped = self.context.wrap_socket(request, server_side=True)
        except OSError as error:  # ssl.SSLError included
            self.seen.handshake_failures.append(str(error))
            return
        # wrap_socket detaches the plain socket that shutdown_request closes, so the TLS one is closed here.
        with wrapped:
            super().finish_request(wrapped, client_address)


@dataclass(frozen=True)
class Local:
    url: str
    port: int
    seen: Seen


@contextmanager
def serving(route: Route, context: ssl.SSLContext | None = None) -> Iterator[Local]:
    server = _Server(route, context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield Local(f"http://127.0.0.1:{port}", port, server.seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def _tls(ca: trustme.CA, certified_for: str, seen: list[str | None]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(certified_for).configure_cert(context)

    def record(_socket: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        seen.append(server_name)

    context.sni_callback = record
    return context


@contextmanager
def endpoint(ca: trustme.CA, certified_for: str, answer: bytes) -> Iterator[Local]:
    """An HTTPS InvokeEndpoint stand-in whose certificate (from ``ca``) names ``certified_for`` only."""
    server_names: list[str | None] = []
    with serving(lambda _method, _path, _headers: (200, answer), _tls(ca, certified_for, server_names)) as local:
        yield local
    local.seen.server_names.extend(server_names)
