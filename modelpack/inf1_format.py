"""What Neo's torch 1.9 can load, read from a TorchScript archive without torch.

``build_inf1_artifact.py`` (which needs torch) checks a fresh trace with these functions before it writes the
archive; the default test suite checks the committed archive with them, so it needs no multi-GB framework.
A TorchScript file is a zip: ``<root>/version`` (or ``<root>/.data/version``) holds the file-format version,
``<root>/code/**.py`` the serialized code, in which each ATen operator is called as ``torch.<name>(``.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable

MODEL_FILE = "model.pth"
ARTIFACT = "model.tar.gz"
MANIFEST = "model-manifest.json"

NEO_FRAMEWORK = "PYTORCH"
NEO_FRAMEWORK_VERSION = "1.9"
NEO_TARGET_DEVICE = "ml_inf1"
# kMaxSupportedFileFormatVersion in caffe2/serialize/versions.h of the release/1.9 branch.
NEO_TORCH_MAX_FILE_FORMAT_VERSION = 6
# Operators the GEMM tree strategy and the wrappers (one per link: sigmoid, identity, softmax) may trace to;
# every one is in torch 1.9's ATen.
TORCH_1_9_OPS = frozenset(
    {
        "aten::add",
        "aten::eq",
        "aten::lt",
        "aten::matmul",
        "aten::mm",
        "aten::select",
        "aten::sigmoid",
        "aten::slice",
        # multi:softprob's wrapper (ClassProbabilities); torch 1.9 schema: softmax.int(Tensor self, int dim,
        # ScalarType? dtype=None), the overload the serialized torch.softmax(x, 1) call resolves to.
        "aten::softmax",
        "aten::squeeze",
        "aten::sum",
        "aten::t",
        "aten::to",
        "aten::view",
    }
)
TOLERANCE = 1e-5

_OP_CALL = re.compile(r"\btorch\.([a-z_][a-z0-9_]*)\(", re.ASCII)


class ConversionError(RuntimeError):
    """The model cannot be converted into an archive Neo's torch can load; the message says why."""


def records(pth: bytes) -> dict[str, bytes]:
    """The archive's records by name, without the zip's top folder (as torch's reader names them)."""
    with zipfile.ZipFile(io.BytesIO(pth)) as archive:
        return {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist() if "/" in name}


def file_format_version(pth: bytes) -> int:
    """The TorchScript file-format version, read where torch's reader reads it."""
    found = records(pth)
    raw = found.get(".data/version", found.get("version"))
    if raw is None:
        raise ConversionError("the TorchScript archive has no version record")
    return int(raw.decode().strip())


def code_ops(pth: bytes) -> tuple[str, ...]:
    """The ATen operators the serialized code calls (``torch.mm(`` is ``aten::mm``), sorted."""
    code = (data.decode("utf-8") for name, data in records(pth).items() if name.startswith("code/"))
    return tuple(sorted({f"aten::{name}" for text in code for name in _OP_CALL.findall(text)}))


def check_loadable(version: int, ops: Iterable[str]) -> None:
    """Raise unless torch ``NEO_FRAMEWORK_VERSION`` can read the archive and has every operator."""
    if version > NEO_TORCH_MAX_FILE_FORMAT_VERSION:
        raise ConversionError(
            f"TorchScript file-format version {version} is newer than torch {NEO_FRAMEWORK_VERSION} reads "
            f"(at most {NEO_TORCH_MAX_FILE_FORMAT_VERSION})"
        )
    unknown = sorted(set(ops) - TORCH_1_9_OPS)
    if unknown:
        raise ConversionError(f"the traced graph uses operators not checked against torch 1.9: {unknown}")
