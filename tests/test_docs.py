"""The README and docs/ stay true to the repository: the settings table matches the settings model, every
`make` target, repository path, script (and its options) and relative link they name exists, and the commands
they show run the kit's scripts with the kit's venv.

Each check is a function of the text, so each is also shown to fail on a planted bad copy.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from stacks.settings import StageSettings

from .conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_LINES = 150

# Pages written on other branches and linked before they land. Remove an entry once its page is merged.
PENDING: set[str] = set()

# --- extracting code ---------------------------------------------------------------------------------------

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"`([^`\n]+)`")


def code_snippets(text: str) -> list[str]:
    """Fenced blocks (backslash continuations joined) and inline code spans."""
    blocks = [match[1].replace("\\\n", " ") for match in _FENCE.finditer(text)]
    prose = _FENCE.sub("", text)
    return blocks + [match[1] for match in _SPAN.finditer(prose)]


# --- make targets -------------------------------------------------------------------------------------------

_MAKE_CALL = re.compile(r"(?<![\w$(-])make ([a-z][a-z0-9-]*)")
_MAKE_RULE = re.compile(r"^([A-Za-z][\w.-]*)\s*:(?!=)", re.MULTILINE)


def makefile_targets(makefile: str) -> set[str]:
    return set(_MAKE_RULE.findall(makefile))


def unknown_make_targets(text: str, targets: set[str]) -> list[str]:
    named = {target for snippet in code_snippets(text) for target in _MAKE_CALL.findall(snippet)}
    return sorted(f"make {target}" for target in named - targets)


# --- repository paths ---------------------------------------------------------------------------------------

_TOP_FILES = (
    r"app\.py|Makefile|cdk\.json|cdk\.context\.json|package\.json|package-lock\.json|pyproject\.toml"
    r"|README\.md|requirements(?:-[a-z]+)?\.txt"
)
_PATH = re.compile(
    r"(?<![\w./:@-])"
    r"((?:stacks|scripts|tests|docs|model_artifacts|locks|\.github|\.ci)/[^\s`'\"(),;:]*|(?:" + _TOP_FILES + r")\b)"
)
_PLACEHOLDER = re.compile(r"<|>|…|\.\.\.|NAME|\{|\$")
# A test file named without its folder (the test tables): it lives somewhere under tests/.
_TEST_FILE = re.compile(r"(?<![\w./-])(test_[a-z0-9_]+\.py)")


def repository_paths(text: str) -> set[str]:
    """Paths under a known top-level folder, or known top-level files, named in code."""
    found = set()
    for snippet in code_snippets(text):
        for path in _PATH.findall(snippet):
            path = path.rstrip(".")
            if not _PLACEHOLDER.search(path):
                found.add(path)
    return found


def missing_paths(text: str, root: Path) -> list[str]:
    missing = []
    for path in sorted(repository_paths(text)):
        exists = any(root.glob(path)) if "*" in path else (root / path).exists()
        if not exists and path not in PENDING:
            missing.append(path)
    test_files = {name for snippet in code_snippets(text) for name in _TEST_FILE.findall(snippet)}
    missing += [name for name in sorted(test_files) if not any(root.glob(f"tests/**/{name}"))]
    return missing


# --- scripts and their options ------------------------------------------------------------------------------

_COMMAND = re.compile(r"(?:python[\w./-]* -m ([\w.]+)|(?<![\w./-])((?:scripts|stacks)/[\w/]+\.py))(?P<args>[^\n|;&#]*)")
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
# Options a script may take through the shared argument helpers.
_SHARED = ("cliutil/__init__.py",)
# An entry point in scripts/ runs the `main` of its room's module: the options are defined there.
_ENTRY = re.compile(r"^from ([\w.]+) import \w+", re.MULTILINE)


def command_problems(text: str, root: Path) -> list[str]:
    """Each `python -m X` or `scripts/X.py` command names a module that exists and options it defines."""
    problems = []
    for snippet in code_snippets(text):
        for match in _COMMAND.finditer(snippet):
            module, path = match[1], match[2]
            source = root / (path if path else module.replace(".", "/") + ".py")
            if not source.is_file():
                problems.append(f"{module or path}: no module {source.relative_to(root)}")
                continue
            behind = [root / (name.replace(".", "/") + ".py") for name in _ENTRY.findall(source.read_text())]
            defined = "".join(p.read_text() for p in [source, *behind, *(root / s for s in _SHARED)] if p.is_file())
            problems += [
                f"{module or path}: no option {option}"
                for option in _OPTION.findall(match["args"])
                if f'"{option}"' not in defined
            ]
    return sorted(set(problems))


# --- the kit's Python ---------------------------------------------------------------------------------------

# A bare `python` is whatever the reader's shell finds first, without the kit's pinned packages: a command that
# runs a repository script names .venv/bin/python (or uses its make target). `python -m venv` or
# `python3 --version` run no script of the repository.
_SCRIPT = r"(?:-m +(?:scripts|stacks)\.[\w.]+|(?:\./)?(?:scripts|stacks)/[\w/]+\.py)"
_BARE_PYTHON = re.compile(r"(?<![\w./-])python[\d.]*(?: +-[A-Za-z]+)* +" + _SCRIPT)


def bare_python_commands(text: str) -> list[str]:
    """Command lines of fenced code blocks (continuations joined) that run a repository script with a bare
    python."""
    blocks = [match[1].replace("\\\n", " ") for match in _FENCE.finditer(text)]
    lines = [" ".join(line.split()) for block in blocks for line in block.splitlines()]
    return [f"{line}: use .venv/bin/python" for line in lines if _BARE_PYTHON.search(line)]


# --- relative links -----------------------------------------------------------------------------------------

_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {anchor(heading) for heading in _HEADING.findall(_FENCE.sub("", text))}


def broken_links(text: str, page: Path, root: Path) -> list[str]:
    """Relative links (and their #anchors) from `page` that do not resolve inside the repository."""
    broken = []
    for target in _LINK.findall(_FENCE.sub("", text)):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        relative = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
        if file_part and not resolved.exists():
            if relative not in PENDING:
                broken.append(f"{target}: no file {relative}")
            continue
        if fragment:
            linked = text if resolved == page else resolved.read_text()
            if fragment not in anchors(linked):
                broken.append(f"{target}: no heading #{fragment} in {relative}")
    return broken


def too_long(text: str) -> list[str]:
    lines = len(text.splitlines())
    return [f"README.md has {lines} lines; keep it under {README_MAX_LINES}"] if lines >= README_MAX_LINES else []


# --- the repository's pages ---------------------------------------------------------------------------------


def _name(page: Path) -> str:
    return page.relative_to(REPO_ROOT).as_posix()


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_make_target_named_exists_in_the_makefile(page: Path) -> None:
    assert unknown_make_targets(page.read_text(), makefile_targets((REPO_ROOT / "Makefile").read_text())) == []


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_repository_path_named_exists(page: Path) -> None:
    assert missing_paths(page.read_text(), REPO_ROOT) == []


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_script_command_names_an_existing_module_and_its_options(page: Path) -> None:
    assert command_problems(page.read_text(), REPO_ROOT) == []


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_command_runs_repository_scripts_with_the_kits_venv(page: Path) -> None:
    assert bare_python_commands(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page.read_text(), page, REPO_ROOT) == []


def test_the_readme_is_a_front_door_under_150_lines() -> None:
    assert too_long(README.read_text()) == []


def test_the_readme_links_every_docs_page() -> None:
    linked = {_name((README.parent / target).resolve()) for target in _LINK.findall(README.read_text())}
    assert {_name(page) for page in DOCS} - linked == set()


# --- each check fails on a planted bad copy -----------------------------------------------------------------


def test_an_unknown_make_target_is_caught() -> None:
    text = "Run `make synth`, then `make deploy-all STAGE=dev`.\n\n```bash\nmake tset\n```\nMake it so.\n"
    assert unknown_make_targets(text, {"synth", "test"}) == ["make deploy-all", "make tset"]


def test_a_missing_repository_path_is_caught() -> None:
    text = (
        "See `stacks/network.py` and `stacks/netwrok.py`, `tests/test_rollout.py::test_x`, `docs/nope.md`,\n"
        "`stacks/data/*_images.json`, `model_artifacts/*.zip`, `model_artifacts/<stage>/model.tar.gz`,\n"
        "`python -m stacks.handlers.eni_cleanup --security-group-id sg-…`, `https://example.com/docs/x.md`.\n"
        "| `test_rollout.py`, `test_inf1_build.py`, `test_rolout.py` | bare test files |\n"
        "```bash\n.venv/bin/python scripts/smook_test.py --stage NAME\n```\n"
    )
    assert missing_paths(text, REPO_ROOT) == [
        "docs/nope.md",
        "model_artifacts/*.zip",
        "scripts/smook_test.py",
        "stacks/netwrok.py",
        "test_rolout.py",
    ]


def test_a_missing_script_or_option_is_caught() -> None:
    text = (
        "```bash\n.venv/bin/python -m scripts.invoke --stage dev --file rows.csv\n"
        ".venv/bin/python -m scripts.lodtest --stage dev\n"
        ".venv/bin/python -m scripts.loadtest --stage dev \\\n  --write-bak   # typo\n```\n"
        "Then `scripts/smoke_test.py --stage dev --verbose`.\n"
    )
    assert command_problems(text, REPO_ROOT) == [
        "scripts.loadtest: no option --write-bak",
        "scripts.lodtest: no module scripts/lodtest.py",
        "scripts/smoke_test.py: no option --verbose",
    ]


def test_a_repository_script_run_with_a_bare_python_is_caught() -> None:
    text = (
        "```bash\npython scripts/smoke_test.py --stage gpu\n"
        ".venv/bin/python scripts/invoke.py --stage dev\n"
        "python3 -m stacks.handlers.eni_cleanup \\\n  --security-group-id sg-1 --region us-east-1\n"
        "cd kit && python -u -m scripts.loadtest --stage dev\n"
        "python -m venv .venv && python3 --version && .venv/bin/python -m scripts.recommend --stage dev\n"
        "make bench-model\n```\n"
        "Prose may quote a message: `python -m stacks.handlers.eni_cleanup --help`.\n"
    )
    assert bare_python_commands(text) == [
        "python scripts/smoke_test.py --stage gpu: use .venv/bin/python",
        "python3 -m stacks.handlers.eni_cleanup --security-group-id sg-1 --region us-east-1: use .venv/bin/python",
        "cd kit && python -u -m scripts.loadtest --stage dev: use .venv/bin/python",
    ]


def test_a_broken_relative_link_is_caught() -> None:
    text = (
        "# Title\n\n## Two commands\n\n[ok](docs/settings.md#every-setting), [self](#two-commands),\n"
        "[web](https://example.com/x.md), [gone](docs/nope.md), [anchor](docs/settings.md#no-such-heading),\n"
        "[self anchor](#three-commands)\n"
    )
    assert broken_links(text, README, REPO_ROOT) == [
        "docs/nope.md: no file docs/nope.md",
        "docs/settings.md#no-such-heading: no heading #no-such-heading in docs/settings.md",
        "#three-commands: no heading #three-commands in README.md",
    ]


def test_a_long_readme_is_caught() -> None:
    assert too_long("line\n" * (README_MAX_LINES - 1)) == []
    assert too_long("line\n" * README_MAX_LINES) == [f"README.md has {README_MAX_LINES} lines; keep it under 150"]


# --- the settings table -------------------------------------------------------------------------------------

SETTINGS_PAGE = REPO_ROOT / "docs" / "settings.md"
SETTINGS_HEADING = "## Every setting"
_ROW = re.compile(r"^\| `(?P<name>[a-z0-9_.]+)` \| (?P<default>[^|]+) \|", re.MULTILINE)


def documented_settings(text: str) -> dict[str, str]:
    start = text.index(SETTINGS_HEADING)
    end = text.find("\n## ", start)
    table = text[start : end if end != -1 else len(text)]
    return {match["name"]: match["default"].strip() for match in _ROW.finditer(table)}


def _nested_settings(hint: Any) -> type | None:
    """The settings class a field holds (``X`` or ``X | None``), None for a plain value or a tuple of them."""
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)] or [hint]
    if len(options) == 1 and dataclasses.is_dataclass(options[0]) and isinstance(options[0], type):
        return options[0]
    return None


def _defaults(cls: type = StageSettings, prefix: str = "") -> dict[str, str]:
    """Every field of the settings model, nested settings included (found from the types, not listed here):
    a nested settings object with a default is a row of its own only when its default is None (shadow,
    runtime_endpoint), and its fields are rows too."""
    found: dict[str, str] = {}
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        nested = _nested_settings(hints[field.name])
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            found[prefix + field.name] = "(required)"
        elif field.default is not dataclasses.MISSING:
            found[prefix + field.name] = f"`{field.default}`"
        if nested is not None:
            found |= _defaults(nested, f"{prefix}{field.name}.")
    return found


def test_every_setting_is_documented_with_its_default() -> None:
    assert documented_settings(SETTINGS_PAGE.read_text()) == _defaults()


def test_a_wrong_or_missing_setting_row_is_caught() -> None:
    text = SETTINGS_PAGE.read_text()
    assert documented_settings(
        text.replace("| `initial_instance_count` | `2` |", "| `initial_instance_count` | `3` |")
    ) != (_defaults())
    assert documented_settings(re.sub(r"^\| `log_retention_days` .*\n", "", text, flags=re.MULTILINE)) != _defaults()
