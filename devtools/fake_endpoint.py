"""A local stand-in for a SageMaker real-time endpoint with a known capacity, for proving the load test.

    python -m scripts.fake_endpoint --workers 4 --service-ms 20 --port 8080 [--max-queue 64] [--seconds 900]
    python -m scripts.fake_endpoint --profile gpu ...          # answer as the gpu profile's container would
    python -m scripts.fake_endpoint --model model_artifacts/model.tar.gz ...   # score with the packaged model
    python -m scripts.fake_endpoint --manifest my-model-manifest.json ...      # the stand-in, shaped like a model

It speaks SageMaker Runtime's InvokeEndpoint as botocore calls it (``POST /endpoints/{name}/invocations``;
SigV4 headers are accepted and ignored) on 127.0.0.1 only, in one serving profile's format (--profile):
``cpu``, the XGBoost container's ``text/csv`` in and out (one number per line, or one list per line for
class probabilities, as its serve.py prints them); ``gpu``, Triton's KServe v2 JSON as the FIL backend
answers (``[rows, 2]`` for binary:logistic, ``[rows, k]`` for k class probabilities, else ``[rows, 1]``);
``inferentia``, the Neo PyTorch container's JSON array of one row, answered ``[p]`` or ``[[p1, ..., pk]]``.
Formats: tests/fixtures/client/README.md. Exactly ``workers``
requests are in service at once, each for ``service_time`` seconds; the rest wait in one FIFO queue, so
the capacity is ``workers / service_time`` requests per second: below it the latency is the service time,
above it the queue and the latency grow. With ``max_queue`` set, a request that finds that many already
waiting gets 503 ServiceUnavailable at once, as SageMaker answers when an endpoint is overloaded.

The shapes come from a model manifest: the one beside --model, else --manifest, else the profile's packaged
artifact's. Without --model, predictions are a cheap deterministic function of the row shaped like the
manifest's output (a probability, a value, or class probabilities): what is measured here is the service,
not the model. With --model, the packaged XGBoost model scores instead (what scripts/smoke_test.py checks;
it needs the xgboost package). In the cpu format a row with more values than the manifest's features fails
as in the XGBoost container (ModelError), and so do rows of mixed length and values beyond float32; a
shorter row is scored as if the missing values were missing (the stand-in reads them as 0). The gpu and
inferentia formats refuse any shape but [rows, features] and [1, features], as Triton and the compiled
model do.
A missing value follows the XGBoost container: an empty CSV field (or ``nan``) is NaN, and the packaged model
scores it as XGBoost does (its default direction at each split); in the gpu format a JSON ``NaN``, which
Triton's parser reads.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import queue
import re
import socket
import struct
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from cliutil import is_loopback_host
from modelpack.model_manifest import beside, packaged_manifest_path, read_manifest, schema_of
from rtb_client import FLOAT32_MAX, ModelSchema

_INVOCATIONS = re.compile(r"^/endpoints/(?P<name>[^/?]+)/invocations$")

# Rows in (NaN for a missing value), ``columns`` float32 numbers per row out.
Scores = Callable[[list[list[float]]], list[list[float]]]


@dataclass(frozen=True)
class Model:
    """What the fake endpoint serves: the manifest's schema and objective, and how rows are scored."""

    schema: ModelSchema
    objective: str
    scores: Scores


def _float32(value: float) -> float:
    """The value as FP32 holds it (every container's outputs are float32)."""
    rounded: float = struct.unpack("f", struct.pack("f", value))[0]
    return rounded


def stand_in(manifest: Mapping[str, Any], where: str = "the manifest") -> Model:
    """A fixed function of the row shaped like the manifest's model: a logistic probability, a linear value,
    or a softmax over ``columns`` classes. Any fixed weights give deterministic answers."""
    schema = schema_of(dict(manifest), where)
    outputs = 1 if schema.kind != "class_probabilities" else schema.columns
    weights = [[0.1 * math.sin(1 + i + 7 * c) for i in range(len(schema.features))] for c in range(outputs)]
    biases = [-0.2 + 0.1 * c for c in range(outputs)]

    def one(row: list[float]) -> list[float]:
        z = [
            max(-60.0, min(60.0, b + sum(w * (0.0 if math.isnan(x) else x) for w, x in zip(ws, row, strict=True))))
            for ws, b in zip(weights, biases, strict=True)
        ]
        if schema.kind == "probability":
            return [_float32(1.0 / (1.0 + math.exp(-z[0])))]
        if schema.kind == "value":
            return [_float32(z[0])]
        if schema.kind == "positive_value":  # the log-link objectives: exp of the margin
            return [_float32(math.exp(z[0]))]
        exps = [math.exp(v - max(z)) for v in z]
        return [_float32(e / sum(exps)) for e in exps]

    return Model(schema, str(manifest["objective"]), lambda rows: [one(row) for row in rows])


def packaged_model(path: Path) -> Model:
    """The XGBoost model in a model.tar.gz and the manifest beside it, scored as the container scores it
    (a missing value is NaN, XGBoost's missing)."""
    import numpy as np
    import xgboost as xgb

    manifest_file = beside(path)
    manifest = read_manifest(manifest_file)
    schema = schema_of(manifest, manifest_file)
    named = manifest.get("model_file")
    if isinstance(named, str) and named.endswith(".pth"):
        raise ValueError(f"{path}: its model file {named} is TorchScript, not XGBoost; give the source model.tar.gz")
    with tarfile.open(path) as archive:
        files = [member for member in archive.getmembers() if member.isfile()]
        # The XGBoost container loads the first file; a Triton repository names its model file in the manifest.
        member = next((m for m in files if m.name.lstrip("./") == named), files[0] if files else None)
        data = archive.extractfile(member) if member is not None else None
        if data is None:
            raise ValueError(f"{path}: holds no model file")
        booster = xgb.Booster()
        booster.load_model(bytearray(data.read()))
    booster.set_param({"nthread": 1})

    def scores(rows: list[list[float]]) -> list[list[float]]:
        matrix = xgb.DMatrix(np.array(rows, dtype=np.float32), missing=np.nan)
        answer = booster.predict(matrix).astype(np.float32).reshape(len(rows), -1)
        return [[float(value) for value in row] for row in answer.tolist()]

    return Model(schema, str(manifest["objective"]), scores)


def profile_model(profile: str) -> Model:
    """The stand-in shaped like the profile's packaged artifact (its manifest)."""
    path = packaged_manifest_path(profile)
    return stand_in(read_manifest(path), str(path))


class ModelError(Exception):
    """What the container would reject; the runtime wraps it as a 424 ModelError."""


def _csv_value(text: str) -> float:
    # The container's parser: "nan" if x == "" else x, then numpy's float conversion (which reads "nan" too).
    return math.nan if text == "" else float(text)


def score_csv(body: bytes, model: Model) -> bytes:
    """As the XGBoost container answers text/csv: ``"\\n".join(map(str, preds.tolist())) + "\\n"``, so one
    number per line for one column and one Python list per line for class probabilities. As it reads the body
    (serve_utils.parse_content_data, encoder.csv_to_dmatrix): stripped, split at newlines, an empty field NaN."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        raise ModelError("empty payload")
    lines = text.split("\n")
    count = len(model.schema.features)
    rows = []
    for number, line in enumerate(lines):
        try:
            row = [_csv_value(value) for value in line.split(",")]
        except ValueError as error:
            raise ModelError(f"line {number}: {error}") from None
        if len(row) > count:
            raise ModelError(f"line {number}: {len(row)} features, the model was trained with {count}")
        if any(abs(value) > FLOAT32_MAX for value in row):
            raise ModelError(f"line {number}: a value is beyond float32's range")
        rows.append(row)
    if len({len(row) for row in rows}) > 1:
        raise ModelError("the rows have different numbers of values")
    padded = [row + [math.nan] * (count - len(row)) for row in rows]
    answers = [row[0] if model.schema.columns == 1 else row for row in model.scores(padded)]
    return ("\n".join(map(str, answers)) + "\n").encode()


# The gpu profile's Triton model: its name and tensors as its config.pbtxt declares them.
TRITON_MODEL, TRITON_INPUT, TRITON_OUTPUT = "rtb-filter", "input__0", "output__0"
TRITON_MAX_BATCH = 4096  # max_batch_size in the kit's config.pbtxt (scripts/build_triton_artifact.py)


def _json_request(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise ModelError(f"failed to parse the request JSON buffer: {error}") from None


def _flat(values: Any) -> list[Any]:
    return [item for value in values for item in _flat(value)] if isinstance(values, list) else [values]


def _rows(values: list[Any], count: int, width: int, where: str) -> list[list[float]]:
    if len(values) != count * width or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise ModelError(f"{where}: expected {count * width} numbers, got {str(values)[:80]}")
    return [[float(v) for v in values[i : i + width]] for i in range(0, len(values), width)]


def score_triton(body: bytes, model: Model) -> bytes:
    """A KServe v2 inference request for input__0 of shape [rows, features] (data flat or nested), answered
    as Triton's FIL backend answers: output__0 of [rows, 2] (1 - p, p) for binary:logistic (predict_proba),
    [rows, k] for multi:softprob, [rows, 1] for regression objectives."""
    request = _json_request(body)
    inputs = request.get("inputs") if isinstance(request, dict) else None
    tensors = [tensor for tensor in inputs if isinstance(tensor, dict)] if isinstance(inputs, list) else []
    if [tensor.get("name") for tensor in tensors] != [TRITON_INPUT]:
        raise ModelError(f"expected 1 input '{TRITON_INPUT}' for model '{TRITON_MODEL}', got {len(tensors)}")
    (tensor,) = tensors
    shape = tensor.get("shape")
    count = len(model.schema.features)
    if tensor.get("datatype") != "FP32":
        raise ModelError(f"input '{TRITON_INPUT}' data-type is {tensor.get('datatype')!r}, but the model expects FP32")
    if not (isinstance(shape, list) and len(shape) == 2 and shape[1] == count and isinstance(shape[0], int)):
        raise ModelError(f"unexpected shape for input '{TRITON_INPUT}': expected [-1,{count}], got {shape}")
    if not 1 <= shape[0] <= TRITON_MAX_BATCH:
        raise ModelError(f"inference request batch-size must be <= {TRITON_MAX_BATCH} for '{TRITON_MODEL}'")
    outputs = request.get("outputs", [])
    asked = [out.get("name") for out in outputs if isinstance(out, dict)] if isinstance(outputs, list) else []
    if any(name != TRITON_OUTPUT for name in asked):
        raise ModelError(f"unexpected inference output {asked} for model '{TRITON_MODEL}'")
    # FIL computes in float32: the input is rounded to it first.
    rows = [[_float32(v) for v in row] for row in _rows(_flat(tensor.get("data")), shape[0], count, TRITON_INPUT)]
    answers = model.scores(rows)
    if model.objective == "binary:logistic":
        answers = [[_float32(1.0 - p), p] for (p,) in answers]
    data = [value for row in answers for value in row]
    output = {"name": TRITON_OUTPUT, "datatype": "FP32", "shape": [shape[0], len(answers[0])], "data": data}
    return json.dumps({"model_name": TRITON_MODEL, "model_version": "1", "outputs": [output]}).encode()


def score_neo(body: bytes, model: Model) -> bytes:
    """A JSON array [[features]], the [1, features] tensor the model is compiled for, answered as the
    PyTorch container's default output_fn serializes the model's output: [p] (shape [1]) for one column,
    [[p1, ..., pk]] (shape [1, k]) for class probabilities."""
    request = _json_request(body)
    count = len(model.schema.features)
    if not (isinstance(request, list) and len(request) == 1 and isinstance(request[0], list)):
        raise ModelError(f"the model is compiled for input shape [1, {count}]; got {str(request)[:80]}")
    (row,) = _rows(request[0], 1, count, "input")
    (answer,) = model.scores([[_float32(v) for v in row]])
    return json.dumps(answer if model.schema.columns == 1 else [answer]).encode()


@dataclass(frozen=True)
class _Format:
    content_type: str
    scorer: Callable[[bytes, Model], bytes]


PROFILE_FORMATS = {
    "cpu": _Format("text/csv", score_csv),
    "gpu": _Format("application/json", score_triton),
    "inferentia": _Format("application/json", score_neo),
}


@dataclass
class _Job:
    body: bytes
    done: threading.Event = field(default_factory=threading.Event)
    answer: bytes = b""
    error: str | None = None


@dataclass
class ServerStats:
    """Counters the tests and the CLI read; updated under the server's lock."""

    served: int = 0
    rejected: int = 0
    model_errors: int = 0
    # Answered 500 by ``fail_every`` (a known share of the requests received).
    failed: int = 0
    max_waiting: int = 0
    in_service: int = 0
    max_in_service: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Every Locust user opens its own connection at once; the default backlog of 5 would drop some.
    request_queue_size = 512
    endpoint: FakeEndpoint

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A load generator that stops closes connections with calls in flight: not the server's error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as botocore's pooled connections expect.
    protocol_version = "HTTP/1.1"
    server_version = "FakeSageMakerRuntime/1"
    # Idle keep-alive connections are dropped after this long.
    timeout = 30
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm and the client's
    # delayed ACK would add about 40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.endpoint.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.endpoint.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would cost more than the service itself."""

    def do_GET(self) -> None:
        if self.path == "/ping":  # the container's health check, handy for scripts waiting on the server
            self._reply(200, b"", "text/plain")
        else:
            self._error(404, "UnknownOperationException", f"no operation for GET {self.path}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = _INVOCATIONS.fullmatch(self.path)
        if match is None:
            self._error(404, "UnknownOperationException", f"no operation for POST {self.path}")
            return
        endpoint = self.server.endpoint
        name = unquote(match["name"])
        if endpoint.endpoint_name is not None and name != endpoint.endpoint_name:
            self._error(400, "ValidationError", f"Endpoint {name} of account 000000000000 not found.")
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type != endpoint.format.content_type:
            self._model_error(415, f"Content type {content_type or '(none)'} is not supported by this container.")
            return
        if endpoint.fails_this_one():
            self._error(500, "InternalFailure", "An internal error occurred (the fake endpoint's fail_every).")
            return
        job = endpoint.submit(body)
        if job is None:
            self._error(503, "ServiceUnavailable", "A transient exception occurred while retrieving variant instances.")
            return
        job.done.wait()
        if job.error is not None:
            self._model_error(400, job.error)
        else:
            self._reply(200, job.answer, endpoint.format.content_type)

    def _model_error(self, original_status: int, message: str) -> None:
        self.server.endpoint.count_model_error()
        self._error(
            424,
            "ModelError",
            f"Received client error ({original_status}) from primary with message {message!r}.",
            OriginalStatusCode=original_status,
            OriginalMessage=message,
        )

    def _error(self, status: int, code: str, message: str, **extra: Any) -> None:
        payload = json.dumps({"message": message, **extra}).encode()
        self._reply(status, payload, "application/json", {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"})

    def _reply(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", self.server.endpoint.request_id())
        if status == 200:
            self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


class FakeEndpoint:
    """The server, its worker pool and its queue; start() and stop() it in-process, or use ``with``."""

    def __init__(
        self,
        *,
        workers: int = 4,
        service_time: float = 0.02,
        host: str = "127.0.0.1",
        port: int = 0,
        max_queue: int | None = None,
        endpoint_name: str | None = None,
        profile: str = "cpu",
        model: Model | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        fail_every: int | None = None,
        stall: tuple[float, float] | None = None,
    ) -> None:
        """``model`` defaults to the stand-in shaped like the profile's packaged artifact (its manifest);
        ``clock`` and ``sleep`` time the service; a test passes its own to hold requests in service."""
        if workers < 1:
            raise ValueError(f"workers={workers} is invalid: allowed: 1 or more")
        if not 0 < service_time <= 10:
            raise ValueError(f"service_time={service_time} is invalid: allowed: greater than 0 and at most 10 s")
        if stall is not None and not 0 < stall[1] < stall[0]:
            raise ValueError(f"stall={stall} is invalid: allowed: (every, for) seconds with 0 < for < every")
        if fail_every is not None and fail_every < 1:
            raise ValueError(f"fail_every={fail_every} is invalid: allowed: 1 or more, or None (never)")
        if max_queue is not None and max_queue < 0:
            raise ValueError(f"max_queue={max_queue} is invalid: allowed: 0 or more, or None (unbounded)")
        if profile not in PROFILE_FORMATS:
            raise ValueError(f"profile={profile!r} is invalid: allowed: one of {list(PROFILE_FORMATS)}")
        if not is_loopback_host(host):
            raise ValueError(f"host={host!r} is invalid: allowed: a loopback address (127.0.0.0/8, ::1, localhost)")
        self.workers = workers
        self.service_time = service_time
        self.max_queue = max_queue
        self.endpoint_name = endpoint_name
        self.profile = profile
        self.format = PROFILE_FORMATS[profile]
        self.stats = ServerStats()
        self.model = model if model is not None else profile_model(profile)
        self._clock, self._sleep = clock, sleep
        self.fail_every = fail_every
        # (every, for): the whole server holds its answers for ``for`` seconds every ``every`` seconds, like
        # a garbage-collection pause or a noisy neighbour.
        self.stall = stall
        self._began = clock()
        self._received = 0
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._server: _Server | None = None

    @property
    def capacity_rps(self) -> float:
        """Requests per second the server sustains: workers / service time."""
        return self.workers / self.service_time

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake endpoint is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The endpoint URL to give botocore (``endpoint_url``)."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> FakeEndpoint:
        server = _Server((self._host, self._port), _Handler)
        server.endpoint = self
        self._server = server
        self._threads = [
            threading.Thread(target=self._work, name=f"fake-endpoint-worker-{n}", daemon=True)
            for n in range(self.workers)
        ]
        # A short poll interval: stop() waits for one (the default, 0.5 s, would slow every test's teardown).
        serve = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-endpoint-http", daemon=True)
        self._threads.append(serve)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close kept-alive connections and end the workers (waits for them, bounded)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for _ in range(self.workers):
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeEndpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def submit(self, body: bytes) -> _Job | None:
        """Queue one request; None if the queue is at its bound (the caller answers 503)."""
        job = _Job(body)
        with self._lock:
            waiting = self._queue.qsize()
            if self.max_queue is not None and waiting >= self.max_queue:
                self.stats.rejected += 1
                return None
            self.stats.max_waiting = max(self.stats.max_waiting, waiting + 1)
            self._queue.put(job)
        return job

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def fails_this_one(self) -> bool:
        """Whether this request is one of the known share answered 500 (every ``fail_every``-th received)."""
        with self._lock:
            self._received += 1
            failing = self.fail_every is not None and self._received % self.fail_every == 0
            self.stats.failed += failing
            return failing

    def count_model_error(self) -> None:
        with self._lock:
            self.stats.model_errors += 1

    @property
    def waiting(self) -> int:
        """Requests queued for a worker now."""
        return self._queue.qsize()

    def request_id(self) -> str:
        return f"fake-{next(self._ids):012d}"

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            with self._lock:
                self.stats.in_service += 1
                self.stats.max_in_service = max(self.stats.max_in_service, self.stats.in_service)
            started = self._clock()
            try:
                job.answer = self.format.scorer(job.body, self.model)
            except ModelError as error:
                job.error = str(error)
            # The service time includes the scoring, so a slow row cannot stretch the capacity.
            self._sleep(max(0.0, self.service_time - (self._clock() - started)))
            if self.stall is not None:
                every, duration = self.stall
                into = (self._clock() - self._began) % every
                if into < duration:
                    self._sleep(duration - into)
            with self._lock:
                self.stats.in_service -= 1
                self.stats.served += 1
            job.done.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4, help="requests in service at once (default: 4)")
    parser.add_argument("--service-ms", type=float, default=20.0, help="service time per request (default: 20)")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (default: 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default: 127.0.0.1)")
    parser.add_argument("--max-queue", type=int, default=None, help="503 when this many wait (default: unbounded)")
    parser.add_argument(
        "--fail-every", type=int, default=None, help="answer every Nth request 500 InternalFailure (default: never)"
    )
    parser.add_argument("--endpoint-name", default=None, help="answer only this name (default: any)")
    parser.add_argument(
        "--profile", choices=list(PROFILE_FORMATS), default="cpu", help="the container format to speak (default: cpu)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model", type=Path, help="a model.tar.gz to score with, its manifest beside it (default: the stand-in)"
    )
    source.add_argument(
        "--manifest",
        type=Path,
        help="the stand-in takes this manifest's features and output (default: the profile's packaged artifact's)",
    )
    parser.add_argument("--seconds", type=float, default=900.0, help="stop after this long (default: 900)")
    args = parser.parse_args(argv)
    try:
        if args.model is not None:
            model = packaged_model(args.model)
        elif args.manifest is not None:
            model = stand_in(read_manifest(args.manifest), str(args.manifest))
        else:
            model = profile_model(args.profile)
        endpoint = FakeEndpoint(
            workers=args.workers,
            service_time=args.service_ms / 1000,
            host=args.host,
            port=args.port,
            max_queue=args.max_queue,
            endpoint_name=args.endpoint_name,
            profile=args.profile,
            model=model,
            fail_every=args.fail_every,
        ).start()
    except (ValueError, OSError, tarfile.TarError) as error:
        print(f"fake endpoint failed: {error}", file=sys.stderr)
        return 1
    served = f"model {args.model}" if args.model else "stand-in model"
    shape = f"{len(model.schema.features)} features, {model.schema.kind} x {model.schema.columns}"
    print(
        f"fake SageMaker endpoint ({args.profile}, {served}: {shape})"
        f" on {endpoint.url}: {args.workers} workers x {args.service_ms:g} ms"
        f" = {endpoint.capacity_rps:g} RPS capacity; stops in {args.seconds:g} s or on Ctrl-C",
        flush=True,
    )
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.stop()
        stats = endpoint.stats
        print(
            f"served {stats.served}, rejected {stats.rejected} (503), most waiting at once {stats.max_waiting},"
            f" most in service at once {stats.max_in_service}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
