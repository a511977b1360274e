"""scripts/bench_client.py: connection counts (not timings, which depend on the machine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
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
    assert bench_client.main(["--calls", "3", "--cpu-calls", "0"]) == 0
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
    assert bench_client.main(["--calls", "1", "--cpu-calls", "0", "--manifest", str(manifest)]) == 1
    assert capsys.readouterr().err == (
        f"bench_client: {manifest} has no sample_payload; the contract of issue 15 asks every manifest for one: "
        "rebuild the artifact\n"
    )


@pytest.mark.slow  # the endpoint runs in a process of its own
def test_the_benchmark_compares_the_client_cpu_of_both_transports_in_the_same_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_client.main(["--calls", "3", "--cpu-calls", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:4] == ["one", "pooled", "client", "1"]  # what it printed before, first
    table = lines[lines.index("") + 1 :]
    assert table[0].startswith("client CPU per call (cpu profile): 20 sequential calls per run, median of 3 runs")
    rows = [line.split() for line in table[2:5]]
    assert [row[:2] for row in rows] == [
        ["boto3", "invoke_endpoint"],
        ["fast", "invoke_endpoint"],
        ["fast", "predict()"],
    ]
    rates = [float(row[2].replace(",", "")) for row in rows]
    assert all(rate > 0 for rate in rates)
    ratio = rates[1] / rates[0]
    assert table[5].startswith(
        f"fast / boto3 (invoke_endpoint): {ratio:.2f}x calls per CPU-second (goal: at least 5x: "
    )


def test_the_cpu_comparison_counts_only_the_clients_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # The endpoint is another process: this one's CPU is the client's alone. Each run is a fresh client of its
    # transport, and each transport is measured CPU_REPEATS times, in turns.
    seen: list[tuple[str, bool]] = []

    def measured(url: str, transport: str, calls: int, work: object, profile: str, *, rows: bool) -> float:
        assert url.startswith("http://127.0.0.1:") and calls == 5
        seen.append((transport, rows))
        return 100.0 if transport == "boto3" else 600.0

    monkeypatch.setattr(bench_client, "calls_per_cpu_second", measured)
    monkeypatch.setattr(bench_client, "endpoint_process", _fake_process)
    rates = bench_client.cpu_rates(5)
    assert sorted(seen) == sorted(bench_client.CPU_RUNS * bench_client.CPU_REPEATS)
    assert seen[:3] == list(reversed(bench_client.CPU_RUNS)) and seen[3:6] == list(bench_client.CPU_RUNS)
    assert bench_client.format_cpu_table(5, rates)[-1] == (
        "fast / boto3 (invoke_endpoint): 6.00x calls per CPU-second (goal: at least 5x: met)"
    )


@contextmanager
def _fake_process(profile: str, manifest: Path | None) -> Iterator[str]:
    yield "http://127.0.0.1:9"
