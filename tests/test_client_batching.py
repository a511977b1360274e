"""Micro-batching (rtb_client.MicroBatcher): concurrent callers' rows share one request, and each caller gets its
own row's answer, whatever the profile's request format; failures reach every caller of their batch."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from rtb_client import MAX_WAIT_US_LIMIT, MicroBatcher, ModelSchema, RequestError, codec_for

SCHEMA = ModelSchema(("a", "b", "c"), "value", 1)
# Long enough that a batch closes only when full: tests of gathering must not depend on thread timing.
UNTIL_FULL = 120.0


def score(row: Sequence[float]) -> float:
    """A value each row answers and no other row does (the test's rows differ in their first value)."""
    return float(row[0]) * 2 + 1


class Recording:
    """A runtime client that scores each request's rows as the profile's container would answer them."""

    def __init__(self, profile: str, fail: Callable[[int], BaseException | None] = lambda _: None) -> None:
        self.profile, self.fail = profile, fail
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        codec = codec_for(self.profile)
        assert (request["ContentType"], request["Accept"]) == (codec.content_type, codec.accept)
        rows = self._rows(request["Body"])
        with self.lock:
            self.batches.append(len(rows))
            number = len(self.batches)
        error = self.fail(number)
        if error is not None:
            raise error
        return {"Body": io.BytesIO(self._answer([score(row) for row in rows]))}

    def _rows(self, body: bytes) -> list[list[float]]:
        if self.profile == "cpu":
            # The container reads an empty field as missing (NaN).
            return [[float(value or "nan") for value in line.split(",")] for line in body.decode().splitlines()]
        tensor = json.loads(body)["inputs"][0]
        width = tensor["shape"][1]
        return [tensor["data"][start : start + width] for start in range(0, len(tensor["data"]), width)]

    def _answer(self, values: list[float]) -> bytes:
        if self.profile == "cpu":
            return "".join(f"{value!r}\n" for value in values).encode()
        output = {"name": "output__0", "shape": [len(values), 1], "datatype": "FP32", "data": values}
        return json.dumps({"outputs": [output]}).encode()


def call_together(batcher: MicroBatcher, rows: list[list[float]]) -> list[Any]:
    """Each row from a thread of its own, all at once: each thread's answer, or the exception it raised."""
    answers: list[Any] = [None] * len(rows)

    def call(index: int) -> None:
        try:
            answers[index] = batcher.predict(rows[index])
        except Exception as error:  # the test compares what each caller got
            answers[index] = error

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=UNTIL_FULL * 2)
    assert not any(thread.is_alive() for thread in threads), "a caller never got its answer"
    return answers


def rows_of(count: int) -> list[list[float]]:
    return [[float(index), 0.5, -1.25] for index in range(count)]


def until_full(batcher: MicroBatcher) -> MicroBatcher:
    batcher.max_wait = UNTIL_FULL  # past the setting's bound on purpose: only a full batch closes
    return batcher


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_callers_at_once_share_one_request_and_each_gets_its_own_rows_answer(profile: str) -> None:
    client = Recording(profile)
    batcher = until_full(MicroBatcher(client, "e", SCHEMA, profile, max_rows=8))
    rows = rows_of(8)
    assert call_together(batcher, rows) == [score(row) for row in rows]
    assert client.batches == [8]
    assert (batcher.requests, batcher.rows) == (1, 8)


def test_a_request_never_carries_more_than_max_rows() -> None:
    client = Recording("cpu")
    batcher = until_full(MicroBatcher(client, "e", SCHEMA, max_rows=4))
    rows = rows_of(12)
    assert call_together(batcher, rows) == [score(row) for row in rows]
    assert client.batches == [4, 4, 4]


def test_missing_values_and_numpy_rows_join_a_batch_as_the_profile_sends_them() -> None:
    import numpy as np

    client = Recording("cpu")
    batcher = until_full(MicroBatcher(client, "e", SCHEMA, max_rows=3))
    rows: list[Any] = [[1.0, None, 2.0], np.array([2.0, np.nan, 3.0], dtype=np.float32), [np.float64(3.0), 1, 2]]
    assert call_together(batcher, rows) == [3.0, 5.0, 7.0]
    assert client.batches == [3]


def test_a_gpu_batch_carries_missing_values_too() -> None:
    batcher = MicroBatcher(Recording("gpu"), "e", SCHEMA, "gpu", max_rows=2, max_wait_us=0)
    assert batcher.predict([4.0, None, 1.0]) == 9.0  # gpu takes them (docs/profiles.md)


def test_a_lone_caller_is_sent_after_the_wait_not_held_for_company() -> None:
    client = Recording("cpu")
    batcher = MicroBatcher(client, "e", SCHEMA, max_rows=64, max_wait_us=50)
    assert [batcher.predict(row) for row in rows_of(3)] == [score(row) for row in rows_of(3)]
    assert client.batches == [1, 1, 1]


def test_max_rows_1_sends_each_row_at_once() -> None:
    client = Recording("cpu")
    batcher = MicroBatcher(client, "e", SCHEMA, max_rows=1, max_wait_us=MAX_WAIT_US_LIMIT)
    rows = rows_of(5)
    assert call_together(batcher, rows) == [score(row) for row in rows]
    assert client.batches == [1] * 5


def test_a_failed_request_fails_every_caller_of_its_batch_and_only_them() -> None:
    failure = ConnectionError("the endpoint went away")
    client = Recording("cpu", fail=lambda number: failure if number == 1 else None)
    batcher = until_full(MicroBatcher(client, "e", SCHEMA, max_rows=4))
    answers = call_together(batcher, rows_of(4))
    assert answers == [failure] * 4
    later = [[row[0] + 10, *row[1:]] for row in rows_of(4)]
    assert call_together(batcher, later) == [score(row) for row in later]  # the next batch is unaffected
    assert client.batches == [4, 4]


def test_a_malformed_row_fails_its_caller_before_it_joins_a_batch() -> None:
    client = Recording("cpu")
    batcher = MicroBatcher(client, "e", SCHEMA, max_rows=4, max_wait_us=0)
    with pytest.raises(RequestError, match=re.escape("row 0 has 2 values; the model takes 3: a, b, c")):
        batcher.predict([1.0, 2.0])
    assert client.batches == []


def test_an_answer_that_does_not_fit_the_batch_fails_its_callers() -> None:
    class Short(Recording):
        def _answer(self, values: list[float]) -> bytes:
            return super()._answer(values[:-1])

    batcher = until_full(MicroBatcher(Short("cpu"), "e", SCHEMA, max_rows=2))
    answers = call_together(batcher, rows_of(2))
    assert all(
        isinstance(answer, RequestError) and "expected 2 predictions, got 1" in str(answer) for answer in answers
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"profile": "inferentia"},
            "profile='inferentia' cannot batch: its model is compiled for one row per request; allowed: profiles "
            "whose requests carry many rows (cpu, gpu)",
        ),
        ({"max_rows": 0}, "max_rows=0 is invalid: allowed: a whole number from 1"),
        ({"max_rows": 2.5}, "max_rows=2.5 is invalid: allowed: a whole number from 1"),
        (
            {"profile": "gpu", "max_rows": 1001},
            "max_rows=1001 is invalid for profile 'gpu': allowed: at most 1000, the rows one of its requests may carry",
        ),
        ({"max_wait_us": -1}, "max_wait_us=-1 is invalid: allowed: a whole number of microseconds from 0"),
        ({"max_wait_us": True}, "max_wait_us=True is invalid: allowed: a whole number of microseconds from 0"),
        (
            {"max_wait_us": 5000},
            "max_wait_us=5000 is invalid: allowed: at most 1000 (1 ms); a longer wait spends the latency budget "
            "batching is meant to save",
        ),
        ({"profile": "tpu"}, "profile='tpu' is invalid: allowed: one of ['cpu', 'gpu', 'inferentia']"),
    ],
)
def test_settings_a_batcher_cannot_honour_are_refused_in_one_line(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        MicroBatcher(Recording("cpu"), "e", SCHEMA, **arguments)
    assert str(raised.value) == message
