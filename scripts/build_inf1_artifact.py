"""Convert the sample XGBoost model to a traced PyTorch model that SageMaker Neo compiles for Inferentia (ml_inf1).

Usage::

    python scripts/build_inf1_artifact.py [--source PATH] [--out-dir DIR]

Neo cannot compile XGBoost for Inferentia, but it compiles traced PyTorch models there. hummingbird-ml turns
the booster's trees into tensor operations (its GEMM strategy: three batched matrix products over all trees;
the split decisions are exact for finite inputs, only the sum over trees rounds in another order); a thin
wrapper adds the base margin and the logistic link, so ``forward(x)`` maps float32 ``[batch, 7]`` to P(bid)
as float32 ``[batch]``, matching ``Booster.predict``.

Neo's Inferentia table lists PyTorch 1.7, 1.8 and 1.9 (it compiles with that release, not ours), so the
archive must be one torch 1.9 can read. It checks that before writing:

* the TorchScript file-format ``version`` record is at most 6, the most torch 1.9 reads;
* the traced graph uses only operators torch 1.9 has;
* the ``*.debug_pkl`` source maps are dropped: torch 2.x writes them in a newer layout
  (``FORMAT_WITH_STRING_TABLE``) that torch 1.9 cannot parse, and the loader treats them as optional;
* the traced model reproduces XGBoost within ``TOLERANCE`` on rows drawn like the training data.

Outputs (default: ``model_artifacts/inf1/``), byte-for-byte reproducible when run in a fresh interpreter:

* ``model.tar.gz`` -- one file, ``model.pth`` (TorchScript), at the archive root, as Neo expects;
* ``model-manifest.json`` -- checksum, versions, the Neo compilation settings and the measured error.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import tarfile
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

from scripts import train_model  # noqa: E402
from scripts.archive import reproducible_tar_gz  # noqa: E402
from scripts.inf1_format import (  # noqa: E402
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

DEFAULT_SOURCE = REPO_ROOT / "model_artifacts" / train_model.ARTIFACT
DEFAULT_OUT_DIR = REPO_ROOT / "model_artifacts" / "inf1"

N_FEATURES = len(train_model.FEATURES)
INPUT_NAME = "input0"
INPUT_SHAPE = (1, N_FEATURES)

# Neuron's compiler may cast float32 matrix products to bfloat16 (its default differs between releases).
# bfloat16 holds integers exactly only up to 256 (IndexCityID reaches 370) and leaf values to ~3 digits:
# emulated on the CPU, that moves P(bid) by up to 0.06. Ask for float32 throughout; the value is a JSON
# string, as the API documents CompilerOptions for ml_inf1.
NEO_COMPILER_OPTIONS = '"--fast-math none"'
TREE_IMPLEMENTATION = "gemm"
OBJECTIVE = "binary:logistic"
VALIDATION_SEED = train_model.SEED + 1
VALIDATION_ROWS = 1000

FloatArray = npt.NDArray[np.float32]


class BidFilter(torch.nn.Module):
    """P(bid) from the converted trees: float32 ``[batch, 7]`` in, float32 ``[batch]`` out."""

    # TorchScript names the saved class after its module; fix it, so the bytes do not depend on how
    # this file was imported (``__main__`` when run, ``scripts.build_inf1_artifact`` from the tests).
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


@dataclass(frozen=True)
class Inf1Artifact:
    """What ``build`` wrote and measured."""

    archive: Path
    manifest: Path
    sha256: str
    file_format_version: int
    ops: tuple[str, ...]
    max_abs_diff: float


def read_source_model(source: Path) -> bytes:
    """The XGBoost JSON model from the built-in container's archive (``xgboost-model`` at the root)."""
    with tarfile.open(source, "r:gz") as archive:
        member = archive.extractfile(train_model.MODEL_FILE)
        if member is None:
            raise ConversionError(f"{source} holds no regular file {train_model.MODEL_FILE}")
        return member.read()


def source_xgboost_version(model_bytes: bytes) -> str:
    """The XGBoost version that saved the model, as recorded in the model itself."""
    major, minor, patch = json.loads(model_bytes)["version"]
    return f"{major}.{minor}.{patch}"


def base_margin(classifier: xgb.XGBClassifier) -> float:
    """logit(base_score): hummingbird's XGBClassifier converter leaves the base score out."""
    params = json.loads(classifier.get_booster().save_config())["learner"]["learner_model_param"]
    # XGBoost 3 writes a vector ("[5E-1]"); earlier versions a scalar ("5E-1").
    values = [float(v) for v in str(params["base_score"]).strip("[]").split(",")]
    if len(values) != 1:
        raise ConversionError(f"expected one base_score for {OBJECTIVE}, got {values}")
    return math.log(values[0] / (1.0 - values[0]))


def load_classifier(model_bytes: bytes) -> xgb.XGBClassifier:
    """The booster behind the scikit-learn wrapper, which is the form hummingbird converts."""
    classifier = xgb.XGBClassifier()
    classifier.load_model(bytearray(model_bytes))
    objective = json.loads(classifier.get_booster().save_config())["learner"]["objective"]["name"]
    if objective != OBJECTIVE:
        raise ConversionError(f"objective is {objective!r}; this conversion handles {OBJECTIVE!r} only")
    if classifier.get_booster().num_features() != N_FEATURES:
        raise ConversionError(f"model takes {classifier.get_booster().num_features()} features, not {N_FEATURES}")
    return classifier


def convert(classifier: xgb.XGBClassifier) -> BidFilter:
    """The trees as a PyTorch module (eval mode, no gradients)."""
    container = hummingbird.convert(
        classifier,
        "torch",
        np.zeros(INPUT_SHAPE, dtype=np.float32),
        extra_config={"tree_implementation": TREE_IMPLEMENTATION, "post_transform": None},
    )
    module = BidFilter(container.model, base_margin(classifier))
    module.requires_grad_(False)
    return module.eval()


@contextmanager
def torchscript() -> Iterator[None]:
    """Silence torch 2.x's TorchScript deprecation warnings: TorchScript is the format Neo's torch 1.9 reads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        yield


def trace(module: BidFilter) -> torch.jit.ScriptModule:
    """Trace with Neo's input shape. Run once per interpreter: a second trace gets mangled class names."""
    example = torch.zeros(INPUT_SHAPE, dtype=torch.float32)
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


def validation_rows() -> FloatArray:
    """Rows drawn like the training data, from a seed training did not use."""
    rows, _ = train_model.make_dataset(np.random.default_rng(VALIDATION_SEED), VALIDATION_ROWS)
    return rows


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
    """Largest |P_torch - P_xgboost| over ``rows``, scoring the serialized model (what ships).

    Scores each row alone (the shape Neo compiles and the endpoint serves) and all rows as one batch.
    """
    loaded = load_traced(pth)
    tensor = torch.from_numpy(rows)
    with torch.no_grad(), single_thread():
        batch = loaded(tensor).numpy()
        single = np.concatenate([loaded(tensor[i : i + 1]).numpy() for i in range(len(rows))])
    expected = booster.predict(xgb.DMatrix(rows)).astype(np.float64)
    return float(max(np.max(np.abs(batch - expected)), np.max(np.abs(single - expected))))


def package(pth: bytes) -> bytes:
    """A reproducible model.tar.gz: ``model.pth`` at the root, where Neo looks for it."""
    return reproducible_tar_gz({MODEL_FILE: pth})


def data_input_config() -> dict[str, list[int]]:
    """Neo's DataInputConfig for PyTorch: input name -> shape."""
    return {INPUT_NAME: list(INPUT_SHAPE)}


def manifest(
    archive: bytes, *, source: bytes, xgboost_version: str, version: int, ops: Iterable[str], diff: float
) -> dict[str, Any]:
    """Describe the archive and how Neo must compile it."""
    return {
        "artifact": ARTIFACT,
        "sha256": hashlib.sha256(archive).hexdigest(),
        "model_file": MODEL_FILE,
        "source_sha256": hashlib.sha256(source).hexdigest(),
        "xgboost_version": xgboost_version,
        "objective": OBJECTIVE,
        "features": list(train_model.FEATURES),
        "converter": {
            "package": "hummingbird-ml",
            "version": metadata.version("hummingbird-ml"),
            "tree_implementation": TREE_IMPLEMENTATION,
        },
        "torch_version": torch.__version__,
        "torchscript_file_format_version": version,
        "torchscript_ops": list(ops),
        "input": {"name": INPUT_NAME, "shape": list(INPUT_SHAPE), "dtype": "float32"},
        "output": {"shape": [INPUT_SHAPE[0]], "dtype": "float32", "meaning": "P(bid), as Booster.predict"},
        "neo": {
            "framework": NEO_FRAMEWORK,
            "framework_version": NEO_FRAMEWORK_VERSION,
            "target_device": NEO_TARGET_DEVICE,
            "data_input_config": data_input_config(),
            "compiler_options": NEO_COMPILER_OPTIONS,
            "max_readable_file_format_version": NEO_TORCH_MAX_FILE_FORMAT_VERSION,
        },
        "validation": {
            "rows": VALIDATION_ROWS,
            "seed": VALIDATION_SEED,
            "tolerance": TOLERANCE,
            "max_abs_diff": diff,
        },
    }


def build(out_dir: Path = DEFAULT_OUT_DIR, source: Path = DEFAULT_SOURCE) -> Inf1Artifact:
    """Convert, trace, check and package the model; write the archive and its manifest into ``out_dir``."""
    model_bytes = read_source_model(source)
    classifier = load_classifier(model_bytes)
    traced = trace(convert(classifier))
    ops = traced_ops(traced)
    pth = serialize(traced)
    version = file_format_version(pth)
    check_loadable(version, ops)
    # The default suite reads the operators from the archive's code without torch: keep that reading honest.
    if code_ops(pth) != ops:
        raise ConversionError(f"the archive's code calls {code_ops(pth)}, the traced graph runs {ops}")
    diff = max_abs_diff(pth, classifier.get_booster(), validation_rows())
    if not diff <= TOLERANCE:
        raise ConversionError(f"the traced model differs from XGBoost by {diff:.3g} (> {TOLERANCE})")

    archive = package(pth)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive_path = out_dir / ARTIFACT
    archive_path.write_bytes(archive)
    described = manifest(
        archive,
        source=source.read_bytes(),
        xgboost_version=source_xgboost_version(model_bytes),
        version=version,
        ops=ops,
        diff=diff,
    )
    manifest_path = out_dir / MANIFEST
    manifest_path.write_text(json.dumps(described, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Inf1Artifact(archive_path, manifest_path, described["sha256"], version, ops, diff)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="XGBoost model.tar.gz to convert")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    built = build(args.out_dir, args.source)
    print(f"TorchScript file-format version {built.file_format_version}; ops: {', '.join(built.ops)}")
    print(f"max |P_torch - P_xgboost| over {VALIDATION_ROWS} rows: {built.max_abs_diff:.3g}")
    print(f"wrote {built.archive} (sha256 {built.sha256})")


if __name__ == "__main__":
    main()
