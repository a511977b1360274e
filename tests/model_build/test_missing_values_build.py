"""Why the gpu profile takes missing values and the inferentia profile refuses them (rtb_client.MISSING_REFUSED),
checked with the model-building layer (make test-model) on a model trained with missing values.

gpu: Treelite, which the FIL backend loads XGBoost JSON with, keeps each split's default direction, and GTIL
(Treelite's reference predictor) scores NaN rows as XGBoost does; FIL itself sends NaN to Treelite's default child
(cuML cpp/include/cuml/fil/detail/evaluate_tree.hpp). inferentia: the traced hummingbird-ml model does not.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import treelite
import xgboost as xgb

from modelpack import build_inf1_artifact as inf1
from modelpack import build_triton_artifact as triton
from modelpack.model_source import model_output, read_source
from rtb_client import MISSING_REFUSED
from tests.test_missing_values import FEATURES, _package

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[xgb.Booster, Path]:
    return _package(tmp_path_factory, FEATURES, seed=5)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    rng = np.random.default_rng(21)
    x = rng.normal(size=(500, FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    return x


def test_treelite_scores_rows_with_missing_values_as_xgboost(built: tuple[xgb.Booster, Path], rows: np.ndarray) -> None:
    booster, folder = built
    with tarfile.open(folder / "triton" / triton.ARTIFACT, "r:gz") as archive:  # the file FIL's loader reads
        member = archive.extractfile(f"{triton.MODEL_NAME}/{triton.MODEL_VERSION}/{triton.MODEL_FILE}")
        assert member is not None
        json_bytes = member.read()
    expected = booster.predict(xgb.DMatrix(rows, missing=np.nan))
    assert np.isnan(rows).any(axis=1).sum() > 300
    model = treelite.frontend.from_xgboost_json(json_bytes, allow_unknown_field=False)
    scores = np.asarray(treelite.gtil.predict(model, rows, nthread=1), dtype=np.float32).reshape(-1)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=TOLERANCE)
    assert "gpu" not in MISSING_REFUSED


def test_the_inferentia_trace_still_misreads_missing_values(built: tuple[xgb.Booster, Path], rows: np.ndarray) -> None:
    """When this fails, hummingbird-ml follows XGBoost's default directions: lift the refusal in MISSING_REFUSED."""
    booster, folder = built
    model_bytes, source_manifest = read_source(folder / "model.tar.gz")
    output = model_output(source_manifest)
    module = inf1.convert(inf1.load_trees(model_bytes, source_manifest, output), output, (1, FEATURES))
    with torch.no_grad():
        traced = module(torch.from_numpy(rows)).numpy().reshape(-1)
    expected = booster.predict(xgb.DMatrix(rows, missing=np.nan))
    with_nan = np.isnan(rows).any(axis=1)
    np.testing.assert_allclose(traced[~with_nan], expected[~with_nan], rtol=0, atol=TOLERANCE)  # finite rows: exact
    wrong = np.abs(traced[with_nan] - expected[with_nan]) > 1e-3
    assert wrong.mean() > 0.5, "most rows with a NaN score differently"
    assert "inferentia" in MISSING_REFUSED
