"""What a model takes and answers: its features, its output kind and columns (from its manifest), and the
checks every row passes before it is sent."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROFILES = ("cpu", "gpu", "inferentia")
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


def check_rows(rows: Sequence[Sequence[Any]], schema: ModelSchema) -> None:
    """As many finite float32-range numbers per row as the schema has features (``ModelSchema.check_rows``)."""
    schema.check_rows(rows)
