"""What a model takes and answers: its features, its output kind and columns (from its manifest), and the
checks every row passes before it is sent.

Rows may come as lists or tuples of numbers, as numpy arrays (2-D for rows, 1-D for one row) or as rows of
numpy scalars: anything with ``__array__`` is read through its ``tolist()``, so the client needs no numpy of
its own. A missing value is ``None`` or NaN; whether it may be sent depends on the profile (``MISSING_REFUSED``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, SupportsFloat

PROFILES = ("cpu", "gpu", "inferentia")
# Every profile's container reads features as float32 (XGBoost's DMatrix, Triton's FP32, the traced model).
FLOAT32_MAX = 3.4028234663852886e38
# Class probabilities are float32 softmax outputs: their sum is 1 to about 1e-7 per class.
SUM_TOLERANCE = 1e-4

# What a model answers per row, by XGBoost objective (the manifest's `objective`; the contract of issue 15).
# positive_value: the log-link objectives (exp of the margin), served by the cpu profile only (docs/own-model.md).
OUTPUT_KINDS = ("probability", "value", "positive_value", "class_probabilities")
OBJECTIVE_KINDS = {
    "binary:logistic": "probability",
    "reg:logistic": "probability",
    "reg:squarederror": "value",
    "reg:absoluteerror": "value",
    "reg:pseudohubererror": "value",
    "count:poisson": "positive_value",
    "reg:gamma": "positive_value",
    "reg:tweedie": "positive_value",
    "multi:softprob": "class_probabilities",
}

# Why a profile's container cannot score a missing value (None or NaN) as XGBoost does; a profile not named
# here can (docs/profiles.md, "Missing values", gives the sources). inferentia: hummingbird-ml 0.4.12 reads each
# split's yes/no children but not XGBoost's default direction (operator_converters/xgb.py), and its GEMM trees
# multiply the whole row by one-hot feature selectors, so one NaN makes every split of the row false (NaN * 0 is
# NaN): measured, 414 of 414 rows with a NaN scored differently, by up to 0.99.
MISSING_REFUSED = {
    "inferentia": "its traced model (hummingbird-ml's GEMM trees) ignores XGBoost's default directions and sends "
    "a row with any NaN down the wrong branches; send every value, or serve the cpu or gpu profile",
}

# One prediction: a float for one-column outputs, a tuple of `columns` floats for class probabilities.
Prediction = float | tuple[float, ...]


class ArrayLike(Protocol):
    """numpy's arrays and scalars, pandas' frames and series: read through ``tolist()`` (or ``__array__()``)."""

    def __array__(self) -> Any: ...


# A value: a number, or None (or NaN) for a missing one. A row: a sequence of values or a 1-D array. Rows: any
# iterable of rows (a list, a generator) or a 2-D array.
Value = SupportsFloat | None
Row = Sequence[Value] | ArrayLike
Rows = Iterable[Row] | ArrayLike


class RequestError(ValueError):
    """A row the model cannot score correctly, or an answer that does not fit the request; the message says which."""


def plain(data: Any) -> Any:
    """``data`` as Python lists and numbers if it is an array or a numpy scalar (anything with ``__array__``),
    else as it is. Duck-typed: numpy is the caller's, never the client's."""
    if isinstance(data, list | tuple | float | int | str | bytes) or data is None:
        return data
    if hasattr(data, "__array__"):
        tolist = getattr(data, "tolist", None)
        return tolist() if callable(tolist) else data.__array__().tolist()
    return data


def is_missing(value: Any) -> bool:
    """None or NaN (XGBoost's default ``missing``): a value the model scores as unknown."""
    return value is None or (isinstance(value, numbers.Real) and value != value)


def _names(features: Sequence[str]) -> str:
    shown = ", ".join(features[:10])
    return shown if len(features) <= 10 else f"{shown}, ... ({len(features) - 10} more)"


def _known(profile: str | None) -> None:
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is invalid: allowed: one of {list(PROFILES)}")


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

    def _value_problem(self, position: int, value: Any, profile: str | None) -> str:
        named = f"value {position} ({self.features[position]}) is {value!r}"
        if is_missing(value) and profile in MISSING_REFUSED:
            return f"{named}, a missing value; the {profile} profile refuses missing values: {MISSING_REFUSED[profile]}"
        allowed = f"allowed: finite numbers within float32's range (|x| <= {FLOAT32_MAX!r})"
        if profile is None:
            scoring = ", ".join(name for name in PROFILES if name not in MISSING_REFUSED)
            return f"{named}; {allowed}; None or NaN (a missing value) only for a profile that scores it ({scoring})"
        if profile in MISSING_REFUSED:
            return f"{named}; {allowed}"
        return f"{named}; {allowed}, or None or NaN for a missing value"

    def _row(self, row: Any, profile: str | None) -> list[float] | str:
        """The row as Python floats (NaN where a value is missing), or what is wrong with it."""
        row = plain(row)
        if isinstance(row, str | bytes) or not isinstance(row, Sequence):
            return f"is {str(row)[:40]!r}; allowed: a sequence of {len(self.features)} numbers"
        if len(row) != len(self.features):
            return f"has {len(row)} values; the model takes {len(self.features)}: {_names(self.features)}"
        missing_allowed = profile is not None and profile not in MISSING_REFUSED
        values: list[float] = []
        for position, value in enumerate(row):
            if value.__class__ is float:  # the common case, checked without ABCs: about half the cost per row
                if -FLOAT32_MAX <= value <= FLOAT32_MAX or (value != value and missing_allowed):
                    values.append(value)
                    continue
                return self._value_problem(position, value, profile)
            if not isinstance(value, float | int):
                value = plain(value)  # a numpy scalar
            if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
                if value is None and missing_allowed:
                    values.append(math.nan)
                    continue
                return self._value_problem(position, value, profile)
            number = float(value)
            if number != number and missing_allowed:
                values.append(math.nan)
            elif -FLOAT32_MAX <= number <= FLOAT32_MAX:
                values.append(number)
            else:
                return self._value_problem(position, value, profile)
        return values

    def row_problem(self, row: Row, profile: str | None = None) -> str | None:
        """What is wrong with one row, worded to follow "row N" (None if the model can score it exactly).

        A missing value (None or NaN) passes only for a ``profile`` whose container scores it as XGBoost does
        (cpu, gpu): without a profile, as for inferentia, it is a problem."""
        _known(profile)
        checked = self._row(row, profile)
        return checked if isinstance(checked, str) else None

    def checked_rows(self, rows: Rows, profile: str | None = None) -> list[list[float]]:
        """The rows as lists of Python floats, NaN for a missing value (see ``row_problem``); RequestError for
        the first row the model cannot score exactly. XGBoost scores a short row as if values were missing, so
        the count is checked here rather than trusted to the container."""
        _known(profile)
        rows = plain(rows)
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise RequestError(f"rows is {str(rows)[:40]!r}; allowed: a list of rows or a 2-D array")
        listed = rows if isinstance(rows, list) else list(rows)
        if not listed:
            raise RequestError("no rows to score")
        first = plain(listed[0])
        if first is None or isinstance(first, numbers.Real):
            raise RequestError(
                f"rows is one row of {len(listed)} values, not a list of rows; allowed: a list of rows or a 2-D "
                "array (one row: [row])"
            )
        checked = []
        for index, row in enumerate(listed):
            values = self._row(row, profile)
            if isinstance(values, str):
                raise RequestError(f"row {index} {values}")
            checked.append(values)
        return checked

    def check_rows(self, rows: Rows, profile: str | None = None) -> None:
        """Raise RequestError for the first row the model cannot score exactly (``checked_rows``)."""
        self.checked_rows(rows, profile)


def check_rows(rows: Rows, schema: ModelSchema, profile: str | None = None) -> None:
    """As many float32-range numbers per row as the schema has features, a missing one only where ``profile``
    scores it (``ModelSchema.checked_rows``)."""
    schema.checked_rows(rows, profile)
