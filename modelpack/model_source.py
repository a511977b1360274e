"""The packaged XGBoost model the gpu and inferentia builders start from: its bytes, its manifest, and the output
the manifest promises (notes/contract.md, issue 15), checked against the booster itself.

Every shape comes from the source manifest and the model, never from the sample's training script.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xgboost as xgb

from rtb_client import OBJECTIVE_KINDS  # the supported objectives and what each answers per row
from stacks.artifact import ArtifactError, inspect_artifact, manifest_path


class SourceError(ValueError):
    """The source archive or its manifest cannot be built from; the message says why."""


# The log-link objectives: the cpu container answers XGBoost's own exp(margin) (a positive value the client checks
# as such); the gpu and inferentia converters are not checked for that link, so those profiles refuse them.
CPU_ONLY_OBJECTIVES = ("count:poisson", "reg:gamma", "reg:tweedie")
_CONVERTERS = {"gpu": "Treelite for Triton FIL", "inferentia": "hummingbird-ml's trace"}


def profile_refusal(profile: str, objective: str) -> str | None:
    """Why ``profile`` cannot serve a model of ``objective`` (None: it can, as far as the objective goes)."""
    if objective in CPU_ONLY_OBJECTIVES and profile != "cpu":
        return (
            f"objective {objective} is served by the cpu profile only: the {profile} profile's converter "
            f"({_CONVERTERS[profile]}) is not checked for its log link (exp of the margin); serve it on cpu"
        )
    return None


@dataclass(frozen=True)
class ModelOutput:
    """What the model answers per row: ``columns`` numbers of ``kind``; ``num_class`` for multi:softprob only."""

    objective: str
    kind: str
    columns: int
    num_class: int | None

    def as_manifest(self) -> dict[str, Any]:
        """The manifest's ``output`` (and ``num_class``) fields, as the source manifest writes them."""
        fields: dict[str, Any] = {"output": {"kind": self.kind, "columns": self.columns}}
        if self.num_class is not None:
            fields["num_class"] = self.num_class
        return fields


def model_output(manifest: dict[str, Any]) -> ModelOutput:
    """The output a manifest describes; a manifest from before ``output`` existed is binary:logistic only."""
    objective = manifest.get("objective")
    if objective not in OBJECTIVE_KINDS:
        raise SourceError(f"objective {objective!r} is not supported; allowed: {', '.join(OBJECTIVE_KINDS)}")
    kind = OBJECTIVE_KINDS[objective]
    if "output" not in manifest:
        if objective != "binary:logistic":
            raise SourceError(
                f"the manifest has no output; only a binary:logistic manifest may omit it, not {objective}"
            )
        return ModelOutput(objective, "probability", 1, None)
    output = manifest["output"]
    if not isinstance(output, dict) or output.get("kind") != kind:
        raise SourceError(f"output {output!r} does not match objective {objective} (kind {kind!r})")
    columns = output.get("columns")
    num_class = manifest.get("num_class")
    if kind == "class_probabilities":
        if not (isinstance(num_class, int) and num_class >= 2 and columns == num_class):
            raise SourceError(
                f"multi:softprob needs num_class >= 2 equal to output.columns, got {num_class}, {columns}"
            )
        return ModelOutput(objective, kind, num_class, num_class)
    if columns != 1 or num_class is not None:
        raise SourceError(
            f"{objective} answers 1 column without num_class, got columns {columns}, num_class {num_class}"
        )
    return ModelOutput(objective, kind, 1, None)


def read_source(source: Path) -> tuple[bytes, dict[str, Any]]:
    """The model bytes of a checked XGBoost archive (sha256 against its manifest), and the manifest."""
    try:
        checked = inspect_artifact(source)
    except ArtifactError as error:
        raise SourceError(f"{source}: {error}") from error
    manifest: dict[str, Any] = json.loads(manifest_path(source).read_text(encoding="utf-8"))
    if manifest["xgboost_version"] != xgb.__version__:
        raise SourceError(
            f"{source} was saved with xgboost {manifest['xgboost_version']} but {xgb.__version__} is installed; "
            "install requirements-dev.txt"
        )
    with tarfile.open(source, "r:gz") as archive:
        member = archive.extractfile(checked.model_file)
        if member is None:
            raise SourceError(f"{source}: {checked.model_file} is not a regular file")
        return member.read(), manifest


def base_scores(booster: xgb.Booster) -> list[float]:
    """``base_score`` as stored: XGBoost 3 writes a vector ("[5E-1]", one value per class for multi:softprob),
    earlier versions a scalar ("5E-1")."""
    params = json.loads(booster.save_config())["learner"]["learner_model_param"]
    return [float(value) for value in str(params["base_score"]).strip("[]").split(",")]


def check_booster(booster: xgb.Booster, manifest: dict[str, Any], output: ModelOutput) -> None:
    """Raise unless the model is what its manifest says: feature count, objective and class count."""
    features = manifest.get("features")
    if not (isinstance(features, list) and features and all(isinstance(f, str) and f for f in features)):
        raise SourceError("the manifest's features must be a non-empty list of non-empty names")
    if len(set(features)) != len(features):
        raise SourceError("the manifest's features are not unique")
    if booster.num_features() != len(features):
        raise SourceError(f"the model takes {booster.num_features()} features, the manifest lists {len(features)}")
    config = json.loads(booster.save_config())["learner"]
    objective = config["objective"]["name"]
    if objective != output.objective:
        raise SourceError(f"the model's objective is {objective!r}, the manifest says {output.objective!r}")
    num_class = int(config["learner_model_param"]["num_class"])
    if output.num_class is not None and num_class != output.num_class:
        raise SourceError(f"the model has {num_class} classes, the manifest says {output.num_class}")
    # One target: multi-output regression and vector leaves are outside the contract.
    if int(config["learner_model_param"].get("num_target", "1")) != 1:
        raise SourceError("the model has more than one target; the contract covers one")
