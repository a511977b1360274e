"""scripts/bench_client.py: connection counts (not timings, which depend on the machine)."""

from __future__ import annotations

import pytest

from scripts import bench_client

CALLS = 12


def test_one_pooled_client_uses_one_connection_for_all_sequential_calls() -> None:
    run = bench_client.run_strategy(CALLS, client_per_call=False)
    assert (run.connections, len(run.call_ms)) == (1, CALLS)


def test_a_new_client_per_call_opens_a_connection_per_call() -> None:
    run = bench_client.run_strategy(CALLS, client_per_call=True)
    assert (run.connections, len(run.call_ms), len(run.setup_ms)) == (CALLS, CALLS, CALLS)


def test_the_pooled_client_keeps_one_connection_in_the_inferentia_format_too() -> None:
    run = bench_client.run_strategy(3, client_per_call=False, profile="inferentia")
    assert (run.connections, len(run.call_ms)) == (1, 3)


def test_the_benchmark_prints_both_connection_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_client.main(["--calls", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:4] == ["one", "pooled", "client", "1"]
    assert lines[3].split()[:5] == ["new", "client", "per", "call", "3"]
    assert lines[4].startswith("ratio of medians (new client per call / pooled): ")
