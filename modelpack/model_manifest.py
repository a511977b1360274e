"""Where the kit's command-line tools find a model's manifest, and what they read from it: the schema
(client/rtb_client's ModelSchema), the sample row and the reference rows and predictions.

A stage's manifest is its artifact's (``settings.artifact.manifest``); without a stage, the one beside a
``--model`` archive or given with ``--manifest``, else the serving profile's packaged artifact's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rtb_client import ModelSchema, Prediction

REPO_ROOT = Path(__file__).resolve().parents[1]


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest as a dict; ValueError with one line if it cannot be read."""
    try:
        manifest = json.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"cannot read the manifest {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise ValueError(f"the manifest {path} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"the manifest {path} is not a JSON object")
    return manifest


def beside(archive: Path) -> Path:
    """The manifest written beside an archive: ``model.tar.gz`` -> ``model-manifest.json``."""
    from stacks.artifact import manifest_path  # standard library only: no CDK

    return manifest_path(archive)


def packaged_manifest_path(profile: str) -> Path:
    """The manifest of the serving profile's packaged artifact (stacks/profiles.py's default_artifact)."""
    from stacks.profiles import PROFILES  # the profile table only: no CDK

    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is invalid: allowed: one of {list(PROFILES)}")
    return beside(REPO_ROOT / PROFILES[profile].default_artifact)


def schema_of(manifest: dict[str, Any], where: Path | str) -> ModelSchema:
    """The manifest's schema; the error names the manifest."""
    try:
        return ModelSchema.from_manifest(manifest)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _row(values: Any, what: str) -> list[float]:
    if not isinstance(values, list) or not all(
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) for value in values
    ):
        raise ValueError(f"{what} is {str(values)[:80]}; allowed: a list of finite numbers")
    return [float(value) for value in values]


def reference_rows(manifest: dict[str, Any], where: Path | str) -> list[list[float]]:
    """``reference.rows``: rows the model was checked on (what the load test sends by default)."""
    found = manifest.get("reference")
    rows = found.get("rows") if isinstance(found, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{where} has no reference rows; the contract of issue 15 asks every manifest for them")
    return [_row(row, f"{where}: reference row {index}") for index, row in enumerate(rows)]


def reference(manifest: dict[str, Any], where: Path | str) -> tuple[list[list[float]], list[Prediction]]:
    """``reference.rows`` and ``reference.predictions`` (a float, or a tuple of class probabilities, per row)."""
    found = manifest.get("reference")
    rows = found.get("rows") if isinstance(found, dict) else None
    predictions = found.get("predictions") if isinstance(found, dict) else None
    if not isinstance(rows, list) or not rows or not isinstance(predictions, list) or len(predictions) != len(rows):
        raise ValueError(
            f"{where} has no reference rows and predictions (one per row); the contract of issue 15 asks every "
            "manifest for them: rebuild the artifact"
        )
    decoded: list[Prediction] = []
    for index, prediction in enumerate(predictions):
        if isinstance(prediction, list):
            decoded.append(tuple(_row(prediction, f"{where}: reference prediction {index}")))
        else:
            decoded.append(_row([prediction], f"{where}: reference prediction {index}")[0])
    return reference_rows(manifest, where), decoded


def sample(manifest: dict[str, Any], where: Path | str) -> tuple[list[float], Prediction]:
    """The manifest's ``sample_payload`` row and its reference prediction."""
    payload = manifest.get("sample_payload")
    if not isinstance(payload, str) or not payload.strip():
        raise ValueError(
            f"{where} has no sample_payload; the contract of issue 15 asks every manifest for one: rebuild the artifact"
        )
    try:
        row = [float(value) for value in payload.split(",")]
    except ValueError:
        raise ValueError(f"{where}: sample_payload {payload[:80]!r} is not a CSV row of numbers") from None
    rows, predictions = reference(manifest, where)
    if row not in rows:
        raise ValueError(f"{where}: sample_payload {payload[:80]!r} is not one of reference.rows")
    return row, predictions[rows.index(row)]
