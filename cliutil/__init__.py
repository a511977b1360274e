"""Command-line plumbing every kit command shares: one-line errors, AWS sessions, the pinned Node.js.

One-line errors and exit 2 for usage, loopback checks, the boto3 session for an endpoint URL, and the Node.js that
jsii runs on."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

# The Node.js package.json pins (npm ci installs it); `make` puts it first on PATH, a script run by hand
# would otherwise start jsii on the machine's node, which may be end of life (an 11-line banner per run).
PINNED_NODE = Path(__file__).resolve().parents[1] / "node_modules" / ".bin" / "node"


def use_pinned_node(environ: MutableMapping[str, str] = os.environ, node: Path = PINNED_NODE) -> None:
    """Before the CDK is imported: make jsii (which runs $JSII_NODE, else `node` from PATH) start the pinned
    Node.js, if it is installed and the user has not chosen one with JSII_NODE."""
    if "JSII_NODE" not in environ and node.is_file():
        environ["JSII_NODE"] = str(node)


class UsageError(ValueError):
    """A wrong argument or input: one line on stderr and exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus a message; the kit's tools raise UsageError and print one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def positive_int(text: str) -> int:
    """An argparse type: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"allowed: 1 or more, got {value}")
    return value


def one_line(error: BaseException) -> str:
    """The error's message on one line (CI logs and terminals read it whole), or its type if it has none."""
    return " ".join(str(error).split()) or type(error).__name__


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


# A local endpoint ignores SigV4 signatures and has no region; these stand in for the AWS configuration
# it does not need, so a fresh machine can call it. They are never used for any other URL.
LOOPBACK_REGION = "us-east-1"
LOOPBACK_KEY = "local-endpoint"


def aws_session(region: str | None = None, endpoint_url: str | None = None) -> Any:
    """A boto3 session for clients that call ``endpoint_url``: for a loopback URL, dummy static credentials
    and ``region`` or us-east-1; otherwise (real AWS, or no URL) the AWS configuration's, in ``region``."""
    import boto3  # here: the fake endpoint uses this module and needs no AWS SDK

    if endpoint_url is not None and is_loopback_url(endpoint_url):
        return boto3.Session(
            aws_access_key_id=LOOPBACK_KEY, aws_secret_access_key=LOOPBACK_KEY, region_name=region or LOOPBACK_REGION
        )
    return boto3.Session(region_name=region)
