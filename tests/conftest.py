"""Shared fixtures: each stage is synthesized once per session, with the same context as `cdk synth`."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import pytest
import trustme

from cliutil import use_pinned_node

use_pinned_node()  # before the CDK starts jsii: tests may run outside make, whose PATH has the pinned Node

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from stacks.compliance import add_compliance_checks  # noqa: E402
from stacks.github_ci import GitHubCiStack  # noqa: E402
from stacks.github_ci_settings import GitHubCiSettings  # noqa: E402
from stacks.inference_stack import InferenceStack  # noqa: E402
from stacks.settings import DataCaptureSettings, RolloutSettings, ShadowSettings, StageSettings  # noqa: E402
from stacks.stages import STAGES, load_stage  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

# jsii prints a banner per process on Node 20; the Makefile pins Node 22 but tests may run outside it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

# Checks that need the model-building layer (torch, Treelite, Triton's schema): `make test-model` runs them.
MODEL_BUILD_TESTS = REPO_ROOT / "tests" / "model_build"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--model-build",
        action="store_true",
        help="collect tests/model_build too (needs the model-building layer: make setup-model)",
    )


# How a module says all of its tests are slow; `-m "not slow"` (make test-quick) then does not even import it,
# so the quick loop does not pay for cfn-lint, moto or Hypothesis to load only to deselect their tests.
SLOW_MODULE = "pytestmark = pytest.mark.slow"


def skips_slow_modules(config: pytest.Config) -> bool:
    return str(config.getoption("markexpr")).split() == ["not", "slow"]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not config.getoption("--model-build") and (
        collection_path == MODEL_BUILD_TESTS or MODEL_BUILD_TESTS in collection_path.parents
    ):
        return True
    if skips_slow_modules(config) and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return SLOW_MODULE in collection_path.read_text().splitlines() or None
    return None


def _share_botocore_loaders() -> None:
    """Every botocore session of a test process shares one loader per data path: the service models (EC2's is
    megabytes of JSON) are parsed once per process, not once per session. botocore never changes a loaded model."""
    create = botocore.loaders.create_loader

    @functools.cache
    def shared(search_path_string: str | None = None) -> botocore.loaders.Loader:
        return create(search_path_string)

    botocore.session.create_loader = shared


_share_botocore_loaders()


# Files the kit reads as data and some tests write in copies: the suite must leave the repository's own as it
# found them (a write-back that missed its monkeypatch once committed a test's figure to measurements.json).
GUARDED = ("stacks/data", "model_artifacts", "cdk.context.json", "cdk.json")
_GUARD = pytest.StashKey[dict[str, str]]()


def _guarded_digests() -> dict[str, str]:
    paths = [REPO_ROOT / name for name in GUARDED]
    files = sorted(file for path in paths for file in ([path] if path.is_file() else path.rglob("*")) if file.is_file())
    return {str(file.relative_to(REPO_ROOT)): hashlib.sha256(file.read_bytes()).hexdigest() for file in files}


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        session.config.stash[_GUARD] = _guarded_digests()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_GUARD, None)
    if before is None:
        return
    after = _guarded_digests()
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if changed:
        session.config.get_terminal_writer().line(
            f"\nthe suite changed the repository's own data files: {', '.join(changed)}; a test wrote where it "
            "should have written into a copy (restore them with git checkout)",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("--model-build"):
        return None
    return "tests/model_build not collected (needs torch, Treelite, tritonclient): make test-model runs it"


def offline_env(tmp_path: Path, *, path: str | None = None) -> dict[str, str]:
    """The environment of a fresh machine with no AWS configuration, for running a script in a subprocess:
    HOME an empty folder, no AWS_* variables, AWS config and credentials files that do not exist; nothing
    else but PATH (this process's unless given: jsii needs a node)."""
    home = tmp_path / "empty-home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ["PATH"] if path is None else path,
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-such-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-such-credentials"),
    }


def cdk_context() -> dict[str, Any]:
    """Feature flags from cdk.json plus the committed lookups, exactly what `cdk synth` passes."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context.update(json.loads((REPO_ROOT / "cdk.context.json").read_text()))
    return context


@dataclass(frozen=True)
class Synthesized:
    """One synthesized stage: its settings, template, cloud assembly folder and validation report."""

    settings: StageSettings
    outdir: Path
    template_json: dict[str, Any]
    report: dict[str, Any]

    @property
    def template(self) -> Template:
        return Template.from_json(self.template_json)

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template_json["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, Any]:
        return {key: value for key, value in self.resources.items() if value["Type"] == resource_type}

    @property
    def model_asset_hash(self) -> str:
        """The asset hash of the packaged model (the stack has one other file asset: CDK's handler code)."""
        manifest = json.loads((self.outdir / f"{self.settings.stack_name}.assets.json").read_text())
        (found,) = [key for key, asset in manifest["files"].items() if asset["source"]["path"].endswith(".tar.gz")]
        return str(found)

    def one(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.of_type(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))


def synthesize(settings: StageSettings, outdir: Path) -> Synthesized:
    """Synthesize one stage the way app.py does (nag packs on, built-in cfn rules off) into ``outdir``."""
    app = App(outdir=str(outdir), context=cdk_context(), builtin_cloud_formation_validation=False)
    InferenceStack(app, settings.stack_name, settings=settings)
    add_compliance_checks(app)
    app.synth()
    template = json.loads((outdir / f"{settings.stack_name}.template.json").read_text())
    report = json.loads((outdir / "validation-report.json").read_text())
    return Synthesized(settings=settings, outdir=outdir, template_json=template, report=report)


# How long a worker waits for another to finish a synthesis it claimed before doing it itself (a claim left by a
# worker that died); far above any synth on a busy machine.
SHARED_SYNTH_PATIENCE_SECONDS = 600.0


def shared_synthesis(tmp_path_factory: pytest.TempPathFactory, key: str, settings: StageSettings) -> Synthesized:
    """``settings`` synthesized once per test session, whichever pytest-xdist worker asks first: the others read
    its cloud assembly instead of synthesizing the same app again (each synth costs seconds of jsii)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-synth"
    root.mkdir(exist_ok=True)
    outdir, done = root / key, root / f"{key}.done"
    try:
        os.close(os.open(root / f"{key}.claim", os.O_CREAT | os.O_EXCL))
    except FileExistsError:  # another worker synthesizes it: wait for its marker, then read what it wrote
        deadline = time.monotonic() + SHARED_SYNTH_PATIENCE_SECONDS
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if done.exists():
            template = json.loads((outdir / f"{settings.stack_name}.template.json").read_text())
            report = json.loads((outdir / "validation-report.json").read_text())
            return Synthesized(settings=settings, outdir=outdir, template_json=template, report=report)
        return synthesize(settings, tmp_path_factory.mktemp(f"cdk-{key}"))
    synthesized = synthesize(settings, outdir)
    done.touch()
    return synthesized


@pytest.fixture(scope="session")
def synth_stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Synthesized]]:
    """Synthesize a stage by name, at most once per session (across the workers too)."""
    cache: dict[str, Synthesized] = {}

    def get(name: str) -> Synthesized:
        if name not in cache:
            cache[name] = shared_synthesis(tmp_path_factory, f"stage-{name}", load_stage(name))
        return cache[name]

    yield get


# The dev stage with every optional rollout feature on and a bigger instance type: the "after" of a
# before/after pair with dev (tests/test_rollout.py), and the template that shows the options.
DEV_OPTIONS = {
    "instance_type": "ml.c5.2xlarge",
    "rollout": RolloutSettings(traffic_shifting="LINEAR", step_percent=20, wait_interval_seconds=180),
    "data_capture": DataCaptureSettings(enabled=True, sampling_percent=10),
    "shadow": ShadowSettings(model_artifact="model_artifacts/model.tar.gz", sampling_percent=20),
}


@pytest.fixture(scope="session")
def dev_options(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    settings = dataclasses.replace(load_stage("dev"), **DEV_OPTIONS)  # type: ignore[arg-type]
    return shared_synthesis(tmp_path_factory, "dev-options", settings)


# Thresholds no default shares: an alarm that ignored a setting, or a unit conversion off by a factor (the
# latency metrics are microseconds, the setting milliseconds), cannot pass by coincidence.
ODD_THRESHOLDS = {"latency_slo_ms": 12.5, "error_rate_alarm": 0.025}


@pytest.fixture(scope="session")
def dev_odd_thresholds(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    settings = dataclasses.replace(load_stage("dev"), **ODD_THRESHOLDS)  # type: ignore[arg-type]
    return shared_synthesis(tmp_path_factory, "dev-odd-thresholds", settings)


@pytest.fixture(scope="session")
def dev(synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage("dev")


@pytest.fixture(scope="session")
def gpu(synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage("gpu")


@pytest.fixture(scope="session")
def inferentia(synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage("inferentia")


@pytest.fixture(scope="session")
def shared_vpc(synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage("shared-vpc")


@pytest.fixture(scope="session")
def shared_vpc_own_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The shared-vpc stage creating its own runtime endpoint in the existing VPC (one without an endpoint yet)."""
    settings = dataclasses.replace(load_stage("shared-vpc"), runtime_endpoint=None)
    return shared_synthesis(tmp_path_factory, "shared-vpc-own-endpoint", settings)


@pytest.fixture(scope="session")
def portable(synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage("portable")


@pytest.fixture(scope="session", params=list(STAGES))
def any_stage(request: pytest.FixtureRequest, synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage(str(request.param))


@dataclass(frozen=True)
class SynthesizedCi:
    """The GitHub CI roles stack, synthesized with the nag packs."""

    settings: GitHubCiSettings
    template_json: dict[str, Any]
    report: dict[str, Any]
    path: Path

    @property
    def template(self) -> Template:
        return Template.from_json(self.template_json)


def synthesize_ci(settings: GitHubCiSettings, outdir: Path) -> SynthesizedCi:
    app = App(outdir=str(outdir), context=cdk_context(), builtin_cloud_formation_validation=False)
    GitHubCiStack(app, settings.stack_name, settings=settings)
    add_compliance_checks(app)
    app.synth()
    path = outdir / f"{settings.stack_name}.template.json"
    report = json.loads((outdir / "validation-report.json").read_text())
    return SynthesizedCi(settings=settings, template_json=json.loads(path.read_text()), report=report, path=path)


@pytest.fixture(scope="session")
def github_ci(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedCi:
    from stacks.stages import github_ci as settings

    return synthesize_ci(settings(), tmp_path_factory.mktemp("cdk-github-ci"))


# --- the client's zonal path: a trustme CA, a name resolved to a local server, fake credentials -----------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def resolve(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, int], None]:
    """``resolve(name, port)``: ``name`` on port 443 reaches 127.0.0.1:``port`` in this process; every other
    name resolves as before. The URL and TLS name stay the real zonal name: only the address is local."""
    real = socket.getaddrinfo
    table: dict[str, int] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in table and port in (443, "443", "https"):
            return real("127.0.0.1", table[host], *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table.__setitem__


@pytest.fixture
def offline_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake static credentials from the environment; no AWS configuration, proxy or CA bundle of this machine."""
    for name in (
        "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
        "ALL_PROXY", "all_proxy",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDZONALTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "zonal-test-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
