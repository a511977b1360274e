"""Each serving profile's request and answer format: rows encoded exactly, answers checked strictly."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .schema import (
    MISSING_REFUSED,
    PROFILES,
    SUM_TOLERANCE,
    ModelSchema,
    Prediction,
    RequestError,
    Rows,
    is_missing,
    plain,
)

CONTENT_TYPE = "text/csv"
# The names in the gpu profile's Triton model configuration (config.pbtxt).
TRITON_INPUT = "input__0"
TRITON_OUTPUT = "output__0"


@dataclass(frozen=True)
class Codec:
    """How one profile's container takes rows and answers: headers, rows per request, body in and out."""

    profile: str
    content_type: str
    accept: str
    # Triton refuses a batch over the model's max_batch_size; the Neo model is compiled for one row.
    max_rows_per_request: int
    # Rows already checked (ModelSchema.checked_rows): numbers, None or NaN for a missing value.
    encode: Callable[[Rows], bytes]
    # (body, rows expected, schema) -> one checked prediction per row.
    decode: Callable[[bytes, int, ModelSchema], list[Prediction]]


def number_text(value: float) -> str:
    """The exact text of a number: the shortest that reads back as the same float (never %g's 6 digits)."""
    return repr(float(value))


def _field(value: Any) -> str:
    """A CSV field: the number's exact text, or nothing for a missing value, which the XGBoost container reads
    as NaN (sagemaker-xgboost-container, encoder.py's ``_clean_csv_string``: ``"nan" if x == "" else x``)."""
    return "" if is_missing(value) else repr(float(value))


def _csv_line(row: Any) -> str:
    # A plain float (the common case) is written without the missing-value check's ABCs.
    line = ",".join(
        [repr(value) if value.__class__ is float and value == value else _field(value) for value in plain(row)]
    )
    # A one-feature row whose value is missing would be an empty line: the container sniffs its CSV delimiter from
    # the first line (an empty one fails) and strips the body (a last empty line would vanish). Its parser reads
    # "nan" as NaN too (numpy's float conversion), so that row says so in words.
    return line or "nan"


def _csv(rows: Rows) -> bytes:
    return "".join(_csv_line(row) + "\n" for row in plain(rows)).encode()


def encode_rows(rows: Rows, schema: ModelSchema) -> bytes:
    """The cpu profile's request: one CSV line per row, no header, an empty field for a missing value; rows
    checked first."""
    return _csv(schema.checked_rows(rows, "cpu"))


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
            if schema.kind == "positive_value" and not value > 0.0:
                raise RequestError(f"prediction {index} is {value!r}; allowed: positive numbers (exp of a margin)")
            if schema.kind in ("probability", "class_probabilities") and not 0.0 <= value <= 1.0:
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


def _json_number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _triton_request(rows: Rows) -> bytes:
    # KServe v2 tensor data may be flat or nested; flat, row-major, is what Triton's own client sends.
    # json.dumps writes a float as repr does: exact; a missing value as NaN, which Triton's JSON parser reads
    # (triton-inference-server/common, triton_json.h: rapidjson::kParseNanAndInfFlag) and FIL sends down each
    # split's default branch, XGBoost's (docs/profiles.md, "Missing values").
    listed = [plain(row) for row in plain(rows)]
    tensor = {
        "name": TRITON_INPUT,
        "shape": [len(listed), len(listed[0]) if listed else 0],
        "datatype": "FP32",
        "data": [_json_number(value) for row in listed for value in row],
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


def _neo_request(rows: Rows) -> bytes:
    listed = [[plain(value) for value in plain(row)] for row in plain(rows)]
    if any(is_missing(value) for row in listed for value in row):
        # The container would read NaN (Python's json) and the traced model score it wrongly.
        raise RequestError(f"the inferentia profile refuses missing values: {MISSING_REFUSED['inferentia']}")
    return json.dumps([[float(value) for value in row] for row in listed]).encode()


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
