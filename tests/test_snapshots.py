"""Snapshots guard refactors: they change only when the infrastructure does.

Update with `make test PYTEST_ARGS="-n0 --snapshot-update"` and review the diff like code. Every stage
stacks/stages.py defines is snapshotted; a new stage fails here until its first snapshot is reviewed.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from stacks.stages import STAGES

from .conftest import REPO_ROOT, Synthesized

SNAPSHOTS = REPO_ROOT / "tests" / "__snapshots__" / "test_snapshots"

_ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def normalized(template: dict[str, Any]) -> Any:
    """The template without asset hashes and the bootstrap-version parameter and rule."""
    text = _ASSET_HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True))
    masked = json.loads(text)
    masked.get("Parameters", {}).pop("BootstrapVersion", None)
    masked.get("Rules", {}).pop("CheckBootstrapVersion", None)
    for section in ("Parameters", "Rules"):
        if masked.get(section) == {}:
            del masked[section]
    return masked


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def test_masking_removes_only_noise(dev: Synthesized) -> None:
    masked = normalized(dev.template_json)
    assert "BootstrapVersion" not in json.dumps(masked)
    assert dev.model_asset_hash not in json.dumps(masked)
    assert set(masked["Resources"]) == set(dev.resources)


@pytest.mark.parametrize("stage_name", list(STAGES))
def test_template_matches_the_reviewed_snapshot(
    stage_name: str, synth_stage: Any, json_snapshot: SnapshotAssertion, request: pytest.FixtureRequest
) -> None:
    snapshot_file = SNAPSHOTS / f"test_template_matches_the_reviewed_snapshot[{stage_name}].json"
    if not snapshot_file.exists() and not request.config.getoption("--snapshot-update"):
        pytest.fail(
            f"stage {stage_name!r} has no reviewed snapshot yet: review its template (make synth STAGE={stage_name}), "
            f'then accept it with make test PYTEST_ARGS="-n0 --snapshot-update -k {stage_name}"',
            pytrace=False,
        )
    assert normalized(synth_stage(stage_name).template_json) == json_snapshot


def test_ci_roles_template_matches_the_reviewed_snapshot(github_ci: Any, json_snapshot: SnapshotAssertion) -> None:
    assert normalized(github_ci.template_json) == json_snapshot
