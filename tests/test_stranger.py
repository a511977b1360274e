"""devtools/stranger.py, the tool behind `make try-as-a-stranger`, offline and fast: it edits stacks/stages.py as
the docs say, copies the tracked files with the working tree's changes, tells make not to reinstall, runs only
the accept commands the failures give, and reports a failure in a copy with its summary line. The nested suites
themselves are the CI target's job (.ci/run)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from devtools import stranger
from stacks.settings import SettingsError, StageSettings
from stacks.stage_loader import load_from
from stacks.stages import dev

from .conftest import REPO_ROOT

# stacks/stages.py as it is: the shipped stages, or a copy's after the tool (or a user) changed it.
STAGES_SOURCE = (REPO_ROOT / "stacks" / "stages.py").read_text()
SAMPLE_ARCHIVE = "model_artifacts/model.tar.gz"
COPIED = "copied-in-a-test"  # a stage name no one has: the tool's own may be in STAGES_SOURCE already
# Files a person would not write (a keyword on the line of another, a registry on one line).
CRAMPED = """\
def dev() -> StageSettings:
    return StageSettings(name="dev", region="us-east-1")


STAGES = {"dev": dev}
"""


def module_of(source: str) -> types.ModuleType:
    """The edited stacks/stages.py, run as a module of its own (the real one stays as it is)."""
    module = types.ModuleType("edited_stages")
    exec(compile(source, "stacks/stages.py", "exec"), module.__dict__)
    return module


# --- stacks/stages.py, edited as the docs say ---------------------------------------------------------------


def test_pointing_dev_at_an_archive_adds_one_line_after_its_name() -> None:
    edited = stranger.point_stage_at(STAGES_SOURCE, "dev", SAMPLE_ARCHIVE)
    added = [line for line in edited.splitlines() if line not in STAGES_SOURCE.splitlines()]
    assert added == [f'        model_artifact="{SAMPLE_ARCHIVE}",']
    settings = module_of(edited).dev()
    assert settings.model_artifact == SAMPLE_ARCHIVE
    assert settings == dataclasses.replace(dev(), model_artifact=SAMPLE_ARCHIVE)


def test_pointing_dev_at_an_archive_that_is_not_there_is_what_the_synth_refuses() -> None:
    edited = stranger.point_stage_at(STAGES_SOURCE, "dev", "model_artifacts/not-there/model.tar.gz")
    with pytest.raises(SettingsError, match=r"model_artifact='model_artifacts/not-there/model\.tar\.gz' is invalid"):
        module_of(edited).dev()


def test_a_stage_that_already_names_an_archive_gets_it_replaced() -> None:
    once = stranger.point_stage_at(STAGES_SOURCE, "dev", "model_artifacts/first/model.tar.gz")
    twice = stranger.point_stage_at(once, "dev", SAMPLE_ARCHIVE)
    assert twice == stranger.point_stage_at(STAGES_SOURCE, "dev", SAMPLE_ARCHIVE)


def test_a_new_stage_is_dev_copied_renamed_moved_and_registered_last() -> None:
    edited = stranger.add_stage(STAGES_SOURCE, "dev", COPIED, stranger.NEW_STAGE_SETTINGS | {"name": f'"{COPIED}"'})
    module = module_of(edited)
    assert list(module.STAGES) == [*module_of(STAGES_SOURCE).STAGES, COPIED]
    settings: StageSettings = load_from(module.STAGES, COPIED)
    assert (settings.name, settings.account, settings.region, settings.client_azs) == (
        COPIED,
        "111122223333",
        "eu-west-1",
        ("eu-west-1a", "eu-west-1b"),
    )
    # Everything else is dev's, and dev itself is unchanged.
    back = dataclasses.replace(settings, name="dev", account=None, region=dev().region, client_azs=dev().client_azs)
    assert back == dev()
    assert module.dev() == dev()


def test_a_stage_file_the_tool_cannot_edit_as_a_person_would_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"dev\(\): expected name=\.\.\. on a line of its own"):
        stranger.point_stage_at(CRAMPED, "dev", SAMPLE_ARCHIVE)
    lines = CRAMPED.replace('StageSettings(name="dev", region=', 'StageSettings(\n        name="dev",\n        region=')
    with pytest.raises(ValueError, match="closing brace on a line of its own"):
        stranger.add_stage(lines, "dev", COPIED, {"name": f'"{COPIED}"'})
    with pytest.raises(ValueError, match=r"has no function nowhere\(\)"):
        stranger.point_stage_at(STAGES_SOURCE, "nowhere", SAMPLE_ARCHIVE)


# --- the copy -----------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository with every kind of file: committed, changed, deleted, staged, new, ignored; and a venv."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    git(repo, "init", "--quiet")
    (repo / ".gitignore").write_text("ignored.txt\n.venv/\n")
    for name in ("kept.txt", "changed.txt", "deleted.txt", "pkg/module.py"):
        (repo / name).write_text(f"committed {name}\n")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "first")
    (repo / "changed.txt").write_text("changed in the working tree\n")
    (repo / "deleted.txt").unlink()
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "pkg" / "new.py").write_text("new, not yet added\n")
    (repo / "ignored.txt").write_text("ignored\n")
    (repo / ".venv" / "bin").mkdir(parents=True)
    os.utime(repo / "kept.txt", (1_000_000_000, 1_000_000_000))
    return repo


def test_the_copy_holds_the_tracked_files_as_the_working_tree_has_them_and_its_new_files(
    checkout: Path, tmp_path: Path
) -> None:
    copy = stranger.make_copy(checkout, tmp_path / "copy")
    files = sorted(
        str(path.relative_to(copy)) for path in copy.rglob("*") if path.is_file() and ".git" not in path.parts
    )
    assert files == [".gitignore", "changed.txt", "kept.txt", "pkg/module.py", "pkg/new.py", "staged.txt"]
    assert (copy / "changed.txt").read_text() == "changed in the working tree\n"
    assert (copy / "kept.txt").stat().st_mtime == 1_000_000_000  # make's stamps compare modification times


def test_the_copy_links_the_environments_and_is_a_clean_repository_of_one_commit(
    checkout: Path, tmp_path: Path
) -> None:
    copy = stranger.make_copy(checkout, tmp_path / "copy")
    assert (copy / ".venv").is_symlink() and (copy / ".venv").resolve() == (checkout / ".venv").resolve()
    assert not (copy / "node_modules").exists()  # linked only where the checkout has it
    assert len(git(copy, "log", "--format=%H").split()) == 1
    assert git(copy, "status", "--porcelain") == ""
    assert git(checkout, "status", "--porcelain").splitlines() == [
        " M changed.txt",
        " D deleted.txt",
        "A  staged.txt",
        "?? pkg/new.py",
    ]  # the checkout itself is left as it was


def test_a_copys_commands_run_as_in_a_strangers_shell_and_never_start_the_tool_again(tmp_path: Path) -> None:
    caller = {"PATH": "/bin", "MAKEFLAGS": "-j8", "MAKELEVEL": "1", "PYTEST_XDIST_WORKER": "gw0", "HOME": "/h"}
    env = stranger.copy_environment(tmp_path / "kit", caller)
    assert env == {
        "PATH": "/bin",
        "HOME": "/h",
        stranger.RECURSION_GUARD: str(tmp_path / "kit"),
        "PYTHONPATH": str(tmp_path / "kit" / "client"),
        "TMPDIR": str(tmp_path / "tmp"),
    }


def test_the_tool_does_nothing_inside_a_copy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(stranger.RECURSION_GUARD, "/somewhere/kit")

    def no_copies(*args: object) -> None:
        raise AssertionError("a copy was made inside a copy")

    monkeypatch.setattr(stranger, "try_scenario", no_copies)
    assert stranger.main(["--scenario", "both"]) == 0
    assert "skipped: this is a stranger's copy already (/somewhere/kit)" in capsys.readouterr().out


@pytest.mark.parametrize("target", ["test", "synth", "package"])
def test_make_in_a_copy_installs_nothing(target: str) -> None:
    # -n prints what make would run; the copy's lock files are newer than the linked stamps.
    command = [*stranger.make_command(target, "MODEL=m.json"), "-n", "-W", "locks/dev.txt", "-W", "package.json"]
    dry = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert dry.strip()
    for installer in ("uv pip", "npm ci", "-m venv", "touch .venv"):
        assert installer not in dry, dry


def test_ci_tries_as_a_stranger_before_the_suite() -> None:
    lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines.index("make try-as-a-stranger") < lines.index("make test")
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "try-as-a-stranger", "ARGS=--scenario new-stage"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert dry.splitlines()[-1] == ".venv/bin/python scripts/try_as_a_stranger.py --scenario new-stage"


# --- running the suite as asked, and the report ---------------------------------------------------------

FAILED_ONCE = """\
..........F.....
=================================== FAILURES ===================================
__________ test_template_matches_the_reviewed_snapshot[stranger-eu] ___________
stage 'stranger-eu' has no reviewed snapshot yet: review its template (make synth STAGE=stranger-eu), then \
accept it with make test PYTEST_ARGS="-n0 --snapshot-update -k stranger-eu"
_________________________ test_something_else __________________________
    def test_something_else():
>       hint = f'make test PYTEST_ARGS="-n0 --snapshot-update -k {stage_name}"'
E       AssertionError
=========================== short test summary info ============================
FAILED tests/test_snapshots.py::test_template_matches_the_reviewed_snapshot[stranger-eu] - stage 'stranger-eu' ...
1 failed, 1776 passed, 1 warning in 301.15s (0:05:01)
"""
GREEN = "....\n1777 passed, 1 warning in 298.02s (0:04:58)\n"
RED = """\
..F
=========================== short test summary info ============================
FAILED tests/test_client.py::test_smoke_test_passes_only_on_the_packaged_models_answer[0.9] - AssertionError
FAILED tests/test_invoke.py::test_a_stack_that_is_not_deployed_is_one_line_and_exit_1 - assert (2, '') == (1, '')
2 failed, 1775 passed in 290.50s (0:04:50)
make: *** [Makefile:89: test] Error 1
"""


def test_the_accept_command_is_read_from_the_failure_message_not_from_source_lines() -> None:
    assert stranger.accept_commands(FAILED_ONCE) == ['make test PYTEST_ARGS="-n0 --snapshot-update -k stranger-eu"']
    assert stranger.summary_line(FAILED_ONCE) == "1 failed, 1776 passed, 1 warning in 301.15s (0:05:01)"
    assert stranger.summary_line("==== 3 passed, 2 skipped in 1.00s ====") == "3 passed, 2 skipped in 1.00s"
    assert stranger.accept_commands(RED) == []


class ScriptedCopy(stranger.Copy):
    """A copy whose commands answer from a script: (returncode, output) per command, in order."""

    def __init__(self, folder: Path, answers: list[tuple[int, str]]) -> None:
        super().__init__(folder / "kit", folder, stranger.Outcome("new-stage"), {})
        self.answers: Iterator[tuple[int, str]] = iter(answers)
        self.commands: list[list[str]] = []

    def execute(self, command: Sequence[str]) -> tuple[int, str]:
        self.commands.append(list(command))
        return next(self.answers)


def test_a_stranger_accepts_what_the_failure_asks_then_runs_the_whole_suite_again(tmp_path: Path) -> None:
    copy = ScriptedCopy(tmp_path, [(2, FAILED_ONCE), (0, "1 passed, 1776 deselected in 30.00s\n"), (0, GREEN)])
    stranger.suite_as_asked(copy)
    words = [command[len(stranger.make_command()) :] for command in copy.commands]
    assert words == [["test"], ["test", "PYTEST_ARGS=-n0 --snapshot-update -k stranger-eu"], ["test"]]
    assert copy.outcome.passed
    report = copy.outcome.report().splitlines()
    assert report[0].startswith("new-stage: PASS, 1777 passed, 1 warning in 298.02s (0:04:58) (")
    assert report[1:4] == [
        "  make test: 1 failed, 1776 passed, 1 warning in 301.15s (0:05:01) (0 s)",
        "    FAILED tests/test_snapshots.py::test_template_matches_the_reviewed_snapshot[stranger-eu] - stage "
        "'stranger-eu' ...",
        "  make test 'PYTEST_ARGS=-n0 --snapshot-update -k stranger-eu': 1 passed, 1776 deselected in 30.00s (0 s)",
    ]
    assert (tmp_path / "01-make-test.log").read_text() == FAILED_ONCE


def test_a_failure_with_nothing_to_accept_is_reported_with_its_summary_line_and_failed_tests(tmp_path: Path) -> None:
    copy = ScriptedCopy(tmp_path, [(2, RED)])
    stranger.suite_as_asked(copy)
    assert not copy.outcome.passed and len(copy.commands) == 1
    report = copy.outcome.report()
    assert report.splitlines()[0].startswith("new-stage: FAIL, 2 failed, 1775 passed in 290.50s (0:04:50) (")
    assert "    FAILED tests/test_invoke.py::test_a_stack_that_is_not_deployed_is_one_line_and_exit_1" in report
    assert "  make test failed: 2 failed, 1775 passed in 290.50s (0:04:50)" in report
    assert "the failures give no accept command" in report
    assert f"log: {tmp_path / '01-make-test.log'}" in report


def test_a_step_that_fails_before_any_test_is_reported_with_its_last_lines(tmp_path: Path) -> None:
    copy = ScriptedCopy(tmp_path, [(2, "error: stage 'dev' has 1 invalid setting(s):\n  - model_artifact=...\n")])
    copy.make("synth", "STAGE=dev")
    report = copy.outcome.report()
    assert report.splitlines()[0].startswith("new-stage: FAIL, no make test run (")
    assert "make synth STAGE=dev failed: exit 2\n  error: stage 'dev' has 1 invalid setting(s):" in report
