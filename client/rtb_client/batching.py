"""Micro-batching: concurrent callers' rows gathered into one multi-row request, each caller answered with its own
row's prediction.

An ad server scores one bid request per call, from many threads (or greenlets) at once. Each InvokeEndpoint call
costs the client a signature, a request and a parse, and the endpoint a request's overhead, whatever its row
count; the cpu container reads multi-row CSV and Triton FIL takes a batch dimension, so rows that arrive within
a few hundred microseconds of each other can share one call. The first caller of a batch leads it: it waits at
most ``max_wait_us`` for others to join (or until ``max_rows`` have), sends the batch, and hands each caller its
row's answer. No thread of the batcher's own: it works the same under threads and under gevent's patched ones.

A caller waits at most ``max_wait_us`` longer than an unbatched call (the latency it trades for CPU); the
benchmark (make bench-client) prints both, per batch size.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .codecs import codec_for
from .schema import ModelSchema, Prediction, Row

# The longest a leader may hold a batch open: beyond a millisecond, batching spends the latency budget it exists
# to protect (the kit's SLO is 20 ms end to end, of which the network and the model take most).
MAX_WAIT_US_LIMIT = 1000


@dataclass
class _Batch:
    rows: list[list[float]] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    predictions: list[Prediction] | None = None
    error: BaseException | None = None


class MicroBatcher:
    """One endpoint's calls, batched: ``predict(row)`` from any number of threads at once.

    ``client`` is any client with SageMaker Runtime's ``invoke_endpoint`` (``runtime_client()``); ``max_rows``
    bounds a request's rows (at most the profile's own limit), ``max_wait_us`` how long a batch's first row
    waits for company. A failed request fails every caller of its batch with the same exception; a malformed
    row fails only its caller, before it joins a batch."""

    def __init__(
        self,
        client: Any,
        endpoint_name: str,
        schema: ModelSchema,
        profile: str = "cpu",
        *,
        max_rows: int = 32,
        max_wait_us: int = 200,
    ) -> None:
        codec = codec_for(profile)
        if codec.max_rows_per_request < 2:
            raise ValueError(
                f"profile={profile!r} cannot batch: its model is compiled for one row per request; allowed: "
                "profiles whose requests carry many rows (cpu, gpu)"
            )
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"max_rows={max_rows!r} is invalid: allowed: a whole number from 1")
        if max_rows > codec.max_rows_per_request:
            raise ValueError(
                f"max_rows={max_rows} is invalid for profile {profile!r}: allowed: at most "
                f"{codec.max_rows_per_request}, the rows one of its requests may carry"
            )
        if isinstance(max_wait_us, bool) or not isinstance(max_wait_us, int) or max_wait_us < 0:
            raise ValueError(f"max_wait_us={max_wait_us!r} is invalid: allowed: a whole number of microseconds from 0")
        if max_wait_us > MAX_WAIT_US_LIMIT:
            raise ValueError(
                f"max_wait_us={max_wait_us} is invalid: allowed: at most {MAX_WAIT_US_LIMIT} (1 ms); a longer "
                "wait spends the latency budget batching is meant to save"
            )
        self.client, self.endpoint_name, self.schema, self.codec = client, endpoint_name, schema, codec
        self.max_rows, self.max_wait = max_rows, max_wait_us / 1_000_000
        self._lock = threading.Lock()
        self._open: _Batch | None = None
        # Counters for benchmarks and tests: requests sent and rows they carried.
        self.requests = 0
        self.rows = 0

    def predict(self, row: Row) -> Prediction:
        """The prediction for one row, sent alone or with the rows of other callers waiting at the same time."""
        # Checked and made plain floats here (a numpy row too), so a bad row fails only its caller.
        (plain,) = self.schema.checked_rows([row], self.codec.profile)
        with self._lock:
            batch = self._open
            leader = batch is None
            if batch is None:
                batch = self._open = _Batch()
            position = len(batch.rows)
            batch.rows.append(plain)
            if len(batch.rows) >= self.max_rows:
                self._open = None  # full: the next caller starts a new batch
                batch.full.set()
        if leader:
            self._lead(batch)
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        assert batch.predictions is not None
        return batch.predictions[position]

    def _lead(self, batch: _Batch) -> None:
        if self.max_wait > 0 and self.max_rows > 1:
            batch.full.wait(self.max_wait)
        with self._lock:
            if self._open is batch:
                self._open = None  # closed by time: later rows start a new batch
            rows = list(batch.rows)
        try:
            response = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType=self.codec.content_type,
                Accept=self.codec.accept,
                Body=self.codec.encode(rows),
            )
            batch.predictions = self.codec.decode(response["Body"].read(), len(rows), self.schema)
        except BaseException as error:  # every caller of the batch learns why it failed
            batch.error = error
        finally:
            with self._lock:
                self.requests += 1
                self.rows += len(rows)
            batch.done.set()
