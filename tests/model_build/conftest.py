"""Shared fixtures: the default suite's fixtures of the committed gpu archive, and models trained here, packaged as
cpu archives per notes/contract.md, for the builders to convert."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from scripts.archive import reproducible_tar_gz
from scripts.model_rows import probe_rows
from scripts.model_source import OUTPUT_KINDS
from tests.test_triton_artifact import (  # noqa: F401  (pytest finds fixtures by name)
    archive_bytes,
    files,
    manifest,
    members,
    packaged_booster,
    rows,
    source_manifest,
    xgboost_probabilities,
)

REFERENCE_ROWS = 12


def package_booster(booster: xgb.Booster, out_dir: Path, *, reference_seed: int = 1) -> Path:
    """Write ``booster`` as the cpu profile's archive (``xgboost-model`` at the root) and its manifest into
    ``out_dir``; return the archive path. A stand-in for scripts/package_model.py, per notes/contract.md."""
    config = json.loads(booster.save_config())["learner"]
    objective = config["objective"]["name"]
    kind = OUTPUT_KINDS[objective]
    num_class = int(config["learner_model_param"]["num_class"])
    columns = num_class if kind == "class_probabilities" else 1
    reference_rows = probe_rows(booster, REFERENCE_ROWS, reference_seed)
    predicted = booster.predict(xgb.DMatrix(reference_rows))
    predictions: list[Any] = (
        [[float(v) for v in row] for row in predicted] if columns > 1 else [float(v) for v in predicted]
    )
    archive = reproducible_tar_gz({"xgboost-model": bytes(booster.save_raw(raw_format="json"))})
    described: dict[str, Any] = {
        "artifact": "model.tar.gz",
        "content_type": "text/csv",
        "features": [f"feature_{i}" for i in range(booster.num_features())],
        "model_file": "xgboost-model",
        "objective": objective,
        "output": {"kind": kind, "columns": columns},
        "reference": {"rows": [[float(v) for v in row] for row in reference_rows], "predictions": predictions},
        "sample_payload": ",".join(repr(float(v)) for v in reference_rows[-1]),
        "sha256": hashlib.sha256(archive).hexdigest(),
        "xgboost_version": xgb.__version__,
    }
    if kind == "class_probabilities":
        described["num_class"] = num_class
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.tar.gz").write_bytes(archive)
    (out_dir / "model-manifest.json").write_text(json.dumps(described, indent=2, sort_keys=True) + "\n")
    return out_dir / "model.tar.gz"


def train(objective: str, n_features: int, *, seed: int, num_class: int | None = None) -> xgb.Booster:
    """A small seeded single-threaded model on synthetic data whose first features matter."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1500, n_features)).astype(np.float32)
    signal = x[:, 0] * 2.0 + x[:, 1] - x[:, 2] ** 2 + 0.3 * rng.normal(size=len(x))
    params: dict[str, Any] = {"objective": objective, "max_depth": 4, "eta": 0.3, "seed": seed, "nthread": 1}
    y: np.ndarray[Any, Any]
    if num_class is None:
        y = signal * 10.0 + 50.0  # values far from 0 and 1, so an identity link is not mistaken for another
    else:
        params["num_class"] = num_class
        y = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, num_class + 1)[1:-1]))
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=20)


# The models the builders must take beside the sample: another width, a value output, several classes.
MODELS: dict[str, dict[str, Any]] = {
    "regression-12": {"objective": "reg:squarederror", "n_features": 12, "seed": 12},
    "multiclass-40": {"objective": "multi:softprob", "n_features": 40, "seed": 40, "num_class": 3},
}


@pytest.fixture(scope="session", params=list(MODELS))
def packaged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cpu archive (with its manifest beside it) of each model in MODELS."""
    name = str(request.param)
    spec = MODELS[name]
    booster = train(spec["objective"], spec["n_features"], seed=spec["seed"], num_class=spec.get("num_class"))
    return package_booster(booster, tmp_path_factory.mktemp(f"cpu-{name}"))
