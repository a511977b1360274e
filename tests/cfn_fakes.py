"""Fakes for the custom-resource handlers' tests: CloudFormation's pre-signed response URL."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


class FakeReply:
    """What urlopen returns for S3's answer to the PUT."""

    status = 200

    def __enter__(self) -> FakeReply:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FakeOpener:
    """Stands in for urllib.request.urlopen and keeps every request (and timeout) it is given."""

    def __init__(self) -> None:
        self.requests: list[urllib.request.Request] = []
        self.timeouts: list[float] = []

    def __call__(self, request: urllib.request.Request, timeout: float) -> FakeReply:
        self.requests.append(request)
        self.timeouts.append(timeout)
        return FakeReply()

    def body(self, url: str | None = None) -> dict[str, Any]:
        """The one response body sent (to ``url``, if given), parsed; fails unless exactly one PUT was made."""
        (request,) = self.requests
        assert request.get_method() == "PUT"
        assert url is None or request.full_url == url
        assert isinstance(request.data, bytes)
        parsed: dict[str, Any] = json.loads(request.data)
        return parsed
