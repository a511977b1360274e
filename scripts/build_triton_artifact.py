"""Package the sample XGBoost model as a Triton model repository for the gpu profile (FIL backend).

Usage::

    python scripts/build_triton_artifact.py [--source model_artifacts/model.tar.gz] [--out-dir DIR]

Reads the archive ``scripts/train_model.py`` writes (checked against its manifest), loads the model
with the installed XGBoost and saves it as XGBoost JSON. Writes into DIR (default
``model_artifacts/triton/``):

* ``model.tar.gz`` -- ``rtb-filter/config.pbtxt`` and ``rtb-filter/1/xgboost.json``, the model
  repository SageMaker unpacks into ``/opt/ml/model`` for its Triton container (which refuses a
  ``config.pbtxt`` at the top: each model needs its own folder);
* ``model-manifest.json`` -- checksum, versions, tensor names and shapes, the container environment
  and the request content types, for tests and deployers.

Fixed tar headers and member order and a gzip header without a timestamp: every run writes the same
bytes, so CDK asset hashes change only when the model or its configuration does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from scripts.archive import reproducible_tar_gz  # noqa: E402
from stacks import catalog  # noqa: E402
from stacks.artifact import ArtifactError, inspect_artifact, manifest_path  # noqa: E402

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
# For a binary classifier with predict_proba, FIL fills a [2] output as (1 - p, p): P(bid) is column 1.
OUTPUT_COLUMNS = 2
POSITIVE_CLASS_COLUMN = 1
# Rows per request and per dynamically formed batch. Bidders send one row or a small batch of candidates;
# 4096 rows are 112 KiB of FP32 input, and 50 trees of depth 5 score them on a T4 in well under a
# millisecond, so a full batch cannot threaten the 20 ms p99. A larger request is rejected with an error
# instead of holding the GPU.
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


def config_pbtxt(feature_count: int) -> str:
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
    dims: [ {OUTPUT_COLUMNS} ]
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
    value: {{ string_value: "true" }}
  }},
  {{
    key: "predict_proba"
    value: {{ string_value: "true" }}
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


def read_source(source: Path) -> tuple[bytes, dict[str, Any]]:
    """The model bytes of a checked XGBoost archive, and its manifest."""
    try:
        checked = inspect_artifact(source)
    except ArtifactError as error:
        raise SystemExit(f"{source}: {error}") from error
    manifest: dict[str, Any] = json.loads(manifest_path(source).read_text(encoding="utf-8"))
    if manifest["xgboost_version"] != xgb.__version__:
        raise SystemExit(
            f"{source} was saved with xgboost {manifest['xgboost_version']} but {xgb.__version__} is installed; "
            "install requirements-dev.txt"
        )
    with tarfile.open(source, "r:gz") as archive:
        member = archive.extractfile(checked.model_file)
        if member is None:
            raise SystemExit(f"{source}: {checked.model_file} is not a regular file")
        return member.read(), manifest


def to_xgboost_json(model_bytes: bytes, feature_count: int) -> tuple[bytes, xgb.Booster]:
    """Load with XGBoost and save as JSON (``save_raw`` without a format writes UBJSON)."""
    booster = xgb.Booster()
    booster.load_model(bytearray(model_bytes))
    if booster.num_features() != feature_count:
        raise SystemExit(f"the model takes {booster.num_features()} features, the manifest lists {feature_count}")
    json_bytes = bytes(booster.save_raw(raw_format="json"))
    reloaded = xgb.Booster()
    reloaded.load_model(bytearray(json_bytes))
    return json_bytes, reloaded


def _display(path: Path) -> str:
    """The path relative to the repository, so the manifest does not depend on where it was built."""
    resolved = path.resolve()
    return resolved.relative_to(REPO_ROOT).as_posix() if resolved.is_relative_to(REPO_ROOT) else path.name


def fil_output(probabilities: np.ndarray) -> np.ndarray:
    """What the FIL backend returns for P(class 1) with predict_proba and a [2] output: (1 - p, p)."""
    p = probabilities.astype(np.float32).reshape(-1, 1)
    return np.hstack([np.float32(1.0) - p, p])


def manifest(archive: bytes, source: Path, source_manifest: dict[str, Any], booster: xgb.Booster) -> dict[str, Any]:
    """Describe the Triton archive: what it holds, how to call it, and what it answers."""
    features = list(source_manifest["features"])
    version = catalog.triton_image_version()
    rows = np.array(source_manifest["reference"]["rows"], dtype=np.float32)
    outputs = fil_output(booster.predict(xgb.DMatrix(rows)))
    sample_row = [float(value) for value in source_manifest["sample_payload"].split(",")]
    return {
        "artifact": ARTIFACT,
        "sha256": hashlib.sha256(archive).hexdigest(),
        "source_artifact": {
            "path": _display(source),
            "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        },
        "xgboost_version": xgb.__version__,
        "objective": source_manifest["objective"],
        "features": features,
        "model_file": f"{MODEL_NAME}/{MODEL_VERSION}/{MODEL_FILE}",
        "triton": {
            "image_version": version,
            "image_tag": catalog.triton_image_table(version)["tag"],
            "model_name": MODEL_NAME,
            "model_version": MODEL_VERSION,
            "backend": "fil",
            "model_type": "xgboost_json",
            "max_batch_size": MAX_BATCH_SIZE,
            "max_queue_delay_microseconds": MAX_QUEUE_DELAY_MICROSECONDS,
            "input": {"name": INPUT_NAME, "data_type": "TYPE_FP32", "dims": [len(features)]},
            "output": {
                "name": OUTPUT_NAME,
                "data_type": "TYPE_FP32",
                "dims": [OUTPUT_COLUMNS],
                "positive_class_column": POSITIVE_CLASS_COLUMN,
            },
        },
        "container_environment": CONTAINER_ENVIRONMENT,
        "content_types": CONTENT_TYPES,
        "sample_request": {
            "inputs": [{"name": INPUT_NAME, "shape": [1, len(features)], "datatype": "FP32", "data": sample_row}]
        },
        "reference": {
            "rows": [[float(v) for v in row] for row in rows],
            OUTPUT_NAME: [[float(v) for v in row] for row in outputs],
        },
    }


def build(source: Path = DEFAULT_SOURCE, out_dir: Path = DEFAULT_OUT_DIR) -> Path:
    """Write the Triton archive and its manifest into ``out_dir``; return the archive path."""
    model_bytes, source_manifest = read_source(source)
    feature_count = len(source_manifest["features"])
    json_bytes, booster = to_xgboost_json(model_bytes, feature_count)
    archive = package(
        {
            f"{MODEL_NAME}/config.pbtxt": config_pbtxt(feature_count).encode("utf-8"),
            f"{MODEL_NAME}/{MODEL_VERSION}/{MODEL_FILE}": json_bytes,
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    archive_path = out_dir / ARTIFACT
    archive_path.write_bytes(archive)
    text = json.dumps(manifest(archive, source, source_manifest, booster), indent=2, sort_keys=True) + "\n"
    (out_dir / MANIFEST).write_text(text, encoding="utf-8")
    return archive_path


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the XGBoost model.tar.gz")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    archive_path = build(args.source, args.out_dir)
    digest = hashlib.sha256(archive_path.read_bytes()).hexdigest()
    print(f"wrote {archive_path} (sha256 {digest})")


if __name__ == "__main__":
    main()
