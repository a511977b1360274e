"""The builders' reading of a source manifest (notes/contract.md): the output per objective, older manifests,
and a model that does not match its manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from modelpack.model_source import ModelOutput, SourceError, base_scores, check_booster, model_output, read_source

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = REPO_ROOT / "model_artifacts" / "model.tar.gz"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"objective": "binary:logistic"}, ModelOutput("binary:logistic", "probability", 1, None)),
        (
            {"objective": "reg:logistic", "output": {"kind": "probability", "columns": 1}},
            ModelOutput("reg:logistic", "probability", 1, None),
        ),
        (
            {"objective": "reg:absoluteerror", "output": {"kind": "value", "columns": 1}},
            ModelOutput("reg:absoluteerror", "value", 1, None),
        ),
        (
            {"objective": "multi:softprob", "num_class": 4, "output": {"kind": "class_probabilities", "columns": 4}},
            ModelOutput("multi:softprob", "class_probabilities", 4, 4),
        ),
    ],
)
def test_output_per_objective(fields: dict[str, Any], expected: ModelOutput) -> None:
    assert model_output(fields) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"objective": "multi:softmax"}, "'multi:softmax' is not supported"),
        ({"objective": "reg:squarederror"}, "only a binary:logistic manifest may omit it"),
        ({"objective": "reg:squarederror", "output": {"kind": "probability", "columns": 1}}, "does not match"),
        ({"objective": "multi:softprob", "output": {"kind": "class_probabilities", "columns": 3}}, "num_class"),
        ({"objective": "binary:logistic", "output": {"kind": "probability", "columns": 2}}, "1 column"),
    ],
)
def test_a_manifest_the_contract_does_not_allow_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceError, match=message):
        model_output(fields)


def test_the_sample_reads_as_a_binary_probability_model() -> None:
    model_bytes, manifest = read_source(SAMPLE)
    booster = xgb.Booster()
    booster.load_model(bytearray(model_bytes))
    output = model_output(manifest)
    assert (output.kind, output.columns) == ("probability", 1)
    check_booster(booster, manifest, output)
    assert base_scores(booster) == [0.5]


def test_a_model_that_is_not_what_its_manifest_says_is_refused() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    params = {"objective": "multi:softprob", "num_class": 3, "nthread": 1, "seed": 3}
    booster = xgb.train(params, xgb.DMatrix(x, label=rng.integers(0, 3, size=200)), num_boost_round=2)
    manifest = {"features": ["a", "b", "c", "d"], "objective": "multi:softprob", "num_class": 3}
    output = ModelOutput("multi:softprob", "class_probabilities", 3, 3)
    check_booster(booster, manifest, output)
    assert len(base_scores(booster)) == 3
    with pytest.raises(SourceError, match="takes 4 features, the manifest lists 3"):
        check_booster(booster, {**manifest, "features": ["a", "b", "c"]}, output)
    with pytest.raises(SourceError, match="not unique"):
        check_booster(booster, {**manifest, "features": ["a", "a", "c", "d"]}, output)
    with pytest.raises(SourceError, match="has 3 classes, the manifest says 4"):
        check_booster(booster, manifest, ModelOutput("multi:softprob", "class_probabilities", 4, 4))
    with pytest.raises(SourceError, match="objective is 'multi:softprob'"):
        check_booster(booster, manifest, ModelOutput("reg:squarederror", "value", 1, None))
