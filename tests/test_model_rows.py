"""Probe rows: every split feature on, just below or just above one of its own thresholds, reproducibly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from modelpack.model_rows import probe_rows, split_thresholds

N_FEATURES = 6
UNUSED = 5  # a constant column: the trees never split on it


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, N_FEATURES)).astype(np.float32)
    x[:, UNUSED] = 3.0
    y = x[:, 0] + 2 * x[:, 1] - x[:, 2]
    params = {"objective": "reg:squarederror", "max_depth": 3, "nthread": 1, "seed": 7}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=5)


def test_rows_are_float32_one_column_per_model_feature(booster: xgb.Booster) -> None:
    rows = probe_rows(booster, 50, seed=1)
    assert rows.shape == (50, N_FEATURES)
    assert rows.dtype == np.float32
    assert probe_rows(booster, 0, seed=1).shape == (0, N_FEATURES)


def test_same_seed_same_rows_another_seed_other_rows(booster: xgb.Booster) -> None:
    np.testing.assert_array_equal(probe_rows(booster, 30, seed=3), probe_rows(booster, 30, seed=3))
    assert not np.array_equal(probe_rows(booster, 30, seed=3), probe_rows(booster, 30, seed=4))


def test_each_split_feature_sits_at_or_one_float_beside_one_of_its_thresholds(booster: xgb.Booster) -> None:
    rows = probe_rows(booster, 300, seed=2)
    thresholds = split_thresholds(booster)
    assert UNUSED not in thresholds and thresholds
    np.testing.assert_array_equal(rows[:, UNUSED], 0.0)
    positions = set()
    for feature, values in thresholds.items():
        below = np.nextafter(values, np.float32(-np.inf))
        above = np.nextafter(values, np.float32(np.inf))
        for value in rows[:, feature]:
            (where,) = [name for name, near in (("at", values), ("below", below), ("above", above)) if value in near]
            positions.add(where)
    # XGBoost goes left when x < t: "at" and "above" take the right branch, "below" the left.
    assert positions == {"at", "below", "above"}


def test_thresholds_are_the_models_own_float32_values(booster: xgb.Booster) -> None:
    """At the first tree's root threshold and one float below it, a row takes different branches."""
    root = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]["gradient_booster"]["model"]["trees"][0]
    feature, threshold = root["split_indices"][0], np.float32(root["split_conditions"][0])
    assert threshold in split_thresholds(booster)[feature]
    at = np.zeros((1, N_FEATURES), dtype=np.float32)
    at[0, feature] = threshold
    below = at.copy()
    below[0, feature] = np.nextafter(threshold, np.float32(-np.inf))
    assert booster.predict(xgb.DMatrix(at))[0] != booster.predict(xgb.DMatrix(below))[0]


def test_negative_count_is_refused(booster: xgb.Booster) -> None:
    with pytest.raises(ValueError, match="count must be at least 0"):
        probe_rows(booster, -1, seed=1)
