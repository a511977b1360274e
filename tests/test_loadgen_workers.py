"""A distributed run's master: each step's rate goes to the workers alive at its start, split evenly so
the shares add up to the step's rate; each worker's tally counts once; no worker, no step.

Locust's master runner is stood in for by its parts the master uses (its worker list with Locust's states,
send_message, register_message), so no Locust runs in this process.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from loadgen.plan import Distribution, LoadTestError
from loadgen.runners import Workers, alive_workers
from loadgen.step_tally import Tally, merged


@pytest.fixture(autouse=True)
def _no_locust_in_this_process() -> Iterator[None]:
    yield
    assert "locust" not in sys.modules


class Runner:
    """Locust's MasterRunner as the master sees it: workers by id with Locust's states ("ready", "spawning",
    "running", "missing" once heartbeats stop), and the messages sent to each."""

    def __init__(self, states: dict[str, str]) -> None:
        self.clients = {worker: SimpleNamespace(id=worker, state=state) for worker, state in states.items()}
        self.sent: list[tuple[str, dict[str, Any], str | None]] = []
        self.listeners: dict[str, Any] = {}

    def register_message(self, kind: str, listener: Any) -> None:
        self.listeners[kind] = listener

    def send_message(self, kind: str, data: dict[str, Any], client_id: str | None = None) -> None:
        self.sent.append((kind, data, client_id))

    def steps_sent(self) -> dict[str, float]:
        return {worker: data["rate"] for kind, data, worker in self.sent if kind == "kit_step" and worker}

    def report(self, worker: str, round_: int, offered: float, calls: int = 10) -> None:
        """A worker's tally arriving at the master, as Locust delivers a custom message."""
        tally = Tally()
        for _ in range(calls):
            tally.record("ok", 5.0, 5.0, 0.0)
        tally.close(1.0, 20.0, offered_rps=offered)
        message = SimpleNamespace(node_id=worker, data={"index": 0, "round": round_, "tally": tally.to_message()})
        self.listeners["kit_tally"](environment=None, msg=message)


def _no_wait(seconds: float) -> None:
    raise AssertionError("the master waited for a tally that had already arrived")


def test_a_steps_rate_goes_to_the_live_workers_only_and_their_shares_add_up_to_it() -> None:
    runner = Runner({"w1": "running", "w2": "ready", "w3": "missing", "w4": "spawning"})
    assert alive_workers(runner) == ["w1", "w2", "w4"]
    workers = Workers(runner, drain_seconds=1.0, sleep=_no_wait)
    assert workers.begin(0, offered_rps=90.0, warmup_seconds=1.0)
    shares = runner.steps_sent()
    assert shares == {"w1": 30.0, "w2": 30.0, "w4": 30.0}  # never to the worker whose heartbeats stopped
    assert sum(shares.values()) == 90.0
    for worker, rate in shares.items():
        runner.report(worker, workers.round, rate)
    tallies = workers.finish(0)
    assert tallies is not None
    stats = merged(tallies).stats(offered_rps=90.0, users=9)
    # What each worker says it paced, added up, is the step's rate.
    assert sum(stats.process_offered_rps) == stats.offered_rps == 90.0
    assert [kind for kind, _, worker in runner.sent if kind == "kit_finish"] == ["kit_finish"] * 3
    assert {worker for kind, _, worker in runner.sent if kind == "kit_finish"} == {"w1", "w2", "w4"}


def test_a_tally_counts_once_from_a_worker_of_its_own_round() -> None:
    runner = Runner({"w1": "running", "w2": "running"})
    workers = Workers(runner, drain_seconds=1.0, sleep=_no_wait)
    assert workers.begin(0, offered_rps=40.0, warmup_seconds=0.0)
    first = workers.round
    runner.report("w1", first, 20.0, calls=10)
    runner.report("w1", first, 20.0, calls=10)  # a duplicate of w1's
    runner.report("w9", first, 20.0, calls=10)  # a worker that joined after the step began
    runner.report("w2", first - 1, 20.0, calls=10)  # a late tally of an earlier round
    assert workers.ignored == 3
    runner.report("w2", first, 20.0, calls=7)
    tallies = workers.finish(0)
    assert tallies is not None
    assert merged(tallies).stats(offered_rps=40.0, users=4).requests == 17
    # The next step's round refuses this one's tallies, however late they come.
    assert workers.begin(1, offered_rps=60.0, warmup_seconds=0.0)
    runner.report("w1", first, 20.0)
    assert workers.ignored == 4 and workers.tallies == {}


def test_a_worker_lost_during_a_step_stops_the_run_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    runner = Runner({"w1": "running", "w2": "running"})
    waits: list[float] = []
    workers = Workers(runner, drain_seconds=60.0, sleep=waits.append)
    assert workers.begin(3, offered_rps=40.0, warmup_seconds=0.0)
    runner.report("w1", workers.round, 20.0)
    runner.clients["w2"].state = "missing"  # its heartbeats stopped: its share was not sent
    assert workers.finish(3) is None
    assert waits == []  # not the drain's 60 s: the master knows it is gone
    assert capsys.readouterr().err.splitlines() == [
        "load test stopped: worker w2 was lost during step 4; its share was not sent"
    ]


def test_a_step_with_no_worker_alive_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    runner = Runner({"w1": "missing"})
    workers = Workers(runner, drain_seconds=1.0, sleep=_no_wait)
    assert not workers.begin(0, offered_rps=40.0, warmup_seconds=0.0)
    assert runner.sent == []
    assert capsys.readouterr().err.splitlines() == ["load test stopped: no worker is alive to send step 1"]


def test_a_distribution_without_workers_is_refused_in_one_line() -> None:
    with pytest.raises(LoadTestError) as refused:
        Distribution(0, 0, "127.0.0.1", 5557)
    assert str(refused.value) == (
        "processes=0, remote_workers=0 is invalid: allowed: at least 1 worker in all (a master with no worker "
        "sends nothing)"
    )
    assert Distribution(0, 2, "10.0.0.5", 5557).remote_workers == 2
