"""Shared fixtures: the default suite's fixtures of the committed gpu archive, and models trained here, packaged
as cpu archives by the kit's own packaging command (scripts/package_model.py), for the builders to convert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from modelpack import package_model
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
    """A cpu archive (with its manifest beside it) of each model in MODELS, as `make package` writes it."""
    name = str(request.param)
    spec = MODELS[name]
    booster = train(spec["objective"], spec["n_features"], seed=spec["seed"], num_class=spec.get("num_class"))
    folder = tmp_path_factory.mktemp(f"cpu-{name}")
    booster.save_model(folder / "booster.json")
    package_model.package(folder / "booster.json", folder, None, ("cpu",))
    return folder / package_model.ARTIFACT
