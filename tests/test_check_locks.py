"""The lock files: exact, public pins, consistent across the three layers, and the tools' own locks
(checkov's venv) exact and public too (scripts/check_locks.py).

Resolving them against PyPI needs the network, so `make check-locks` does that in CI; these checks are the
offline half, and they fail on the planted mistakes that broke installs before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools import check_locks


def copy_layers(tmp_path: Path) -> tuple[check_locks.Layer, ...]:
    copied = []
    for layer in check_locks.LAYERS:
        (tmp_path / "locks").mkdir(exist_ok=True)
        requirements = Path(shutil.copy(layer.requirements, tmp_path / layer.requirements.name))
        lock = Path(shutil.copy(layer.lock, tmp_path / "locks" / layer.lock.name))
        copied.append(check_locks.Layer(requirements, lock))
    return tuple(copied)


def copy_tools(tmp_path: Path) -> tuple[check_locks.Layer, ...]:
    (tmp_path / "locks").mkdir(exist_ok=True)
    return tuple(
        check_locks.Layer(
            Path(shutil.copy(tool.requirements, tmp_path / tool.requirements.name)),
            Path(shutil.copy(tool.lock, tmp_path / "locks" / tool.lock.name)),
        )
        for tool in check_locks.TOOLS
    )


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_the_committed_locks_are_exact_public_and_consistent() -> None:
    assert check_locks.offline_problems() == []


def test_a_planted_local_version_pin_is_refused(tmp_path: Path) -> None:
    layers = copy_layers(tmp_path)
    replace_in(layers[2].lock, "\ntorch==2.13.0 ", "\ntorch==2.13.0+cpu ")
    problems = check_locks.offline_problems(layers)
    assert any("torch==2.13.0+cpu has a local version ('+cpu')" in problem for problem in problems), problems


def test_a_layer_pinning_another_version_than_the_layer_below_is_refused(tmp_path: Path) -> None:
    layers = copy_layers(tmp_path)
    replace_in(layers[1].lock, "\nboto3==1.44.5 ", "\nboto3==1.44.4 ")
    problems = check_locks.offline_problems(layers)
    assert any("dev.txt: boto3 is '1.44.4', " in problem and "pins '1.44.5'" in problem for problem in problems)


def test_a_requirement_missing_from_its_lock_is_refused(tmp_path: Path) -> None:
    layers = copy_layers(tmp_path)
    replace_in(layers[0].requirements, "cfn-lint==1.58.0", "cfn-lint==1.58.1")
    problems = check_locks.offline_problems(layers)
    assert any("does not pin cfn-lint==1.58.1 from requirements.txt" in problem for problem in problems), problems


def test_a_range_or_an_index_option_is_refused(tmp_path: Path) -> None:
    layers = copy_layers(tmp_path)
    replace_in(layers[0].lock, "\nconstructs==10.8.1 ", "\n--find-links /opt/wheels\nconstructs>=10.8 ")
    problems = check_locks.offline_problems(layers)
    assert any("'--find-links /opt/wheels' is not an exact name==version pin" in problem for problem in problems)
    assert any("'constructs>=10.8' is not an exact name==version pin" in problem for problem in problems)


def test_the_resolution_asks_pypi_alone_for_wheels_on_each_platform() -> None:
    command = check_locks.resolution_command(Path("locks/dev.txt"), "aarch64-apple-darwin")
    assert {"--no-config", "--no-cache"} <= set(command)
    assert command[command.index("--default-index") + 1] == "https://pypi.org/simple"
    assert command[command.index("--only-binary") + 1] == ":all:"
    assert command[command.index("--python-platform") + 1] == "aarch64-apple-darwin"
    assert "--find-links" not in command and "--extra-index-url" not in command
    assert set(check_locks.PLATFORMS) == {"x86_64-manylinux_2_28", "aarch64-apple-darwin"}


def test_checkov_has_its_own_lock_shared_with_no_layer() -> None:
    (checkov,) = check_locks.TOOLS
    assert checkov.lock.name == "checkov.txt"
    assert checkov not in check_locks.LAYERS
    # Its boto3 is older than the layers': were it a layer, the consistency check would refuse it.
    tool_pins, _ = check_locks.pins(checkov.lock.read_text(encoding="utf-8"), "checkov.txt")
    synth_pins, _ = check_locks.pins(check_locks.LAYERS[0].lock.read_text(encoding="utf-8"), "synth.txt")
    assert tool_pins[("boto3", "")] != synth_pins[("boto3", "")]


def test_a_planted_local_version_in_a_tool_lock_is_refused(tmp_path: Path) -> None:
    (checkov,) = copy_tools(tmp_path)
    replace_in(checkov.lock, "\nrequests==", "\nrequests==2.34.2+local #")
    problems = check_locks.offline_problems(layers=(), tools=(checkov,))
    assert any("checkov.txt" in problem and "has a local version ('+local')" in problem for problem in problems)


def test_a_tool_requirement_missing_from_its_lock_is_refused(tmp_path: Path) -> None:
    (checkov,) = copy_tools(tmp_path)
    requirement = next(line for line in checkov.requirements.read_text().splitlines() if line.startswith("checkov=="))
    replace_in(checkov.requirements, requirement, "checkov==0.0.1")
    problems = check_locks.offline_problems(layers=(), tools=(checkov,))
    assert any("does not pin checkov==0.0.1 from requirements-checkov.txt" in problem for problem in problems), problems


def test_check_locks_resolves_the_tool_locks_too(monkeypatch: pytest.MonkeyPatch) -> None:
    resolved: list[Path] = []

    def resolve(locks: list[Path]) -> list[str]:
        resolved.extend(locks)
        return []

    monkeypatch.setattr(check_locks, "resolution_problems", resolve)
    check_locks.main([])  # its offline half's verdict is test_the_committed_locks_are_exact_public_and_consistent's
    assert resolved == [layer.lock for layer in check_locks.LAYERS] + [tool.lock for tool in check_locks.TOOLS]
