"""The repository's shape, computed from the code: one room (package) per kind of code, imports that only look
down the rooms' order, no import circles, and scripts/ holding entry points only (issue 22)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, SLOW_MODULE, offline_env

# The rooms from the bottom up: a module may import from its own room and the rooms before it, never after.
# (The client package ad servers import; the CDK app; then the kinds of code that build on both.)
ROOMS = ("rtb_client", "stacks", "cliutil", "modelpack", "capacity", "loadgen", "operations", "devtools", "scripts")
LOCATION = {"rtb_client": REPO_ROOT / "client" / "rtb_client"}
# A file a reader can hold.
MAX_LINES = 700


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module, dotted
    imported: str  # the imported module, dotted (an imported name's module when it is not a module itself)
    line: int


def room_path(room: str, root: Path) -> Path:
    return LOCATION.get(room, root / room) if root == REPO_ROOT else root / room


def modules(root: Path = REPO_ROOT, rooms: tuple[str, ...] = ROOMS) -> dict[str, Path]:
    """Every module of every room, by dotted name."""
    found = {}
    for room in rooms:
        base = room_path(room, root)
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join((room, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _imports_in(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """(dotted target, line) of each import the module runs, at any depth; not those under TYPE_CHECKING."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
                yield base, node.lineno


def imports(root: Path = REPO_ROOT, rooms: tuple[str, ...] = ROOMS) -> list[Import]:
    """The imports between the rooms' modules (anything outside the rooms is not ours to order)."""
    known = modules(root, rooms)
    found = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, line in _imports_in(tree, name, path.name == "__init__.py"):
            if target in known and target != name:
                found.append(Import(name, target, line))
    return sorted(set(found), key=lambda item: (item.importer, item.imported, item.line))


def upward_imports(found: list[Import], rooms: tuple[str, ...] = ROOMS) -> list[str]:
    order = {room: index for index, room in enumerate(rooms)}
    return [
        f"{item.importer}:{item.line} imports {item.imported}, a room above it"
        for item in found
        if order[item.imported.split(".")[0]] > order[item.importer.split(".")[0]]
    ]


def circles(found: list[Import]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan's algorithm): each is an import circle."""
    graph: dict[str, set[str]] = {}
    for item in found:
        graph.setdefault(item.importer, set()).add(item.imported)
        graph.setdefault(item.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def entry_point_problems(path: Path) -> list[str]:
    """An entry point imports its room's code and runs it: no function, class or logic of its own."""
    tree = ast.parse(path.read_text(), str(path))
    problems = []
    rooms = {item.split(".")[0] for item in ROOMS}
    defined = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    if defined:
        problems.append(f"{path.name} defines {', '.join(node.name for node in defined)}: put it in a room")
    froms = [
        node for node in tree.body if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in rooms
    ]
    if len(froms) != 1:
        problems.append(f"{path.name} should import one room's command, imports {len(froms)}")
    if not any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body):
        problems.append(f'{path.name} has no `if __name__ == "__main__":`')
    return problems


# --- the repository ---------------------------------------------------------------------------------------


def test_every_room_is_a_package_that_says_its_purpose_in_one_line() -> None:
    for room in ROOMS:
        init = room_path(room, REPO_ROOT) / "__init__.py"
        assert init.is_file(), f"{room} has no __init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring, f"{room}/__init__.py has no docstring"
        first = docstring.splitlines()[0]
        assert first.endswith(".") and len(first) <= 120, f"{room}: {first!r}"


def test_every_top_level_package_is_a_room() -> None:
    packages = {init.parent.name for init in REPO_ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(ROOMS) - {"rtb_client"}


def test_imports_only_look_down_the_rooms() -> None:
    found = imports()
    assert len(found) > 50  # the scan sees the code
    assert upward_imports(found) == []


def test_no_import_circles() -> None:
    assert circles(imports()) == []


def test_scripts_holds_only_entry_points() -> None:
    entries = sorted(path for path in (REPO_ROOT / "scripts").glob("*.py") if path.name != "__init__.py")
    assert len(entries) > 10
    assert {path.name: entry_point_problems(path) for path in entries} == {path.name: [] for path in entries}
    assert [
        path.name
        for path in (REPO_ROOT / "scripts").iterdir()
        if path.suffix not in (".py",) and path.name != "__pycache__"
    ] == []


def test_no_python_file_a_reader_cannot_hold() -> None:
    long = {
        str(path.relative_to(REPO_ROOT)): lines
        for path in sorted(REPO_ROOT.rglob("*.py"))
        if not {".venv", ".venv-checkov", "node_modules", "cdk.out", "tests", ".git"}
        & set(path.relative_to(REPO_ROOT).parts)
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_a_module_marks_its_tests_slow_in_the_one_spelling_the_quick_loop_reads() -> None:
    """make test-quick skips a whole-slow module by reading its text for conftest.SLOW_MODULE, so any other
    spelling of a module-level pytestmark would be imported and then, worse, silently run or silently kept."""
    spelled = {}
    for path in sorted((REPO_ROOT / "tests").rglob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and "pytestmark" in ast.unparse(node).split("=")[0]:
                spelled[path.name] = ast.unparse(node)
    assert spelled, "no module is marked slow as a whole: the check has nothing to read"
    assert {name: text for name, text in spelled.items() if text != SLOW_MODULE} == {}


# --- the checks catch what they are for -----------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_planted_circle_and_an_upward_import_are_caught(tmp_path: Path) -> None:
    rooms = ("low", "high")
    _tree(
        tmp_path,
        {
            "low/__init__.py": '"""Low."""\n',
            "low/a.py": "from low import b\n",
            "low/b.py": "def f():\n    from low.a import x\n",  # a function-level import counts too
            "low/c.py": "from high.d import y\n",
            "high/__init__.py": '"""High."""\n',
            "high/d.py": "import low.c\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from low import a\n",
        },
    )
    found = imports(tmp_path, rooms)
    assert circles(found) == [["high.d", "low.c"], ["low.a", "low.b"]]
    assert upward_imports(found, rooms) == ["low.c:1 imports high.d, a room above it"]
    # The TYPE_CHECKING import runs nowhere: it is no edge.
    assert Import("high.d", "low.a", 4) not in found


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("from loadgen.loadtest import main\n\ndef helper():\n    pass\n", "defines helper"),
        ("import sys\n", "should import one room's command, imports 0"),
        ("from loadgen.loadtest import main\n", "has no `if __name__"),
    ],
)
def test_an_entry_point_with_code_of_its_own_is_caught(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "thing.py"
    path.write_text(text)
    assert any(problem in found for found in entry_point_problems(path))


# --- every command still runs ------------------------------------------------------------------------------

ENTRY_POINTS = sorted(path for path in (REPO_ROOT / "scripts").glob("*.py") if path.name != "__init__.py")
# Needs the model-building layer (torch): `make test-model` runs its checks.
MODEL_LAYER = {"build_inf1_artifact.py"}


def _command(path: Path) -> tuple[str, str]:
    """The room module and callable an entry point runs."""
    tree = ast.parse(path.read_text())
    (found,) = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module and "." in node.module]
    return str(found.module), found.names[0].name


@pytest.mark.parametrize("path", [path for path in ENTRY_POINTS if path.name not in MODEL_LAYER], ids=lambda p: p.stem)
def test_every_command_answers_help(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The room's main behind each entry point takes --help and prints its usage (in this process: the
    subprocess test below shows one wrapper end to end)."""
    module_name, _ = _command(path)
    module = importlib.import_module(module_name)
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


@pytest.mark.slow
def test_an_entry_point_runs_from_any_directory(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "capacity_plan.py"), "--help"],
        cwd=tmp_path,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage:")
