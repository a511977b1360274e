"""Package a packaged XGBoost model as a Triton model repository for the gpu profile (FIL backend).

Usage::

    python scripts/build_triton_artifact.py [--source model_artifacts/model.tar.gz] [--out-dir DIR]

Reads any cpu archive with its manifest (notes/contract.md: features, objective, output), checks the model
against the manifest, loads it with the installed XGBoost and saves it as XGBoost JSON. The input width is the
manifest's feature count; the output is configured per output kind (``fil_settings``). Writes into DIR
(default ``model_artifacts/triton/``):

* ``model.tar.gz`` -- ``rtb-filter/config.pbtxt`` and ``rtb-filter/1/xgboost.json``, the model
  repository SageMaker unpacks into ``/opt/ml/model`` for its Triton container (which refuses a
  ``config.pbtxt`` at the top: each model needs its own folder);
* ``model-manifest.json`` -- checksum, versions, tensor names and shapes, the container environment,
  the request content types, and the source's features, output, sample payload and reference rows with
  their predictions and the raw ``output__0`` FIL answers, for tests, clients and deployers.

Fixed tar headers and member order and a gzip header without a timestamp: every run writes the same
bytes, so CDK asset hashes change only when the model or its configuration does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from modelpack.archive import reproducible_tar_gz  # noqa: E402
from modelpack.model_source import (  # noqa: E402
    ModelOutput,
    SourceError,
    check_booster,
    model_output,
    profile_refusal,
    read_source,
)
from stacks import catalog  # noqa: E402

DEFAULT_SOURCE = REPO_ROOT / "model_artifacts" / "model.tar.gz"
DEFAULT_OUT_DIR = REPO_ROOT / "model_artifacts" / "triton"
ARTIFACT = "model.tar.gz"
# The name artifact.manifest_path() derives from model.tar.gz, as beside the XGBoost archive.
MANIFEST = "model-manifest.json"

MODEL_NAME = "rtb-filter"
MODEL_VERSION = "1"
# The FIL backend's default file name for model_type "xgboost_json".
MODEL_FILE = "xgboost.json"
INPUT_NAME = "input__0"
OUTPUT_NAME = "output__0"
# For a binary classifier with predict_proba, FIL fills a [2] output as (1 - p, p): P(positive) is column 1.
POSITIVE_CLASS_COLUMN = 1
# Reference predictions recomputed from the loaded model must match the source manifest's to this.
REFERENCE_TOLERANCE = 1e-6
# Rows per request and per dynamically formed batch. Bidders send one row or a small batch of candidates;
# for the sample (7 features) 4096 rows are 112 KiB of FP32 input, and 50 trees of depth 5 score them on a T4
# in well under a millisecond, so a full batch cannot threaten the 20 ms p99. A larger request is rejected
# with an error instead of holding the GPU. A much bigger model may want a smaller batch: measure it.
MAX_BATCH_SIZE = 4096
# How long the first request of a batch may wait for company. It adds to every request at light load, so
# it is kept at about one single-row model execution (0.12 ms median on CPU, docs/load-testing.md, latency budget):
# 0.1 ms is 0.5 % of the 20 ms p99 and 0.6 % of the 16.9 ms left after client, network and model. Under
# load, batches form anyway from requests queued while the GPU is busy.
MAX_QUEUE_DELAY_MICROSECONDS = 100

# SageMaker's Triton container loads this model folder from /opt/ml/model (its serve script passes it
# to tritonserver as --load-model); without it, it loads the only folder there.
CONTAINER_ENVIRONMENT = {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": MODEL_NAME}
# What SageMaker's Triton server reads at /invocations (triton-inference-server/server,
# src/sagemaker_server.cc): a KServe v2 JSON inference request, or the binary tensor extension, whose
# content type carries the length of the JSON header before the raw tensor bytes. Not text/csv.
CONTENT_TYPES = {
    "json": "application/json",
    "binary": "application/vnd.sagemaker-triton.binary+json;json-header-size={json_header_size}",
}


@dataclass(frozen=True)
class FilOutput:
    """How the FIL backend answers for one output kind: its two parameters and ``output__0``'s width."""

    output_class: bool
    predict_proba: bool
    columns: int


# What the FIL backend does with these settings (triton-inference-server/fil_backend, read at d71f8ef, June 2026):
# * docs/model_config.md: "If [predict_proba] is not used, the return value for each sample is just the index of
#   the output class [...] the single output dimension is just 1. Otherwise, a probability will be returned for
#   every class [...] Binary models are considered to have a single class".
# * src/tl_model.h and src/gpu_forest_model.h: a classifier with predict_proba whose output holds 2 values per
#   row gets (1 - p, p) ("Convert (n, 1) probability score matrix to (n, 2) matrix"); a multi-class one gets
#   the model's num_class probabilities; without output_class (is_classifier) neither the argmax nor the
#   threshold is applied, so a regressor returns the model's own transformed output (sigmoid for
#   reg:logistic, identity for the value objectives), one number per row.
# * src/shared_state.h: since 25.09 `output_class` is read as the deprecated spelling of `is_classifier` (a
#   warning in the log, the same meaning); "true" and "false" are both honoured. The kit keeps `output_class`
#   so the sample's config.pbtxt keeps its bytes (and its CDK asset hash).
# Objectives the FIL backend's model loader cannot read, and why. Treelite 4.6.1 (requirements-model.txt) stops
# with "Unrecognized XGBoost objective: reg:absoluteerror" (measured 2026-12-01); fil_backend at d71f8ef builds
# with Treelite 4.7.0, not checked here. tests/model_build fails once the pinned Treelite reads it.
FIL_UNSUPPORTED = {
    "reg:absoluteerror": "Treelite 4.6.1, which the FIL backend loads XGBoost JSON with, rejects this objective",
}


def fil_settings(output: ModelOutput) -> FilOutput:
    """The FIL settings for a model's output kind (notes/contract.md, serving facts)."""
    if output.objective in FIL_UNSUPPORTED:
        raise SourceError(f"{output.objective} cannot be served by Triton FIL: {FIL_UNSUPPORTED[output.objective]}")
    if output.kind == "class_probabilities":
        return FilOutput(output_class=True, predict_proba=True, columns=output.columns)
    if output.objective == "binary:logistic":
        return FilOutput(output_class=True, predict_proba=True, columns=2)
    # value objectives and reg:logistic: a regressor's own output, one column.
    return FilOutput(output_class=False, predict_proba=False, columns=1)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def config_pbtxt(feature_count: int, fil: FilOutput) -> str:
    """The Triton model configuration (protobuf text format) for the FIL backend."""
    return f"""\
# Written by scripts/build_triton_artifact.py: change the script, not this file.
name: "{MODEL_NAME}"
backend: "fil"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {feature_count} ]
  }}
]
output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {fil.columns} ]
  }}
]
instance_group [
  {{
    kind: KIND_GPU
    count: 1
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_MICROSECONDS}
}}
parameters [
  {{
    key: "model_type"
    value: {{ string_value: "xgboost_json" }}
  }},
  {{
    key: "output_class"
    value: {{ string_value: "{_flag(fil.output_class)}" }}
  }},
  {{
    key: "predict_proba"
    value: {{ string_value: "{_flag(fil.predict_proba)}" }}
  }},
  {{
    key: "xgboost_allow_unknown_field"
    value: {{ string_value: "false" }}
  }}
]
"""


def package(files: dict[str, bytes]) -> bytes:
    """A reproducible tar.gz of the model repository (``rtb-filter/...``)."""
    return reproducible_tar_gz(files)


def to_xgboost_json(
    model_bytes: bytes, source_manifest: dict[str, Any], output: ModelOutput
) -> tuple[bytes, xgb.Booster]:
    """Load with XGBoost, check it against its manifest and save as JSON (``save_raw`` without a format writes
    UBJSON)."""
    booster = xgb.Booster()
    booster.load_model(bytearray(model_bytes))
    check_booster(booster, source_manifest, output)
    json_bytes = bytes(booster.save_raw(raw_format="json"))
    reloaded = xgb.Booster()
    reloaded.load_model(bytearray(json_bytes))
    return json_bytes, reloaded


def _display(path: Path) -> str:
    """The path relative to the repository, so the manifest does not depend on where it was built."""
    resolved = path.resolve()
    return resolved.relative_to(REPO_ROOT).as_posix() if resolved.is_relative_to(REPO_ROOT) else path.name


def fil_output(predictions: np.ndarray, fil: FilOutput) -> np.ndarray:
    """``output__0`` as the FIL backend fills it from ``Booster.predict``'s answers: (1 - p, p) for a binary
    classifier, the class probabilities for multi:softprob, the model's value otherwise; float32 [rows, columns]."""
    predicted = np.asarray(predictions, dtype=np.float32).reshape(len(predictions), -1)
    if fil.predict_proba and fil.columns == 2 and predicted.shape[1] == 1:
        return np.hstack([np.float32(1.0) - predicted, predicted])
    if predicted.shape[1] != fil.columns:
        raise SourceError(f"the model answers {predicted.shape[1]} values per row, FIL is set for {fil.columns}")
    return predicted


def reference(source_manifest: dict[str, Any], booster: xgb.Booster, fil: FilOutput) -> dict[str, Any]:
    """The source's reference rows and predictions (what clients decode), checked against the model, with the
    raw ``output__0`` FIL answers for them."""
    source = source_manifest.get("reference")
    if not (isinstance(source, dict) and source.get("rows")):
        raise SourceError("the source manifest has no reference rows")
    rows = np.array(source["rows"], dtype=np.float32).reshape(len(source["rows"]), -1)
    predicted = booster.predict(xgb.DMatrix(rows))
    expected = np.array(source["predictions"], dtype=np.float64)
    if expected.shape != predicted.shape or not np.allclose(predicted, expected, rtol=0, atol=REFERENCE_TOLERANCE):
        raise SourceError("the model does not reproduce the source manifest's reference predictions")
    return {
        "rows": source["rows"],
        "predictions": source["predictions"],
        OUTPUT_NAME: [[float(v) for v in row] for row in fil_output(predicted, fil)],
    }


def sample_row(source_manifest: dict[str, Any]) -> list[float]:
    """The source's sample payload as numbers: one CSV row, a row of its reference rows (notes/contract.md)."""
    payload = source_manifest.get("sample_payload")
    if not isinstance(payload, str):
        raise SourceError("the source manifest has no sample_payload")
    values = [float(value) for value in payload.split(",")]
    if values not in source_manifest["reference"]["rows"]:
        raise SourceError(f"sample_payload {payload!r} is not one of the reference rows")
    return values


def manifest(
    archive: bytes, source: Path, source_manifest: dict[str, Any], booster: xgb.Booster, output: ModelOutput
) -> dict[str, Any]:
    """Describe the Triton archive: what it holds, how to call it, and what it answers."""
    features = list(source_manifest["features"])
    fil = fil_settings(output)
    version = catalog.triton_image_version()
    described_output: dict[str, Any] = {"name": OUTPUT_NAME, "data_type": "TYPE_FP32", "dims": [fil.columns]}
    if fil.predict_proba and output.columns == 1:
        described_output["positive_class_column"] = POSITIVE_CLASS_COLUMN
    return {
        "artifact": ARTIFACT,
        "sha256": hashlib.sha256(archive).hexdigest(),
        "source_artifact": {
            "path": _display(source),
            "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        },
        "xgboost_version": xgb.__version__,
        "objective": output.objective,
        **output.as_manifest(),
        "features": features,
        "model_file": f"{MODEL_NAME}/{MODEL_VERSION}/{MODEL_FILE}",
        "triton": {
            "image_version": version,
            "image_tag": catalog.triton_image_table(version)["tag"],
            "model_name": MODEL_NAME,
            "model_version": MODEL_VERSION,
            "backend": "fil",
            "model_type": "xgboost_json",
            "output_class": fil.output_class,
            "predict_proba": fil.predict_proba,
            "max_batch_size": MAX_BATCH_SIZE,
            "max_queue_delay_microseconds": MAX_QUEUE_DELAY_MICROSECONDS,
            "input": {"name": INPUT_NAME, "data_type": "TYPE_FP32", "dims": [len(features)]},
            "output": described_output,
        },
        "container_environment": CONTAINER_ENVIRONMENT,
        "content_types": CONTENT_TYPES,
        "sample_payload": source_manifest["sample_payload"],
        "sample_request": {
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "shape": [1, len(features)],
                    "datatype": "FP32",
                    "data": sample_row(source_manifest),
                }
            ]
        },
        "reference": reference(source_manifest, booster, fil),
    }


def build(source: Path = DEFAULT_SOURCE, out_dir: Path = DEFAULT_OUT_DIR) -> Path:
    """Write the Triton archive and its manifest into ``out_dir``; return the archive path."""
    model_bytes, source_manifest = read_source(source)
    output = model_output(source_manifest)
    # Treelite reads the log-link objectives, but FIL's exp link is not checked against XGBoost's here.
    refused = profile_refusal("gpu", output.objective)
    if refused is not None:
        raise SourceError(refused)
    json_bytes, booster = to_xgboost_json(model_bytes, source_manifest, output)
    config = config_pbtxt(len(source_manifest["features"]), fil_settings(output))
    archive = package(
        {
            f"{MODEL_NAME}/config.pbtxt": config.encode("utf-8"),
            f"{MODEL_NAME}/{MODEL_VERSION}/{MODEL_FILE}": json_bytes,
        }
    )
    # Described (and so checked) before anything is written: a refused model leaves the folder as it was.
    text = json.dumps(manifest(archive, source, source_manifest, booster, output), indent=2, sort_keys=True) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    archive_path = out_dir / ARTIFACT
    archive_path.write_bytes(archive)
    (out_dir / MANIFEST).write_text(text, encoding="utf-8")
    return archive_path


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the XGBoost model.tar.gz")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    try:
        archive_path = build(args.source, args.out_dir)
    except SourceError as error:
        raise SystemExit(f"{args.source}: {error}") from error
    digest = hashlib.sha256(archive_path.read_bytes()).hexdigest()
    print(f"wrote {archive_path} (sha256 {digest})")


if __name__ == "__main__":
    main()
