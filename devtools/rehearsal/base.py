"""What every part of the rehearsal shares: the loopback host and moto's account, the fake credentials, the
one-line failure (RehearsalError) and the clock of the progress lines."""

from __future__ import annotations

import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
ACCOUNT = "123456789012"  # moto's default account
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
HTTP_TIMEOUT_SECONDS = 10.0


class RehearsalError(Exception):
    """A failed rehearsal; the message is the one-line reason."""


STARTED = time.monotonic()  # the clock of the progress lines and of the --timeout


def progress(message: str) -> None:
    print(f"[rehearse {time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RehearsalError(f"{what}: stopped at the --timeout, {time.monotonic() - STARTED:.0f} s after the start")
    return left
