"""Check that every pinned Python package of every layer (and of each tool's own venv) installs from PyPI alone.

Usage::

    python scripts/check_locks.py [--offline] [--lock FILE ...]

A pin that only resolves on one machine (a local wheel store, a private index, a ``+cpu`` local version)
breaks every other laptop and CI runner. Two checks, each failing with one line per problem:

* offline: each lock line is an exact ``name==version`` pin (a marker may follow) without a local version
  (PyPI refuses uploads with one) or an index, link or file option; each layer pins every package of the
  layer below it at the same version; each requirements file's own pins are in its lock. A tool with a venv
  of its own (checkov) has a lock of its own, checked alike but shared with no layer.
* with PyPI (unless ``--offline``): uv resolves each lock from https://pypi.org/simple alone, ignoring every
  pip and uv configuration of this machine, for Linux x86_64 and macOS arm64, wheels only.

Exit status: 0 clean, 1 problems found, 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/simple"
PYTHON_VERSION = "3.11"
PLATFORMS = ("x86_64-manylinux_2_28", "aarch64-apple-darwin")
# torch 2.13's macOS wheels need macOS 14 or newer: the kit supports Apple silicon from there.
MACOS_DEPLOYMENT_TARGET = "14.0"


@dataclass(frozen=True)
class Layer:
    """One install layer: its hand-edited requirements and the lock made from them."""

    requirements: Path
    lock: Path


LAYERS = (
    Layer(REPO_ROOT / "requirements.txt", REPO_ROOT / "locks" / "synth.txt"),
    Layer(REPO_ROOT / "requirements-dev.txt", REPO_ROOT / "locks" / "dev.txt"),
    Layer(REPO_ROOT / "requirements-model.txt", REPO_ROOT / "locks" / "model.txt"),
)
# Tools installed into venvs of their own: each lock stands alone (checkov pins an old boto3 and packaging<24,
# which the layers must not share).
TOOLS = (Layer(REPO_ROOT / "requirements-checkov.txt", REPO_ROOT / "locks" / "checkov.txt"),)

_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==([0-9A-Za-z!.+_-]+)", re.ASCII)


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def pins(text: str, source: str) -> tuple[dict[tuple[str, str], str], list[str]]:
    """(``{(name, marker): version}``, problems) of a requirements or lock file's lines."""
    found: dict[tuple[str, str], str] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content or content.startswith("-r ") or content.startswith("-c "):
            continue
        requirement, _, marker = (part.strip() for part in content.partition(";"))
        match = _PIN.fullmatch(requirement)
        if match is None:
            problems.append(f"{source}:{number}: {content!r} is not an exact name==version pin")
            continue
        name, _, version = match.groups()
        if "+" in version:
            problems.append(
                f"{source}:{number}: {name}=={version} has a local version ('+{version.split('+', 1)[1]}'): "
                "PyPI never has one; pin the public release"
            )
        found[(_name(name), marker)] = version
    return found, problems


def _lock_name(lock: Path) -> str:
    return lock.relative_to(REPO_ROOT).as_posix() if lock.is_relative_to(REPO_ROOT) else str(lock)


def lock_problems(layer: Layer) -> tuple[dict[tuple[str, str], str], list[str]]:
    """(the lock's pins, its problems): lines that are not exact public pins, requirements it does not pin."""
    lock_name = _lock_name(layer.lock)
    locked, problems = pins(layer.lock.read_text(encoding="utf-8"), lock_name)
    wanted, _ = pins(layer.requirements.read_text(encoding="utf-8"), layer.requirements.name)
    for (name, marker), version in sorted(wanted.items()):
        if locked.get((name, marker.replace('"', "'"))) != version and locked.get((name, "")) != version:
            problems.append(
                f"{lock_name}: does not pin {name}=={version} from {layer.requirements.name}: run make lock"
            )
    return locked, problems


def offline_problems(layers: Sequence[Layer] = LAYERS, tools: Sequence[Layer] = TOOLS) -> list[str]:
    """Every problem the lock files show without a network."""
    problems: list[str] = []
    below: dict[tuple[str, str], str] = {}
    below_name = ""
    for layer in layers:
        lock_name = _lock_name(layer.lock)
        locked, own_problems = lock_problems(layer)
        problems += own_problems
        for (name, marker), version in sorted(below.items()):
            if locked.get((name, marker)) != version:
                problems.append(
                    f"{lock_name}: {name}{'; ' + marker if marker else ''} is {locked.get((name, marker))!r}, "
                    f"{below_name} pins {version!r}: run make lock"
                )
        below, below_name = locked, lock_name
    for tool in tools:
        problems += lock_problems(tool)[1]
    return problems


def resolution_command(lock: Path, platform: str) -> list[str]:
    """uv resolving ``lock`` from PyPI alone for ``platform``: no config files, no find-links, wheels only."""
    return [
        str(Path(sys.executable).with_name("uv")),
        "pip",
        "compile",
        "--quiet",
        "--no-config",
        "--no-cache",
        "--default-index",
        PYPI,
        "--python-version",
        PYTHON_VERSION,
        "--python-platform",
        platform,
        "--only-binary",
        ":all:",
        "--output-file",
        "/dev/null",
        str(lock),
    ]


def resolution_problems(locks: Iterable[Path], platforms: Sequence[str] = PLATFORMS) -> list[str]:
    """One line per (lock, platform) that PyPI alone cannot satisfy, with uv's reason."""
    problems = []
    for lock in locks:
        for platform in platforms:
            # Nothing of this machine's pip or uv configuration reaches the resolver (its TLS trust and proxy do).
            env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "UV_"))}
            env.update(UV_NO_CONFIG="1", PIP_CONFIG_FILE=os.devnull, MACOSX_DEPLOYMENT_TARGET=MACOS_DEPLOYMENT_TARGET)
            done = subprocess.run(
                resolution_command(lock, platform), capture_output=True, text=True, env=env, check=False
            )
            if done.returncode != 0:
                reason = " ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
                problems.append(f"{lock.name} on {platform}: does not resolve from PyPI alone: {reason}")
            else:
                print(
                    f"check-locks: {lock.relative_to(REPO_ROOT) if lock.is_relative_to(REPO_ROOT) else lock} "
                    f"resolves from PyPI alone on {platform}"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--offline", action="store_true", help="only the checks that need no network")
    parser.add_argument(
        "--lock", type=Path, action="append", help="resolve this lock file instead of the layers' and the tools'"
    )
    args = parser.parse_args(argv)
    problems = [] if args.lock else offline_problems()
    if not args.offline:
        problems += resolution_problems(args.lock or [layer.lock for layer in (*LAYERS, *TOOLS)])
    for problem in problems:
        print(f"check-locks: {problem}", file=sys.stderr)
    if not problems:
        print("check-locks: every pin is exact, public and consistent across the layers")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
