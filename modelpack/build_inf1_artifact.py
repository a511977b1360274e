"""Convert a packaged XGBoost model to a traced PyTorch model that SageMaker Neo compiles for Inferentia (ml_inf1).

Usage::

    python scripts/build_inf1_artifact.py [--source PATH] [--out-dir DIR]

Neo cannot compile XGBoost for Inferentia, but it compiles traced PyTorch models there. hummingbird-ml turns
the booster's trees into tensor operations (its GEMM strategy: three batched matrix products over all trees;
the split decisions are exact for finite inputs, only the sum over trees rounds in another order); a thin
wrapper adds the base margin and the objective's link, so ``forward(x)`` maps float32 ``[batch, n_features]``
to what ``Booster.predict`` answers: float32 ``[batch]`` for one column (binary:logistic and reg:logistic:
sigmoid; reg:squarederror, reg:absoluteerror, reg:pseudohubererror: identity), float32 ``[batch, num_class]``
for multi:softprob (softmax). The feature count, objective and output come from the source manifest
(notes/contract.md), checked against the model.

Neo's Inferentia table lists PyTorch 1.7, 1.8 and 1.9 (it compiles with that release, not ours), so the
archive must be one torch 1.9 can read. It checks that before writing:

* the TorchScript file-format ``version`` record is at most 6, the most torch 1.9 reads;
* the traced graph uses only operators torch 1.9 has;
* the ``*.debug_pkl`` source maps are dropped: torch 2.x writes them in a newer layout
  (``FORMAT_WITH_STRING_TABLE``) that torch 1.9 cannot parse, and the loader treats them as optional;
* the traced model reproduces XGBoost within ``TOLERANCE`` on rows that sit on, just below and just above the
  model's own split thresholds (``modelpack/model_rows.probe_rows``) and on the source's reference rows
  (for values, ``TOLERANCE`` times the largest magnitude, at least 1: float32 sums round relative to size).

Outputs (default: ``model_artifacts/inf1/``), byte-for-byte reproducible when run in a fresh interpreter:

* ``model.tar.gz`` -- one file, ``model.pth`` (TorchScript), at the archive root, as Neo expects;
* ``model-manifest.json`` -- checksum, versions, the Neo compilation settings, the measured error, and the
  source's features, objective, output, sample payload and reference rows with their predictions.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import xgboost as xgb

# hummingbird-ml ships no type information.
from hummingbird import ml as hummingbird  # type: ignore[import-untyped]

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from modelpack.archive import reproducible_tar_gz  # noqa: E402
from modelpack.inf1_format import (  # noqa: E402
    ARTIFACT,
    MANIFEST,
    MODEL_FILE,
    NEO_FRAMEWORK,
    NEO_FRAMEWORK_VERSION,
    NEO_TARGET_DEVICE,
    NEO_TORCH_MAX_FILE_FORMAT_VERSION,
    TOLERANCE,
    ConversionError,
    check_loadable,
    code_ops,
    file_format_version,
)
from modelpack.model_rows import probe_rows  # noqa: E402
from modelpack.model_source import (  # noqa: E402
    ModelOutput,
    SourceError,
    base_scores,
    check_booster,
    model_output,
    profile_refusal,
    read_source,
)

DEFAULT_SOURCE = REPO_ROOT / "model_artifacts" / "model.tar.gz"
DEFAULT_OUT_DIR = REPO_ROOT / "model_artifacts" / "inf1"

INPUT_NAME = "input0"

# Neuron's compiler may cast float32 matrix products to bfloat16 (its default differs between releases).
# bfloat16 holds integers exactly only up to 256 (the sample's IndexCityID reaches 370) and leaf values to
# ~3 digits: emulated on the CPU, that moves the sample's P(bid) by up to 0.06. Ask for float32 throughout;
# the value is a JSON string, as the API documents CompilerOptions for ml_inf1.
NEO_COMPILER_OPTIONS = '"--fast-math none"'
TREE_IMPLEMENTATION = "gemm"
# Seeds modelpack/model_rows.probe_rows; any fixed value keeps builds reproducible.
VALIDATION_SEED = 20261122
VALIDATION_ROWS = 1000
# The links the wrappers apply after adding the base margin, per objective (XGBoost's own prediction transform).
LINKS = {
    "binary:logistic": "sigmoid",
    "reg:logistic": "sigmoid",
    "reg:squarederror": "identity",
    "reg:absoluteerror": "identity",
    "reg:pseudohubererror": "identity",
    "multi:softprob": "softmax",
}

FloatArray = npt.NDArray[np.float32]


# The wrappers' names, attributes and forward code are in the traced archive's bytes: the sample's (binary)
# archive was built with BidFilter as it is, so it keeps its name even where the probability is not a bid's.
class BidFilter(torch.nn.Module):
    """A probability from the converted trees (binary:logistic, reg:logistic): float32 ``[batch, n_features]``
    in, float32 ``[batch]`` out."""

    # TorchScript names the saved class after its module; fix it, so the bytes do not depend on how
    # this file was imported (``__main__`` when run, ``modelpack.build_inf1_artifact`` from the tests).
    __module__ = "rtb_inf1"
    base_margin: torch.Tensor

    def __init__(self, trees: torch.nn.Module, base_margin: float) -> None:
        super().__init__()
        self.trees = trees
        self.register_buffer("base_margin", torch.tensor(base_margin, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # hummingbird's classifier returns (labels, scores); without a post-transform the scores are margins.
        _, margin = self.trees(x)
        return torch.sigmoid(margin[:, 0] + self.base_margin)


class ValueModel(torch.nn.Module):
    """A regression value from the converted trees (identity link): float32 ``[batch, n_features]`` in, float32
    ``[batch]`` out."""

    __module__ = "rtb_inf1"
    base_margin: torch.Tensor

    def __init__(self, trees: torch.nn.Module, base_margin: float) -> None:
        super().__init__()
        self.trees = trees
        self.register_buffer("base_margin", torch.tensor(base_margin, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Converted as a binary classifier (see load_trees): the one score column is the sum of the leaves.
        _, margin = self.trees(x)
        value: torch.Tensor = margin[:, 0] + self.base_margin
        return value


class ClassProbabilities(torch.nn.Module):
    """Class probabilities from the converted trees (multi:softprob): float32 ``[batch, n_features]`` in,
    float32 ``[batch, num_class]`` out."""

    __module__ = "rtb_inf1"
    base_margin: torch.Tensor

    def __init__(self, trees: torch.nn.Module, base_margin: list[float]) -> None:
        super().__init__()
        self.trees = trees
        self.register_buffer("base_margin", torch.tensor(base_margin, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, margin = self.trees(x)
        return torch.softmax(margin + self.base_margin, dim=1)


@dataclass(frozen=True)
class Inf1Artifact:
    """What ``build`` wrote and measured."""

    archive: Path
    manifest: Path
    sha256: str
    file_format_version: int
    ops: tuple[str, ...]
    max_abs_diff: float


def source_xgboost_version(model_bytes: bytes) -> str:
    """The XGBoost version that saved the model, as recorded in the model itself."""
    major, minor, patch = json.loads(model_bytes)["version"]
    return f"{major}.{minor}.{patch}"


def input_shape(source_manifest: dict[str, Any]) -> tuple[int, int]:
    """Neo's input shape: one row of the manifest's features."""
    return (1, len(source_manifest["features"]))


def base_margin(booster: xgb.Booster, output: ModelOutput) -> float | list[float]:
    """The margin the trees' sum starts from: hummingbird's XGBClassifier converter leaves the base score out.

    XGBoost stores base_score in the output's space: a probability for the logistic objectives (margin
    logit(p)), the value itself for the identity ones, and for multi:softprob (XGBoost 3.2) one margin per class.
    """
    values = base_scores(booster)
    link = LINKS[output.objective]
    if link == "softmax":
        if len(values) != output.columns:
            raise ConversionError(f"expected {output.columns} base scores for {output.objective}, got {values}")
        return values
    if len(values) != 1:
        raise ConversionError(f"expected one base_score for {output.objective}, got {values}")
    if link == "sigmoid":
        return math.log(values[0] / (1.0 - values[0]))
    return values[0]


def load_trees(model_bytes: bytes, source_manifest: dict[str, Any], output: ModelOutput) -> xgb.XGBClassifier:
    """The booster behind the scikit-learn classifier wrapper, the form hummingbird converts, checked against its
    manifest. Regressions load as a binary classifier too: hummingbird-ml 0.4.12's XGBRegressor converter reads
    base_score with float(), which fails on XGBoost 3's vector form ("[1.09E1]"); as a classifier without a
    post-transform it yields the plain sum of the leaves, and the wrapper adds the base margin itself."""
    classifier = xgb.XGBClassifier()
    classifier.load_model(bytearray(model_bytes))
    try:
        check_booster(classifier.get_booster(), source_manifest, output)
    except SourceError as error:
        raise ConversionError(str(error)) from error
    return classifier


def convert(classifier: xgb.XGBClassifier, output: ModelOutput, shape: tuple[int, int]) -> torch.nn.Module:
    """The trees and the objective's link as a PyTorch module (eval mode, no gradients)."""
    container = hummingbird.convert(
        classifier,
        "torch",
        np.zeros(shape, dtype=np.float32),
        extra_config={"tree_implementation": TREE_IMPLEMENTATION, "post_transform": None},
    )
    margin = base_margin(classifier.get_booster(), output)
    module: torch.nn.Module
    if isinstance(margin, list):
        module = ClassProbabilities(container.model, margin)
    elif LINKS[output.objective] == "sigmoid":
        module = BidFilter(container.model, margin)
    else:
        module = ValueModel(container.model, margin)
    module.requires_grad_(False)
    return module.eval()


@contextmanager
def torchscript() -> Iterator[None]:
    """Silence torch 2.x's TorchScript deprecation warnings: TorchScript is the format Neo's torch 1.9 reads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        yield


def trace(module: torch.nn.Module, shape: tuple[int, int]) -> torch.jit.ScriptModule:
    """Trace with Neo's input shape. Run once per interpreter: a second trace gets mangled class names."""
    example = torch.zeros(shape, dtype=torch.float32)
    # check_trace re-runs the model against itself (and imports torch.distributed, ~1 s);
    # max_abs_diff checks the saved model against XGBoost instead.
    with torchscript():
        # torch 2.13 leaves its deprecated TorchScript entry points unannotated.
        traced: torch.jit.ScriptModule = torch.jit.trace(module, example, check_trace=False)  # type: ignore[no-untyped-call]
    return traced


def load_traced(pth: bytes) -> torch.jit.ScriptModule:
    """Load a serialized TorchScript model, as Neo's compiler does before it compiles."""
    with torchscript():
        loaded: torch.jit.ScriptModule = torch.jit.load(io.BytesIO(pth))  # type: ignore[no-untyped-call]
    return loaded


def traced_ops(traced: torch.jit.ScriptModule) -> tuple[str, ...]:
    """The ATen operators the traced model runs, submodules inlined."""
    graph = traced.inlined_graph
    return tuple(sorted({node.kind() for node in graph.nodes() if node.kind().startswith("aten::")}))


def serialize(traced: torch.jit.ScriptModule) -> bytes:
    """``torch.jit.save`` output without the ``*.debug_pkl`` source maps torch 1.9 cannot parse."""
    buffer = io.BytesIO()
    with torchscript():
        torch.jit.save(traced, buffer)
    reader = torch._C.PyTorchFileReader(io.BytesIO(buffer.getvalue()))
    version = file_format_version(buffer.getvalue())
    out = io.BytesIO()
    # torch's own writer keeps the layout torch's reader expects (64-byte aligned records, fixed times);
    # it writes the version and serialization-id records itself, when the archive is closed.
    writer = torch._C.PyTorchFileWriter(out)
    for name in reader.get_all_records():
        if name.endswith(".debug_pkl") or name in {"version", ".data/version", ".data/serialization_id"}:
            continue
        data = reader.get_record(name)
        writer.write_record(name, data, len(data))
    writer.set_min_version(version)
    writer.write_end_of_file()
    if "___torch_mangle" in out.getvalue().decode("latin-1"):
        raise ConversionError("class names are mangled: trace once per interpreter for a reproducible archive")
    return out.getvalue()


@contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread: the same summation order everywhere, and no thread wake-ups per tiny call."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def max_abs_diff(pth: bytes, booster: xgb.Booster, rows: FloatArray) -> float:
    """Largest |traced - Booster.predict| over ``rows`` (every class column too), scoring the serialized model
    (what ships).

    Scores each row alone (the shape Neo compiles and the endpoint serves) and all rows as one batch.
    """
    loaded = load_traced(pth)
    tensor = torch.from_numpy(rows)
    with torch.no_grad(), single_thread():
        batch = loaded(tensor).numpy()
        single = np.concatenate([loaded(tensor[i : i + 1]).numpy() for i in range(len(rows))])
    expected = booster.predict(xgb.DMatrix(rows)).astype(np.float64)
    if batch.shape != expected.shape or single.shape != expected.shape:
        raise ConversionError(f"the traced model answers {batch.shape}, XGBoost {expected.shape}")
    return float(max(np.max(np.abs(batch - expected)), np.max(np.abs(single - expected))))


def tolerance(booster: xgb.Booster, output: ModelOutput, rows: FloatArray) -> float:
    """The largest error allowed: ``TOLERANCE`` for probabilities; for values ``TOLERANCE`` times the largest
    magnitude XGBoost predicts on ``rows`` (at least 1), since float32 sums round relative to their size."""
    if output.kind != "value":
        return TOLERANCE
    return TOLERANCE * max(1.0, float(np.max(np.abs(booster.predict(xgb.DMatrix(rows))))))


def reference_rows(source_manifest: dict[str, Any], shape: tuple[int, int]) -> FloatArray:
    """The source manifest's reference rows as float32 ``[rows, n_features]``."""
    rows = np.array(source_manifest["reference"]["rows"], dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != shape[1]:
        raise ConversionError(f"the reference rows have shape {rows.shape}, not [rows, {shape[1]}]")
    return rows


def package(pth: bytes) -> bytes:
    """A reproducible model.tar.gz: ``model.pth`` at the root, where Neo looks for it."""
    return reproducible_tar_gz({MODEL_FILE: pth})


def data_input_config(shape: tuple[int, int]) -> dict[str, list[int]]:
    """Neo's DataInputConfig for PyTorch: input name -> shape."""
    return {INPUT_NAME: list(shape)}


def output_description(output: ModelOutput, shape: tuple[int, int]) -> dict[str, Any]:
    """The manifest's ``output``: the source's kind and columns, and the traced model's answer to Neo's input."""
    described: dict[str, Any] = {"kind": output.kind, "columns": output.columns, "dtype": "float32"}
    if output.kind == "class_probabilities":
        described["shape"] = [shape[0], output.columns]
        described["meaning"] = "class probabilities, as Booster.predict"
    else:
        described["shape"] = [shape[0]]
        described["meaning"] = f"{'probability' if output.kind == 'probability' else 'value'}, as Booster.predict"
    return described


def manifest(
    archive: bytes,
    *,
    source: bytes,
    source_manifest: dict[str, Any],
    output: ModelOutput,
    xgboost_version: str,
    version: int,
    ops: Iterable[str],
    diff: float,
    allowed: float,
) -> dict[str, Any]:
    """Describe the archive and how Neo must compile it."""
    shape = input_shape(source_manifest)
    return {
        "artifact": ARTIFACT,
        "sha256": hashlib.sha256(archive).hexdigest(),
        "model_file": MODEL_FILE,
        "source_sha256": hashlib.sha256(source).hexdigest(),
        "xgboost_version": xgboost_version,
        "objective": output.objective,
        **output.as_manifest(),
        "output": output_description(output, shape),
        "features": list(source_manifest["features"]),
        "sample_payload": source_manifest["sample_payload"],
        "reference": {
            "rows": source_manifest["reference"]["rows"],
            "predictions": source_manifest["reference"]["predictions"],
        },
        "converter": {
            "package": "hummingbird-ml",
            "version": metadata.version("hummingbird-ml"),
            "tree_implementation": TREE_IMPLEMENTATION,
        },
        "torch_version": torch.__version__,
        "torchscript_file_format_version": version,
        "torchscript_ops": list(ops),
        "input": {"name": INPUT_NAME, "shape": list(shape), "dtype": "float32"},
        "neo": {
            "framework": NEO_FRAMEWORK,
            "framework_version": NEO_FRAMEWORK_VERSION,
            "target_device": NEO_TARGET_DEVICE,
            "data_input_config": data_input_config(shape),
            "compiler_options": NEO_COMPILER_OPTIONS,
            "max_readable_file_format_version": NEO_TORCH_MAX_FILE_FORMAT_VERSION,
        },
        "validation": {
            "rows": VALIDATION_ROWS,
            "row_source": "scripts/model_rows.py probe_rows",
            "seed": VALIDATION_SEED,
            "tolerance": allowed,
            "max_abs_diff": diff,
        },
    }


def build(out_dir: Path = DEFAULT_OUT_DIR, source: Path = DEFAULT_SOURCE) -> Inf1Artifact:
    """Convert, trace, check and package the model; write the archive and its manifest into ``out_dir``."""
    try:
        model_bytes, source_manifest = read_source(source)
        output = model_output(source_manifest)
    except SourceError as error:
        raise ConversionError(str(error)) from error
    refused = profile_refusal("inferentia", output.objective)
    if refused is not None:
        raise ConversionError(refused)
    shape = input_shape(source_manifest)
    classifier = load_trees(model_bytes, source_manifest, output)
    booster = classifier.get_booster()
    traced = trace(convert(classifier, output, shape), shape)
    ops = traced_ops(traced)
    pth = serialize(traced)
    version = file_format_version(pth)
    check_loadable(version, ops)
    # The default suite reads the operators from the archive's code without torch: keep that reading honest.
    if code_ops(pth) != ops:
        raise ConversionError(f"the archive's code calls {code_ops(pth)}, the traced graph runs {ops}")
    rows = np.concatenate(
        [probe_rows(booster, VALIDATION_ROWS, VALIDATION_SEED), reference_rows(source_manifest, shape)]
    )
    allowed = tolerance(booster, output, rows)
    diff = max_abs_diff(pth, booster, rows)
    if not diff <= allowed:
        raise ConversionError(f"the traced model differs from XGBoost by {diff:.3g} (> {allowed:.3g})")

    archive = package(pth)
    described = manifest(
        archive,
        source=source.read_bytes(),
        source_manifest=source_manifest,
        output=output,
        xgboost_version=source_xgboost_version(model_bytes),
        version=version,
        ops=ops,
        diff=diff,
        allowed=allowed,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    archive_path = out_dir / ARTIFACT
    archive_path.write_bytes(archive)
    manifest_path = out_dir / MANIFEST
    manifest_path.write_text(json.dumps(described, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Inf1Artifact(archive_path, manifest_path, described["sha256"], version, ops, diff)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="XGBoost model.tar.gz to convert")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    try:
        built = build(args.out_dir, args.source)
    except ConversionError as error:
        raise SystemExit(f"{args.source}: {error}") from error
    print(f"TorchScript file-format version {built.file_format_version}; ops: {', '.join(built.ops)}")
    print(f"max |torch - xgboost| over {VALIDATION_ROWS} probe rows and the reference rows: {built.max_abs_diff:.3g}")
    print(f"wrote {built.archive} (sha256 {built.sha256})")


if __name__ == "__main__":
    main()
