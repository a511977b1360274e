"""The kit's client for the traffic-filter endpoint: rows in, one prediction per row out, for every profile.

Ad servers should keep one client per process: it pools and keeps alive its HTTPS connections to the
runtime VPC endpoint, and its timeouts and retries are sized for a 20 ms budget, not the SDK's 60 s.

Every shape comes from the model's manifest (``ModelSchema.from_manifest``): how many features a row has,
and what the model answers per row (a probability, a value, or ``columns`` class probabilities).
Each serving profile's container takes its own request format (tests/fixtures/client/README.md names the
sources): ``cpu``, the built-in XGBoost container, text/csv; ``gpu``, Triton Inference Server with the FIL
backend, the KServe v2 JSON protocol; ``inferentia``, the Neo PyTorch container, a JSON array per row.
Numbers are sent exactly (``repr(float(x))``, the shortest text that reads back as the same float) and
answers are checked strictly: a prediction that does not fit the schema is a RequestError, never a guess.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3

CONTENT_TYPE = "text/csv"
PROFILES = ("cpu", "gpu", "inferentia")
# The names in the gpu profile's Triton model configuration (config.pbtxt).
TRITON_INPUT = "input__0"
TRITON_OUTPUT = "output__0"
# Every profile's container reads features as float32 (XGBoost's DMatrix, Triton's FP32, the traced model).
FLOAT32_MAX = 3.4028234663852886e38
# Class probabilities are float32 softmax outputs: their sum is 1 to about 1e-7 per class.
SUM_TOLERANCE = 1e-4

# What a model answers per row, by XGBoost objective (the manifest's `objective`; the contract of issue 15).
OUTPUT_KINDS = ("probability", "value", "class_probabilities")
OBJECTIVE_KINDS = {
    "binary:logistic": "probability",
    "reg:logistic": "probability",
    "reg:squarederror": "value",
    "reg:absoluteerror": "value",
    "reg:pseudohubererror": "value",
    "multi:softprob": "class_probabilities",
}

# One prediction: a float for one-column outputs, a tuple of `columns` floats for class probabilities.
Prediction = float | tuple[float, ...]


class RequestError(ValueError):
    """A row the model cannot score correctly, or an answer that does not fit the request; the message says which."""


def _names(features: Sequence[str]) -> str:
    shown = ", ".join(features[:10])
    return shown if len(features) <= 10 else f"{shown}, ... ({len(features) - 10} more)"


@dataclass(frozen=True)
class ModelSchema:
    """The shape of a model's rows and answers: its features in column order, its output kind and columns."""

    features: tuple[str, ...]
    kind: str
    columns: int

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("features=() is invalid: allowed: one or more feature names")
        bad = [name for name in self.features if not isinstance(name, str) or not name.strip()]
        if bad:
            raise ValueError(f"features holds {bad[0]!r}; allowed: non-empty strings")
        duplicates = sorted({name for name in self.features if self.features.count(name) > 1})
        if duplicates:
            raise ValueError(f"features repeats {', '.join(duplicates)}; allowed: unique names")
        if self.kind not in OUTPUT_KINDS:
            raise ValueError(f"kind={self.kind!r} is invalid: allowed: one of {list(OUTPUT_KINDS)}")
        if isinstance(self.columns, bool) or not isinstance(self.columns, int):
            raise ValueError(f"columns={self.columns!r} is invalid: allowed: a whole number")
        if self.kind == "class_probabilities" and self.columns < 2:
            raise ValueError(f"columns={self.columns} is invalid for class_probabilities: allowed: 2 or more")
        if self.kind != "class_probabilities" and self.columns != 1:
            raise ValueError(f"columns={self.columns} is invalid for {self.kind}: allowed: 1")

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> ModelSchema:
        """The schema a model manifest describes (``features``, ``objective``, ``output``, ``num_class``).

        A manifest written before ``output`` existed (or whose ``output`` only describes a tensor, without
        ``kind`` and ``columns``) is read as probability, 1 column, only if its objective is binary:logistic."""
        if not isinstance(manifest, Mapping):
            raise ValueError("the manifest is not a JSON object")
        features = manifest.get("features")
        if not isinstance(features, list) or not features:
            raise ValueError(f"the manifest's features is {str(features)[:80]}; allowed: a non-empty list of names")
        objective = manifest.get("objective")
        if objective not in OBJECTIVE_KINDS:
            raise ValueError(f"the manifest's objective is {objective!r}; allowed: one of {sorted(OBJECTIVE_KINDS)}")
        output = manifest.get("output")
        if output is not None and not isinstance(output, Mapping):
            raise ValueError(f"the manifest's output is {str(output)[:80]}; allowed: an object with kind and columns")
        if output is None or ("kind" not in output and "columns" not in output):
            if objective != "binary:logistic":
                raise ValueError(
                    f"the manifest has no output kind and columns; allowed without them: objective binary:logistic "
                    f"only, not {objective}"
                )
            return cls(tuple(features), "probability", 1)
        kind, columns = output.get("kind"), output.get("columns")
        if kind != OBJECTIVE_KINDS[objective]:
            raise ValueError(
                f"the manifest's output kind is {kind!r}; objective {objective} answers {OBJECTIVE_KINDS[objective]!r}"
            )
        if objective == "multi:softprob" and manifest.get("num_class") != columns:
            raise ValueError(
                f"the manifest's output columns is {columns!r} but its num_class is {manifest.get('num_class')!r}; "
                "allowed: equal"
            )
        if isinstance(columns, bool) or not isinstance(columns, int):
            raise ValueError(f"the manifest's output columns is {columns!r}; allowed: a whole number")
        return cls(tuple(features), str(kind), columns)

    def row_problem(self, row: Sequence[Any]) -> str | None:
        """What is wrong with one row, worded to follow "row N" (None if the model can score it exactly)."""
        if isinstance(row, str | bytes) or not isinstance(row, Sequence):
            return f"is {str(row)[:40]!r}; allowed: a sequence of {len(self.features)} numbers"
        if len(row) != len(self.features):
            return f"has {len(row)} values; the model takes {len(self.features)}: {_names(self.features)}"
        for position, value in enumerate(row):
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(float(value))
                or abs(float(value)) > FLOAT32_MAX
            ):
                return (
                    f"value {position} ({self.features[position]}) is {value!r}; allowed: finite numbers within "
                    f"float32's range (|x| <= {FLOAT32_MAX!r})"
                )
        return None

    def check_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Raise RequestError for the first row the model cannot score exactly. XGBoost scores a short row
        as if values were missing, so the count is checked here rather than trusted to the container."""
        if not rows:
            raise RequestError("no rows to score")
        for index, row in enumerate(rows):
            problem = self.row_problem(row)
            if problem is not None:
                raise RequestError(f"row {index} {problem}")


@dataclass(frozen=True)
class Codec:
    """How one profile's container takes rows and answers: headers, rows per request, body in and out."""

    profile: str
    content_type: str
    accept: str
    # Triton refuses a batch over the model's max_batch_size; the Neo model is compiled for one row.
    max_rows_per_request: int
    encode: Callable[[Sequence[Sequence[float]]], bytes]
    # (body, rows expected, schema) -> one checked prediction per row.
    decode: Callable[[bytes, int, ModelSchema], list[Prediction]]


def runtime_client(
    session: boto3.Session | None = None,
    *,
    region: str | None = None,
    pool_size: int = 64,
    connect_timeout: float = 0.5,
    read_timeout: float = 1.0,
    max_attempts: int = 2,
) -> Any:
    """A SageMaker Runtime client with a sized connection pool, tight timeouts and bounded retries."""
    # Imported here: the schema and codecs need only the standard library (the fake endpoint uses them).
    import boto3
    from botocore.config import Config

    config = Config(
        max_pool_connections=pool_size,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
    )
    return (session or boto3.Session()).client("sagemaker-runtime", region_name=region, config=config)


def check_rows(rows: Sequence[Sequence[Any]], schema: ModelSchema) -> None:
    """As many finite float32-range numbers per row as the schema has features (``ModelSchema.check_rows``)."""
    schema.check_rows(rows)


def number_text(value: float) -> str:
    """The exact text of a number: the shortest that reads back as the same float (never %g's 6 digits)."""
    return repr(float(value))


def _csv(rows: Sequence[Sequence[float]]) -> bytes:
    return "".join(",".join(number_text(value) for value in row) + "\n" for row in rows).encode()


def encode_rows(rows: Sequence[Sequence[float]], schema: ModelSchema) -> bytes:
    """The cpu profile's request: one CSV line per row, no header; rows checked first."""
    schema.check_rows(rows)
    return _csv(rows)


def _checked(values: list[list[float]], expected: int, schema: ModelSchema) -> list[Prediction]:
    """Each row's `columns` numbers, checked against the schema's output kind, as the client returns them."""
    if len(values) != expected:
        raise RequestError(f"expected {expected} predictions, got {len(values)}")
    predictions: list[Prediction] = []
    for index, row in enumerate(values):
        if len(row) != schema.columns:
            raise RequestError(f"prediction {index} has {len(row)} values; the model answers {schema.columns}")
        for value in row:
            if not math.isfinite(value):
                raise RequestError(f"prediction {index} is {value!r}; allowed: finite numbers")
            if schema.kind != "value" and not 0.0 <= value <= 1.0:
                raise RequestError(f"prediction {index} is {value!r}; allowed: probabilities in [0, 1]")
        if schema.kind == "class_probabilities":
            if abs(math.fsum(row) - 1.0) > SUM_TOLERANCE:
                raise RequestError(
                    f"prediction {index}'s class probabilities sum to {math.fsum(row)!r}; allowed: 1 within "
                    f"{SUM_TOLERANCE:g}"
                )
            predictions.append(tuple(row))
        else:
            predictions.append(row[0])
    return predictions


# A number as Python, NumPy or JSON print one; nan and inf are read so the check can name them.
_NUMBER = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE)


def _number(text: str, what: str) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise RequestError(f"{what} holds {text[:40]!r}, not a number")
    return float(text)


def decode_predictions(body: bytes, expected: int, schema: ModelSchema) -> list[Prediction]:
    """The XGBoost container's text/csv answer: one number per row (newline- or comma-separated) for one
    column; one Python list per line, ``[0.1, 0.2, 0.7]``, for class probabilities (its serve.py prints
    ``str`` of each row of the prediction array)."""
    text = body.decode(errors="replace").strip()
    if schema.columns == 1:
        parts = [part for part in text.replace("\n", ",").split(",") if part.strip()]
        return _checked([[_number(part, "the answer")] for part in parts], expected, schema)
    rows = []
    for number, line in enumerate(part.strip() for part in text.splitlines() if part.strip()):
        if not (line.startswith("[") and line.endswith("]")):
            raise RequestError(f"answer line {number} is {line[:80]!r}; expected a list of {schema.columns} numbers")
        rows.append([_number(part, f"answer line {number}") for part in line[1:-1].split(",")])
    return _checked(rows, expected, schema)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        raise RequestError(f"the answer is not JSON: {body[:80]!r}") from None


def _numbers(values: Any, what: str) -> list[float]:
    """A JSON array of numbers, nested to any depth, flattened in row-major order."""
    if isinstance(values, list):
        return [number for value in values for number in _numbers(value, what)]
    if isinstance(values, bool) or not isinstance(values, int | float):
        raise RequestError(f"{what} holds {values!r}, not a number")
    return [float(values)]


def _triton_request(rows: Sequence[Sequence[float]]) -> bytes:
    # KServe v2 tensor data may be flat or nested; flat, row-major, is what Triton's own client sends.
    # json.dumps writes a float as repr does: exact.
    tensor = {
        "name": TRITON_INPUT,
        "shape": [len(rows), len(rows[0]) if rows else 0],
        "datatype": "FP32",
        "data": [float(value) for row in rows for value in row],
    }
    return json.dumps({"inputs": [tensor], "outputs": [{"name": TRITON_OUTPUT}]}).encode()


def _triton_predictions(body: bytes, expected: int, schema: ModelSchema) -> list[Prediction]:
    """output__0 of the FIL backend: [rows, 2] per-class probabilities of a binary classifier (P(class 1)
    is column 1), [rows, 1] for a value or a regression probability, [rows, k] for k class probabilities."""
    answer = _json(body)
    if not isinstance(answer, dict):
        raise RequestError(f"expected a KServe v2 inference response object, got {str(answer)[:80]}")
    if "error" in answer:
        raise RequestError(f"Triton answered an error: {str(answer['error'])[:200]}")
    outputs = answer.get("outputs")
    found = [out for out in outputs if isinstance(out, dict)] if isinstance(outputs, list) else []
    tensor = next((out for out in found if out.get("name") == TRITON_OUTPUT), None)
    if tensor is None:
        raise RequestError(f"the answer has no output {TRITON_OUTPUT}; outputs: {[out.get('name') for out in found]}")
    shape = tensor.get("shape")
    allowed = [[expected, 2], [expected, 1]] if schema.kind == "probability" else [[expected, schema.columns]]
    if shape not in allowed:
        raise RequestError(f"{TRITON_OUTPUT} has shape {shape}; expected {' or '.join(map(str, allowed))}")
    width = shape[1]
    values = _numbers(tensor.get("data"), TRITON_OUTPUT)
    if len(values) != expected * width:
        raise RequestError(f"{TRITON_OUTPUT} of shape {shape} holds {len(values)} values")
    rows = [values[start : start + width] for start in range(0, len(values), width)]
    if schema.kind == "probability" and width == 2:
        # Both columns are probabilities of one binary classifier: check them as such, then keep P(class 1).
        _checked(rows, expected, ModelSchema(schema.features, "class_probabilities", 2))
        rows = [[row[1]] for row in rows]
    return _checked(rows, expected, schema)


def _neo_request(rows: Sequence[Sequence[float]]) -> bytes:
    return json.dumps([[float(value) for value in row] for row in rows]).encode()


def _neo_predictions(body: bytes, expected: int, schema: ModelSchema) -> list[Prediction]:
    """The traced model's output tensor as a JSON array: [rows] or [rows, 1] for one column, [rows, k] for
    k class probabilities (one row per request: [p], [[p]] or [[p1, ..., pk]])."""
    answer = _json(body)
    if not isinstance(answer, list):
        raise RequestError(f"expected a JSON array of predictions, got {str(answer)[:80]}")
    if len(answer) != expected:
        raise RequestError(f"expected {expected} predictions, got {len(answer)}: {str(answer)[:80]}")
    rows = []
    for index, item in enumerate(answer):
        flat_list = isinstance(item, list) and not any(isinstance(value, list) for value in item)
        if flat_list or (schema.columns == 1 and not isinstance(item, list)):
            rows.append(_numbers(item, f"prediction {index}"))
        else:
            expected_form = "a number or [number]" if schema.columns == 1 else f"a list of {schema.columns} numbers"
            raise RequestError(f"prediction {index} is {str(item)[:80]}; expected {expected_form}")
    return _checked(rows, expected, schema)


_CODECS = {
    # 10,000 CSV rows stay far below the 6 MB request limit.
    "cpu": Codec("cpu", CONTENT_TYPE, CONTENT_TYPE, 10_000, _csv, decode_predictions),
    # At most the Triton model configuration's max_batch_size (4096, scripts/build_triton_artifact.py).
    "gpu": Codec("gpu", "application/json", "application/json", 1_000, _triton_request, _triton_predictions),
    # Compiled for an input of shape [1, number of features].
    "inferentia": Codec("inferentia", "application/json", "application/json", 1, _neo_request, _neo_predictions),
}


def codec_for(profile: str) -> Codec:
    """The request and answer format of a serving profile."""
    try:
        return _CODECS[profile]
    except KeyError:
        raise ValueError(f"profile={profile!r} is invalid: allowed: one of {list(PROFILES)}") from None


def predict(
    client: Any, endpoint_name: str, rows: Sequence[Sequence[float]], schema: ModelSchema, profile: str = "cpu"
) -> list[Prediction]:
    """One checked prediction per row from the endpoint (a float, or a tuple of class probabilities):
    as many requests as the profile needs, in order."""
    codec = codec_for(profile)
    schema.check_rows(rows)
    predictions: list[Prediction] = []
    for start in range(0, len(rows), codec.max_rows_per_request):
        chunk = rows[start : start + codec.max_rows_per_request]
        response = client.invoke_endpoint(
            EndpointName=endpoint_name, ContentType=codec.content_type, Accept=codec.accept, Body=codec.encode(chunk)
        )
        predictions += codec.decode(response["Body"].read(), len(chunk), schema)
    return predictions


def stack_output(cloudformation: Any, stack_name: str, key: str) -> str:
    """One output of a deployed stack, e.g. EndpointName."""
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise LookupError(f"stack {stack_name} has no output {key}")
