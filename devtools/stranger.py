"""Try the docs as a stranger would, in scratch copies of the repository, and run all of `make test` in each.

    python scripts/try_as_a_stranger.py [--scenario own-model|new-stage|both] [--keep] [--workdir DIR]

own-model: train a small XGBoost model of another shape than the sample's (12 features, regression), package it
with `make package MODEL=... OUT=model_artifacts/mine` and point `dev` at it, as docs/own-model.md says.
new-stage: copy dev() under a new name in another region and account and add it to STAGES, as the README and
docs/settings.md say. Then, in each copy: `make synth STAGE=...`, `make test`, the accept command each failure
message gives (and nothing else), and `make test` again; one line per scenario: pass or fail, with the counts.

A copy holds the repository's tracked files as the working tree has them (uncommitted changes included) and its
new files that git does not ignore; it links this checkout's .venv, .venv-checkov and node_modules, and make is
told that they are installed, so nothing reinstalls. The copy's suite cannot start this tool again (RECURSION_GUARD).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("own-model", "new-stage")
# Set in every copy's environment: where it is set, the tool does nothing (a copy never makes copies).
RECURSION_GUARD = "RTB_TRY_AS_A_STRANGER_COPY"
SHARED_ENVIRONMENTS = (".venv", ".venv-checkov", "node_modules")
# The Makefile's setup stamps: `make -o STAMP` treats each as installed, so a copy (whose lock files are newer
# than the linked stamps) never installs into this checkout's environments.
SETUP_STAMPS = (".venv/.synth", ".venv/.dev", ".venv-checkov/.installed", "node_modules/.installed")
# Variables of the make or pytest that started the tool; a stranger's shell has none of them.
INHERITED_NOISE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "GNUMAKEFLAGS", "PYTEST_")

OWN_MODEL_DIR = "model_artifacts/mine"
OWN_MODEL_FEATURES = 12
NEW_STAGE = "stranger-eu"
NEW_STAGE_SETTINGS = {
    "name": f'"{NEW_STAGE}"',
    "account": '"111122223333"',
    "region": '"eu-west-1"',
    "client_azs": '("eu-west-1a", "eu-west-1b")',
}

_SUMMARY = re.compile(r"^=*\s*((?:\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|warnings?|deselected)(?:, )?)+)")
# In a failure's message, not in a traceback's source lines (indented, or after ">"), nor an f-string template.
_ACCEPT = re.compile(r'make test PYTEST_ARGS="[^"{}\n]*--snapshot-update[^"{}\n]*"')


# --- the copy -------------------------------------------------------------------------------------------


def repository_files(repo: Path) -> list[str]:
    """The tracked files the working tree still has, and its new files git does not ignore (relative paths)."""
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({name for name in listed.split("\0") if name and os.path.lexists(repo / name)})


def make_copy(repo: Path, destination: Path) -> Path:
    """A copy of ``repo``'s files (repository_files, modification times kept) that links its environments; a git
    repository of its own whose one commit is that working tree (the load test's report records the commit)."""
    files = repository_files(repo)
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target, follow_symlinks=False)
    for name in SHARED_ENVIRONMENTS:
        if (repo / name).exists():
            (destination / name).symlink_to(repo / name, target_is_directory=True)
    git = ["git", "-C", str(destination), "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false"]
    identity = ["-c", "user.name=try-as-a-stranger", "-c", "user.email=stranger@example.invalid"]
    subprocess.run([*git, "init", "--quiet"], check=True)
    # The links to the environments are no files of the copy (git ignores ".venv/", a folder, not a link).
    (destination / ".git" / "info" / "exclude").write_text("".join(f"/{name}\n" for name in SHARED_ENVIRONMENTS))
    add = [*git, "add", "--force", "--pathspec-from-file=-", "--pathspec-file-nul"]
    subprocess.run(add, input="\0".join(files), text=True, check=True)
    message = f"the working tree of {repo}"
    subprocess.run([*git, *identity, "commit", "--quiet", "--no-verify", "-m", message], check=True)
    return destination


def copy_environment(copy: Path, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment a command in ``copy`` runs with: the caller's, without make's and pytest's variables,
    with the guard set, the copy's client package first (not the linked venv's editable install) and a temporary
    folder of its own (other pytest sessions on the machine prune /tmp/pytest-of-USER)."""
    env = {key: value for key, value in base.items() if not key.startswith(INHERITED_NOISE)}
    temporary = copy.parent / "tmp"
    temporary.mkdir(exist_ok=True)
    env.update({RECURSION_GUARD: str(copy), "PYTHONPATH": str(copy / "client"), "TMPDIR": str(temporary)})
    return env


def make_command(*arguments: str) -> list[str]:
    """`make ARGUMENTS` that treats the linked environments as installed."""
    old = [flag for stamp in SETUP_STAMPS for flag in ("-o", stamp)]
    return ["make", "--no-print-directory", *old, *arguments]


# --- editing stacks/stages.py as the docs say -----------------------------------------------------------


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise ValueError(f"stacks/stages.py has no function {name}()")


def _settings_call(function: ast.FunctionDef) -> ast.Call:
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "StageSettings":
            return node
    raise ValueError(f"{function.name}() has no StageSettings(...) call")


def set_setting(source: str, function_name: str, setting: str, value: str) -> str:
    """``source`` with ``setting=value`` in the StageSettings(...) of ``function_name``: the value replaced if
    the setting is there, else a line of its own after ``name=``, as a person edits it."""
    lines = source.splitlines(keepends=True)
    call = _settings_call(_function(ast.parse(source), function_name))
    keywords = {keyword.arg: keyword for keyword in call.keywords}
    if setting in keywords:
        node = keywords[setting].value
        assert node.end_lineno is not None and node.end_col_offset is not None
        first, last = node.lineno - 1, node.end_lineno - 1
        before, after = lines[first][: node.col_offset], lines[last][node.end_col_offset :]
        return "".join([*lines[:first], before + value + after, *lines[last + 1 :]])
    name = keywords.get("name")
    if name is None or name.end_lineno != name.lineno or not lines[name.lineno - 1].rstrip().endswith(","):
        raise ValueError(f"{function_name}(): expected name=... on a line of its own, to add {setting}= after it")
    indent = lines[name.lineno - 1][: name.col_offset]
    return "".join([*lines[: name.lineno], f"{indent}{setting}={value},\n", *lines[name.lineno :]])


def point_stage_at(source: str, stage_function: str, artifact: str) -> str:
    """docs/own-model.md step 2: the stage's ``model_artifact`` set to the packaged archive."""
    return set_setting(source, stage_function, "model_artifact", f'"{artifact}"')


def add_stage(source: str, base: str, name: str, settings: Mapping[str, str]) -> str:
    """docs/settings.md "Add a stage": ``base``() copied under ``name`` right after it, its settings set, and
    the new function added as the last entry of STAGES."""
    function_name = name.replace("-", "_")
    original = _function(ast.parse(source), base)
    assert original.end_lineno is not None
    lines = source.splitlines(keepends=True)
    copied = "".join(lines[original.lineno - 1 : original.end_lineno])
    copied = copied.replace(f"def {base}(", f"def {function_name}(", 1)
    for setting, value in settings.items():
        copied = set_setting(copied, function_name, setting, value)
    lines[original.end_lineno : original.end_lineno] = ["\n", "\n", *copied.splitlines(keepends=True)]
    registry = _stages_dict(ast.parse("".join(lines)))
    assert registry.end_lineno is not None
    closing = registry.end_lineno - 1  # the line of the closing brace
    if lines[closing].strip() != "}":
        raise ValueError("STAGES = {...}: expected its closing brace on a line of its own")
    last_entry = lines[closing - 1]
    indent = last_entry[: len(last_entry) - len(last_entry.lstrip())]
    lines.insert(closing, f'{indent}"{name}": {function_name},\n')
    return "".join(lines)


def _stages_dict(tree: ast.Module) -> ast.Dict:
    for node in tree.body:
        targets: list[ast.expr] = [node.target] if isinstance(node, ast.AnnAssign) else []
        if isinstance(node, ast.Assign):
            targets = node.targets
        value = getattr(node, "value", None)
        if any(isinstance(t, ast.Name) and t.id == "STAGES" for t in targets) and isinstance(value, ast.Dict):
            return value
    raise ValueError("stacks/stages.py has no STAGES = {...}")


def train_own_model(path: Path) -> Path:
    """A booster of another shape than the sample's: 12 features, squared-error regression, saved as JSON."""
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(22)
    rows = rng.normal(size=(300, OWN_MODEL_FEATURES)).astype(np.float32)
    labels = rows[:, 0] * 2.0 + rows[:, 5] - rows[:, 11]
    settings = {"objective": "reg:squarederror", "max_depth": 3, "nthread": 1, "seed": 22}
    xgb.train(settings, xgb.DMatrix(rows, label=labels), num_boost_round=8).save_model(path)
    return path


# --- running and reading make test ----------------------------------------------------------------------


def summary_line(output: str) -> str:
    """pytest's closing counts line ("1 failed, 980 passed, 2 skipped"), or "" if there is none."""
    found = ""
    for line in output.splitlines():
        match = _SUMMARY.match(line.strip())
        if match:
            found = line.strip().strip("= ")
    return found


def failures(output: str) -> list[str]:
    """The short summary's FAILED and ERROR lines."""
    return [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def accept_commands(output: str) -> list[str]:
    """The accept commands the failure messages give, each once, in order."""
    found = [command for line in output.splitlines() if line[:1] not in (" ", ">") for command in _ACCEPT.findall(line)]
    return list(dict.fromkeys(found))


@dataclass
class Step:
    """One command run in a copy: what it was, how it ended, how long it took and what it printed."""

    command: str
    returncode: int
    seconds: float
    output: str

    @property
    def passed(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        counts = summary_line(self.output)
        verdict = "ok" if self.passed else f"exit {self.returncode}"
        return f"{self.command}: {counts or verdict} ({self.seconds:.0f} s)"


@dataclass
class Outcome:
    """A scenario's steps, and why it failed ("" if it passed)."""

    scenario: str
    steps: list[Step] = field(default_factory=list)
    problem: str = ""
    folder: Path | None = None

    @property
    def passed(self) -> bool:
        return not self.problem and bool(self.steps)

    def report(self) -> str:
        """One line (pass or fail, the last `make test`'s counts, the time), then a line per step and the
        failures of each failed `make test` (what the suite asked a stranger to accept, or why it failed)."""
        seconds = sum(step.seconds for step in self.steps)
        tests = [step for step in self.steps if step.command == "make test"]
        last = summary_line(tests[-1].output) if tests else "no make test run"
        lines = [f"{self.scenario}: {'PASS' if self.passed else 'FAIL'}, {last} ({seconds / 60:.1f} min)"]
        for step in self.steps:
            lines.append(f"  {step.describe()}")
            if step.command.startswith("make test") and not step.passed:
                lines += [f"    {line}" for line in failures(step.output)[:MAX_SHOWN]]
        if self.problem:
            lines.append(f"  {self.problem}")
        return "\n".join(lines)


MAX_SHOWN = 30


def explain(step: Step, log: Path) -> str:
    """A failed step in a few lines: its summary line, its last lines when it has no failed tests, and its log."""
    lines = [f"{step.command} failed: {summary_line(step.output) or f'exit {step.returncode}'}"]
    if not failures(step.output):
        lines += step.output.strip().splitlines()[-12:]
    lines.append(f"log: {log}")
    return "\n  ".join(lines)


class Copy:
    """One scenario's scratch copy (``root``, inside ``folder``): runs commands there and logs each one's output
    in ``folder``."""

    def __init__(self, root: Path, folder: Path, outcome: Outcome, env: Mapping[str, str]) -> None:
        self.root, self.folder, self.outcome, self.env = root, folder, outcome, dict(env)
        outcome.folder = folder

    def execute(self, command: Sequence[str]) -> tuple[int, str]:
        result = subprocess.run(list(command), cwd=self.root, env=self.env, capture_output=True, text=True, check=False)
        return result.returncode, result.stdout + result.stderr

    def make(self, *arguments: str) -> Step:
        """`make ARGUMENTS` in the copy; a failure becomes the outcome's problem, a pass clears it."""
        shown = shlex.join(["make", *arguments])
        print(f"[{self.outcome.scenario}] {shown}", flush=True)
        start = time.monotonic()
        returncode, output = self.execute(make_command(*arguments))
        step = Step(shown, returncode, time.monotonic() - start, output)
        self.outcome.steps.append(step)
        log = self.folder / f"{len(self.outcome.steps):02d}-make-{arguments[0]}.log"
        log.write_text(output)
        print(f"[{self.outcome.scenario}]   {step.describe()}", flush=True)
        self.outcome.problem = "" if step.passed else explain(step, log)
        return step


def suite_as_asked(copy: Copy) -> None:
    """`make test`; if it fails, the accept commands its failure messages give (only those), then `make test`
    again, which decides. A failure that gives no accept command stays the outcome's problem."""
    if copy.make("test").passed:
        return
    commands = accept_commands(copy.outcome.steps[-1].output)
    if not commands:
        copy.outcome.problem += "\n  the failures give no accept command: a stranger is stuck here"
        return
    for command in commands:
        # Its -k may select other failing tests too; the snapshot is written all the same, and the next
        # `make test` shows what is still red.
        copy.make(*shlex.split(command)[1:])  # the words after "make"
    copy.make("test")


def own_model(copy: Copy) -> None:
    """docs/own-model.md: package a model of another shape, point dev at it, synth, test."""
    booster = train_own_model(copy.folder / "mine.json")
    if not copy.make("package", f"MODEL={booster}", f"OUT={OWN_MODEL_DIR}").passed:
        return
    stages = copy.root / "stacks" / "stages.py"
    stages.write_text(point_stage_at(stages.read_text(), "dev", f"{OWN_MODEL_DIR}/model.tar.gz"))
    if copy.make("synth", "STAGE=dev").passed:
        suite_as_asked(copy)


def new_stage(copy: Copy) -> None:
    """docs/settings.md "Add a stage": copy dev() under a new name, add it to STAGES, synth, test."""
    stages = copy.root / "stacks" / "stages.py"
    stages.write_text(add_stage(stages.read_text(), "dev", NEW_STAGE, NEW_STAGE_SETTINGS))
    if copy.make("synth", f"STAGE={NEW_STAGE}").passed:
        suite_as_asked(copy)


def try_scenario(scenario: str, repo: Path, workdir: Path) -> Outcome:
    """The scenario in a new copy of ``repo`` under ``workdir``/``scenario``."""
    folder = workdir / scenario
    folder.mkdir(parents=True)
    root = make_copy(repo, folder / "kit")
    print(f"[{scenario}] a copy of {repo} in {root}", flush=True)
    outcome = Outcome(scenario)
    {"own-model": own_model, "new-stage": new_stage}[scenario](Copy(root, folder, outcome, copy_environment(root)))
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="try_as_a_stranger.py", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "both"], default="both")
    parser.add_argument("--keep", action="store_true", help="keep the copies of passing scenarios too")
    parser.add_argument("--workdir", type=Path, help="where the copies go (default: a new temporary folder)")
    args = parser.parse_args(argv)
    if os.environ.get(RECURSION_GUARD):
        print(f"try_as_a_stranger: skipped: this is a stranger's copy already ({os.environ[RECURSION_GUARD]})")
        return 0
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="try-as-a-stranger-"))).resolve()
    scenarios = SCENARIOS if args.scenario == "both" else (args.scenario,)
    outcomes = [try_scenario(scenario, REPO_ROOT, workdir) for scenario in scenarios]
    print()
    for outcome in outcomes:
        print(outcome.report())
        if outcome.folder is not None and outcome.passed and not args.keep:
            shutil.rmtree(outcome.folder)
        elif outcome.folder is not None:
            print(f"  kept: {outcome.folder}")
    if not any(workdir.iterdir()) and args.workdir is None:
        workdir.rmdir()
    return 0 if all(outcome.passed for outcome in outcomes) else 1
