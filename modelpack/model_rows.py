"""Rows that exercise a model's own splits: for checking a converted model against XGBoost on any booster.

A row drawn from the training distribution may never land on a split threshold, so a converter that turns
XGBoost's ``x < t`` into ``x <= t``, or rounds a threshold, can pass on it. Each probe row puts every feature
the trees split on at, just below or just above one of that feature's thresholds.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import xgboost as xgb

FloatArray = npt.NDArray[np.float32]

# split_type in XGBoost's JSON model: 0 numerical (go left when x < threshold), 1 categorical.
_NUMERICAL = 0


def split_thresholds(booster: xgb.Booster) -> dict[int, FloatArray]:
    """Each split feature's distinct numerical thresholds, sorted, as float32 (what XGBoost compares with).

    Read from the model's JSON (``save_raw``), whose thresholds are the stored float32 values; the text dump
    prints them rounded for reading."""
    model = json.loads(bytes(booster.save_raw(raw_format="json")))
    found: dict[int, set[float]] = {}
    for tree in model["learner"]["gradient_booster"]["model"]["trees"]:
        kinds = tree.get("split_type") or [_NUMERICAL] * len(tree["left_children"])
        for left, feature, threshold, kind in zip(
            tree["left_children"], tree["split_indices"], tree["split_conditions"], kinds, strict=True
        ):
            if left != -1 and kind == _NUMERICAL:
                found.setdefault(int(feature), set()).add(float(np.float32(threshold)))
    return {feature: np.array(sorted(values), dtype=np.float32) for feature, values in sorted(found.items())}


def probe_rows(booster: xgb.Booster, count: int, seed: int) -> FloatArray:
    """``count`` float32 rows of ``booster.num_features()`` values: each split feature at, just below or just
    above a random threshold of its own; features the trees never split on are 0.0. Same seed, same rows."""
    if count < 0:
        raise ValueError(f"count must be at least 0, got {count}")
    rng = np.random.default_rng(seed)
    rows = np.zeros((count, booster.num_features()), dtype=np.float32)
    for feature, thresholds in split_thresholds(booster).items():
        picked = thresholds[rng.integers(0, len(thresholds), size=count)]
        below = np.nextafter(picked, np.float32(-np.inf))
        above = np.nextafter(picked, np.float32(np.inf))
        where = rng.integers(0, 3, size=count)
        rows[:, feature] = np.choose(where, [picked, below, above])
    return rows
