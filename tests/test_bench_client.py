"""scripts/bench_client.py: connection counts (not timings, which depend on the machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools import bench_client

from .conftest import REPO_ROOT

CALLS = 12


def test_one_pooled_client_uses_one_connection_for_all_sequential_calls() -> None:
    run = bench_client.run_strategy(CALLS, client_per_call=False)
    assert (run.connections, len(run.call_ms)) == (1, CALLS)


def test_a_new_client_per_call_opens_a_connection_per_call() -> None:
    run = bench_client.run_strategy(CALLS, client_per_call=True)
    assert (run.connections, len(run.call_ms), len(run.setup_ms)) == (CALLS, CALLS, CALLS)


def test_the_pooled_client_keeps_one_connection_in_the_inferentia_format_too() -> None:
    # The cpu artifact's manifest: today's committed inf1 manifest has no sample_payload yet.
    cpu_manifest = REPO_ROOT / "model_artifacts" / "model-manifest.json"
    run = bench_client.run_strategy(3, client_per_call=False, profile="inferentia", manifest=cpu_manifest)
    assert (run.connections, len(run.call_ms)) == (1, 3)


def test_the_benchmark_prints_both_connection_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_client.main(["--calls", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:4] == ["one", "pooled", "client", "1"]
    assert lines[3].split()[:5] == ["new", "client", "per", "call", "3"]
    assert lines[4].startswith("ratio of medians (new client per call / pooled): ")


def test_the_benchmark_sends_the_manifests_sample_row() -> None:
    work = bench_client.workload(REPO_ROOT / "model_artifacts" / "model-manifest.json")
    assert ",".join(map(repr, work.row)) == "2.0,0.0,0.0,7.0,3.0,20.0,2.0"  # sample_payload, exact


def test_a_manifest_without_a_sample_row_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "model-manifest.json"
    manifest.write_text(json.dumps({"features": ["a"], "objective": "binary:logistic"}))
    assert bench_client.main(["--calls", "1", "--manifest", str(manifest)]) == 1
    assert capsys.readouterr().err == (
        f"bench_client: {manifest} has no sample_payload; the contract of issue 15 asks every manifest for one: "
        "rebuild the artifact\n"
    )
