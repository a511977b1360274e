"""Train and package the sample "traffic filter" model the SageMaker endpoint serves.

Usage::

    python scripts/train_model.py [--out-dir DIR]

The model predicts whether to bid on a real-time-bidding request from 7 integer-valued
features (the AWS RTB Intelligence Kit layout). The data set is synthetic and seeded,
and training is single-threaded, so every run writes the same ``model.tar.gz`` byte for
byte: CDK asset hashes and template snapshots change only when the model changes.

Outputs (default: the repository's ``model_artifacts/``):

* ``model.tar.gz`` -- one file, ``xgboost-model`` (XGBoost JSON), at the archive root,
  the layout the built-in SageMaker XGBoost container loads;
* ``model-manifest.json`` -- checksum, versions, feature order and reference predictions
  that the tests compare the packaged model against.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script: `python scripts/train_model.py`

from modelpack.archive import reproducible_tar_gz  # noqa: E402

SEED = 20261121
N_ROWS = 20_000
TEST_FRACTION = 0.2
N_REFERENCE_ROWS = 20
NUM_BOOST_ROUND = 50

FEATURES = (
    "dow",
    "hour",
    "IndexAdvertiserID",
    "IndexDomain",
    "IndexRegionID",
    "IndexCityID",
    "device_type_id",
)
# Inclusive integer ranges per feature, in FEATURES order.
FEATURE_RANGES = ((0, 6), (0, 23), (0, 10), (0, 50), (0, 35), (0, 370), (1, 7))

PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.8,
    "tree_method": "hist",
    "seed": SEED,
    # One thread sums histograms in a fixed order, so every run grows identical trees.
    "nthread": 1,
    # Unset, XGBoost 3.x estimates base_score and stores it as a vector string
    # ("[5.3E-1]") that older XGBoost (1.7 in the SageMaker 1.7-1 image) misreads: the
    # model loads but predicts differently. An explicit value sidesteps that trap.
    "base_score": 0.5,
}

MODEL_FILE = "xgboost-model"
ARTIFACT = "model.tar.gz"
MANIFEST = "model-manifest.json"
CONTENT_TYPE = "text/csv"
SAMPLE_PAYLOAD = "2,0,0.0,7.0,3.0,20.0,2"
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "model_artifacts"

FloatArray = npt.NDArray[np.float32]


def make_dataset(rng: np.random.Generator, n_rows: int = N_ROWS) -> tuple[FloatArray, FloatArray]:
    """Draw features and labels from a logistic model, so there is signal to learn."""
    columns = [rng.integers(low, high, size=n_rows, endpoint=True) for low, high in FEATURE_RANGES]
    x = np.column_stack(columns).astype(np.float32)
    probability = 1.0 / (1.0 + np.exp(-bid_logit(x)))
    y = (rng.random(n_rows) < probability).astype(np.float32)
    return x, y


def bid_logit(x: FloatArray) -> npt.NDArray[np.float64]:
    """Log-odds of a bid: evening peak, keen advertisers, premium domains, device."""
    dow, hour, advertiser, domain, _region, _city, device = x.astype(np.float64).T
    hours_from_peak = np.minimum(np.abs(hour - 20.0), 24.0 - np.abs(hour - 20.0))
    logit: npt.NDArray[np.float64] = -1.5 + 2.0 * np.exp(-(hours_from_peak**2) / 18.0)
    logit += np.where(np.isin(advertiser, (3, 7)), 1.2, 0.0)
    logit -= np.where(advertiser == 9, 0.8, 0.0)
    logit += np.where(domain < 10, 0.9, 0.0)
    logit += np.where(device == 2, 0.6, 0.0) - np.where(device == 7, 1.0, 0.0)
    logit += np.where(dow >= 5, 0.3, 0.0)
    return logit


def split(
    x: FloatArray, y: FloatArray, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Shuffle once; hold out TEST_FRACTION of rows for evaluation and references."""
    order = rng.permutation(len(y))
    n_test = int(len(y) * TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def train(x: FloatArray, y: FloatArray) -> xgb.Booster:
    """Fit the booster, without feature names: the container's CSV DMatrix has none."""
    return xgb.train(PARAMS, xgb.DMatrix(x, label=y), num_boost_round=NUM_BOOST_ROUND)


def auc(y_true: FloatArray, scores: FloatArray) -> float:
    """ROC AUC as the Mann-Whitney U statistic; tied scores get their average rank."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    positive = y_true == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def model_json_bytes(booster: xgb.Booster) -> bytes:
    """Ask for JSON: save_model() to a name without ".json" writes UBJSON."""
    return bytes(booster.save_raw(raw_format="json"))


def load_booster(model_bytes: bytes) -> xgb.Booster:
    """Load a booster from serialized bytes, so references come from what we ship."""
    booster = xgb.Booster()
    booster.load_model(bytearray(model_bytes))
    return booster


def package(model_bytes: bytes) -> bytes:
    """Build a reproducible model.tar.gz: one member at the root (the container loads the first file)."""
    return reproducible_tar_gz({MODEL_FILE: model_bytes})


def parse_csv_row(payload: str) -> FloatArray:
    """Parse one headerless CSV row into a 1 x n float32 matrix."""
    return np.array([[float(value) for value in payload.split(",")]], dtype=np.float32)


def reference(booster: xgb.Booster, x_test: FloatArray) -> dict[str, list[Any]]:
    """Held-out rows plus the sample payload, with the shipped model's probabilities."""
    rows = np.vstack([x_test[:N_REFERENCE_ROWS], parse_csv_row(SAMPLE_PAYLOAD)])
    predictions = booster.predict(xgb.DMatrix(rows))
    return {
        "rows": [[float(v) for v in row] for row in rows],
        "predictions": [float(p) for p in predictions],
    }


def manifest(archive: bytes, booster: xgb.Booster, x_test: FloatArray) -> dict[str, Any]:
    """Describe the artifact so tests and deployers can check it without retraining."""
    return {
        "artifact": ARTIFACT,
        "sha256": hashlib.sha256(archive).hexdigest(),
        "model_file": MODEL_FILE,
        "xgboost_version": xgb.__version__,
        "objective": PARAMS["objective"],
        "features": list(FEATURES),
        # What the kit's client decodes (scripts/package_model.py writes the same for any model).
        "output": {"kind": "probability", "columns": 1},
        "content_type": CONTENT_TYPE,
        "sample_payload": SAMPLE_PAYLOAD,
        "reference": reference(booster, x_test),
    }


def build(out_dir: Path) -> tuple[Path, float]:
    """Write the artifact and manifest; return the archive path and test AUC."""
    rng = np.random.default_rng(SEED)
    x, y = make_dataset(rng)
    x_train, y_train, x_test, y_test = split(x, y, rng)
    model_bytes = model_json_bytes(train(x_train, y_train))
    shipped = load_booster(model_bytes)
    test_auc = auc(y_test, shipped.predict(xgb.DMatrix(x_test)))
    archive = package(model_bytes)

    out_dir.mkdir(parents=True, exist_ok=True)
    archive_path = out_dir / ARTIFACT
    archive_path.write_bytes(archive)
    text = json.dumps(manifest(archive, shipped, x_test), indent=2, sort_keys=True) + "\n"
    (out_dir / MANIFEST).write_text(text, encoding="utf-8")
    return archive_path, test_auc


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    archive_path, test_auc = build(args.out_dir)
    digest = hashlib.sha256(archive_path.read_bytes()).hexdigest()
    print(f"held-out AUC: {test_auc:.4f}")
    print(f"wrote {archive_path} (sha256 {digest})")


if __name__ == "__main__":
    main()
