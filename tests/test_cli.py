"""cliutil/__init__.py: the session a script gets for an endpoint URL on a machine with no AWS configuration, and
the Node.js a script's jsii starts on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cliutil import LOOPBACK_KEY, PINNED_NODE, aws_session, use_pinned_node

from .conftest import REPO_ROOT, offline_env


@pytest.fixture
def no_aws_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    # Resolving credentials would otherwise end by asking the EC2 instance metadata service (the network).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_aws_configuration")
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"])
def test_a_loopback_url_gets_dummy_credentials_and_a_default_region(url: str) -> None:
    session = aws_session(None, url)
    assert session.region_name == "us-east-1"
    assert session.get_credentials().access_key == LOOPBACK_KEY
    assert aws_session("eu-west-1", url).region_name == "eu-west-1"


@pytest.mark.usefixtures("no_aws_configuration")
@pytest.mark.parametrize(
    "url",
    [
        None,
        "https://runtime.sagemaker.us-east-1.amazonaws.com",
        "https://vpce-0123-abcd.runtime.sagemaker.us-east-1.vpce.amazonaws.com",
        "http://127.0.0.1.example.com:8080",  # a name that only looks like loopback
    ],
)
def test_any_other_url_gets_only_the_aws_configuration(url: str | None) -> None:
    session = aws_session(None, url)
    assert (session.region_name, session.get_credentials()) == (None, None)


# --- the Node.js jsii starts on ---------------------------------------------------------------------------


def test_jsii_is_pointed_at_the_pinned_node_unless_the_user_chose_one(tmp_path: Path) -> None:
    node = tmp_path / "node"
    node.write_text("")
    environ: dict[str, str] = {}
    use_pinned_node(environ, node)
    assert environ == {"JSII_NODE": str(node)}
    chosen = {"JSII_NODE": "/opt/node/bin/node"}
    use_pinned_node(chosen, node)
    assert chosen == {"JSII_NODE": "/opt/node/bin/node"}
    missing: dict[str, str] = {}
    use_pinned_node(missing, tmp_path / "not-installed")  # no node_modules: jsii's own choice, PATH's node
    assert missing == {}


def _machine_node_first() -> str:
    """PATH without the pinned Node's folder, with the machine's node (if any) first."""
    pinned = str(PINNED_NODE.parent)
    rest = [entry for entry in os.environ["PATH"].split(os.pathsep) if entry and Path(entry) != Path(pinned)]
    machine = shutil.which("node", path=os.pathsep.join(rest))
    return os.pathsep.join(([str(Path(machine).parent)] if machine else []) + rest)


@pytest.mark.slow
@pytest.mark.skipif(not PINNED_NODE.is_file(), reason="the pinned Node.js is not installed (make setup)")
def test_a_tool_that_starts_jsii_outside_make_gets_no_end_of_life_node_banner(tmp_path: Path) -> None:
    # What a tool that synthesizes (bench.py, the tests) does before the CDK starts jsii, with the machine's
    # Node.js first on PATH as outside make.
    code = "import cliutil; cliutil.use_pinned_node(); import aws_cdk; aws_cdk.App(); print('started')"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT, env=offline_env(tmp_path, path=_machine_node_first()), capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "started\n"), result.stderr
    assert "end-of-life" not in result.stderr.lower() and "EOL" not in result.stderr, result.stderr


def test_loading_the_stages_starts_no_cdk(tmp_path: Path) -> None:
    """Every command that reads a stage (smoke test, invoke, preflight, load test, capacity plan) starts in a
    fraction of a second: the stages are plain settings, the CDK (a jsii process) is the app's alone."""
    code = (
        "import sys; from stacks.stages import STAGES, load_stage, github_ci; "
        "[load_stage(name) for name in STAGES]; github_ci(); "
        "print(sorted(name for name in ('aws_cdk', 'jsii', 'constructs') if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=offline_env(tmp_path), capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
