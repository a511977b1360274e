"""Checks a manifest against the model in its archive: features, objective, classes, read without XGBoost or torch.

The manifest is what the client, the Triton configuration and the Neo job are built from; this is where the
synth makes sure it describes the model that ships. Everything is read with the standard library:

* XGBoost JSON with ``json``, UBJSON (what ``Booster.save_model`` writes to a name without ``.json``, as
  SageMaker training jobs do) with a small reader; a pickle or any other format is refused, never guessed;
* a Triton ``config.pbtxt`` with a small protobuf text-format reader;
* a TorchScript ``model.pth`` (a zip) through the input shape it was traced with (``traced_inputs.pkl``), its
  ``base_margin`` buffer (``data.pkl``) and the operators its code calls; the pickles are read by an unpickler
  that maps the few names they use to inert stand-ins and refuses any other, so nothing in them runs.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import struct
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rtb_client import OBJECTIVE_KINDS  # what each served objective answers per row (the client's table)


class ManifestCheckError(ValueError):
    """The model cannot be read, or its manifest does not describe it; one line that follows "the artifact"."""


# Read one member of the archive by name: its bytes, or None if it holds no such regular file.
ReadMember = Callable[[str], bytes | None]

_MAKE_PACKAGE = "(make package writes it)"


@dataclass(frozen=True)
class ModelFacts:
    """What the model itself says it takes and answers."""

    file: str
    where: str  # how messages name it: "a binary:logistic model (xgboost-model)"
    features: int
    kind: str | None  # probability, value, class_probabilities; None for an objective the kit does not serve
    columns: int
    num_class: int | None  # class_probabilities only
    objective: str | None = None  # None: a traced model does not record it, only its output's link
    feature_names: tuple[str, ...] = ()
    xgboost_version: str | None = None
    ubjson: bool = False


def check_manifest(manifest: Mapping[str, Any], model_file: str, read: ReadMember) -> None:
    """Raise ManifestCheckError unless the model in the archive is the one its manifest describes (``read``: a
    member's bytes by name, None if absent)."""
    data = read(model_file)
    if data is None:
        raise ManifestCheckError(f"does not hold the model file {model_file!r} its manifest names")
    if data[:4] == b"PK\x03\x04":
        traced = read_torchscript(data, model_file)
        _check_traced(traced, manifest)
        return
    facts = read_xgboost(data, model_file)
    _check_xgboost(facts, manifest)
    triton = manifest.get("triton")
    if isinstance(triton, Mapping):
        _check_triton(facts, manifest, triton, model_file, read)


# --- the manifest against the model ------------------------------------------------------------------------


def _names(features: Sequence[Any]) -> str:
    shown = ", ".join(str(name) for name in features[:10])
    return shown if len(features) <= 10 else f"{shown}, ... ({len(features) - 10} more)"


def _columns(count: int) -> str:
    return f"{count} column" if count == 1 else f"{count} columns"


def _said(manifest: Mapping[str, Any], key: str) -> str:
    return f"says {key} {manifest[key]!r}" if key in manifest else f"has no {key}"


def _check_features(facts: ModelFacts, manifest: Mapping[str, Any], how: str = "") -> None:
    features = manifest["features"]
    if facts.features != len(features):
        raise ManifestCheckError(
            f"holds a model ({facts.file}) with {facts.features} features{how} but its manifest lists "
            f"{len(features)} ({_names(features)}); allowed: a manifest listing the model's {facts.features} "
            f"features {_MAKE_PACKAGE}"
        )
    for column, (stored, listed) in enumerate(zip(facts.feature_names, features, strict=False)):
        if stored != listed:
            raise ManifestCheckError(
                f"holds a model ({facts.file}) whose feature {column} is named {stored!r} but its manifest lists "
                f"{listed!r} there; allowed: the names stored in the model, in its order {_MAKE_PACKAGE}"
            )


def _check_output(facts: ModelFacts, manifest: Mapping[str, Any]) -> None:
    """num_class and output (kind, columns): what the client decodes from each answer."""
    if facts.num_class is not None:
        if manifest.get("num_class") != facts.num_class:
            raise ManifestCheckError(
                f"holds {facts.where} with {facts.num_class} classes but its manifest {_said(manifest, 'num_class')}; "
                f"allowed: a manifest with num_class {facts.num_class} {_MAKE_PACKAGE}"
            )
    elif "num_class" in manifest:
        raise ManifestCheckError(
            f"holds {facts.where}, which answers {_columns(facts.columns)} and no classes, but its manifest says "
            f"num_class {manifest['num_class']!r}; allowed: a manifest without num_class {_MAKE_PACKAGE}"
        )
    output = manifest.get("output")
    if not isinstance(output, Mapping):
        return  # absent: the client's own rule (binary:logistic only) applies; not an object: the client refuses it
    if facts.kind is not None and "kind" in output and output["kind"] != facts.kind:
        raise ManifestCheckError(
            f"holds {facts.where}, which answers {facts.kind}, but its manifest's output.kind is "
            f"{output['kind']!r}; allowed: {facts.kind!r} {_MAKE_PACKAGE}"
        )
    if "columns" in output and output["columns"] != facts.columns:
        raise ManifestCheckError(
            f"holds {facts.where}, which answers {_columns(facts.columns)} per row, but its manifest's "
            f"output.columns is {output['columns']!r}; allowed: {facts.columns} {_MAKE_PACKAGE}"
        )


def _check_xgboost(facts: ModelFacts, manifest: Mapping[str, Any]) -> None:
    _check_features(facts, manifest)
    if manifest.get("objective") != facts.objective:
        raise ManifestCheckError(
            f"holds {facts.where} but its manifest {_said(manifest, 'objective')}; allowed: a manifest with the "
            f"model's objective {facts.objective!r} {_MAKE_PACKAGE}"
        )
    _check_output(facts, manifest)
    if facts.xgboost_version != _release(manifest["xgboost_version"]):
        # The cpu profile picks its container by this version: XGBoost minor versions score each other's
        # models differently (base_score), so the manifest must name the one that saved the model.
        raise ManifestCheckError(
            f"holds {facts.where} saved with XGBoost {facts.xgboost_version} but its manifest says xgboost_version "
            f"{manifest['xgboost_version']!r}; allowed: {facts.xgboost_version!r} {_MAKE_PACKAGE}"
        )


def _release(version: str) -> str | None:
    """The release XGBoost records in the models it saves: 3.2.0 for "3.2.0", "3.2.0rc1" or "3.2.0+cpu"."""
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return ".".join(str(int(part)) for part in found.groups()) if found else None


# --- XGBoost JSON and UBJSON ---------------------------------------------------------------------------------

_XGBOOST_FORMATS = "XGBoost JSON or UBJSON, as Booster.save_model writes them (make package writes JSON)"


def read_xgboost(data: bytes, file: str) -> ModelFacts:
    """Features, objective, classes and version of an XGBoost JSON or UBJSON model."""
    if data[:1] == b"\x80":
        raise ManifestCheckError(
            f"holds {file!r}, a pickle, which the synth does not unpickle (loading one runs its code); allowed: "
            f"{_XGBOOST_FORMATS}"
        )
    start = data.lstrip(b" \t\r\n")[:2]
    if start[:1] != b"{":
        raise ManifestCheckError(
            f"holds {file!r} in a format the synth cannot read (it starts with {data[:8]!r}); allowed: "
            f"{_XGBOOST_FORMATS}"
        )
    ubjson = start[1:2] in _UBJSON_OBJECT_STARTS
    try:
        model = _Ubjson(data).document() if ubjson else json.loads(data)
    except (ValueError, UnicodeDecodeError, struct.error, RecursionError) as error:
        fmt = "UBJSON" if ubjson else "JSON"
        raise ManifestCheckError(
            f"holds {file!r}, which does not parse as {fmt} ({str(error)[:120]}); allowed: {_XGBOOST_FORMATS}"
        ) from error
    try:
        learner = model["learner"]
        params = learner["learner_model_param"]
        objective = str(learner["objective"]["name"])
        features = int(params["num_feature"])
        num_class = int(params.get("num_class", 0))
        num_target = int(params.get("num_target", 1))
        names = tuple(str(name) for name in learner.get("feature_names") or ())
        major, minor, patch = (int(part) for part in model["version"])
    except (KeyError, TypeError, ValueError) as error:
        raise ManifestCheckError(
            f"holds {file!r}, which is not an XGBoost model (no learner parameters, objective and version where "
            f"XGBoost writes them); allowed: {_XGBOOST_FORMATS}"
        ) from error
    kind = OBJECTIVE_KINDS.get(objective)
    classes = kind == "class_probabilities"
    return ModelFacts(
        file=file,
        features=features,
        kind=kind,
        columns=num_class if classes else num_target,
        num_class=num_class if classes else None,
        objective=objective,
        feature_names=names,
        xgboost_version=f"{major}.{minor}.{patch}",
        ubjson=ubjson,
        where=f"a {objective} model ({file})",
    )


# A UBJSON object starts with the length marker of its first key, a count or a type, or ends at once.
_UBJSON_OBJECT_STARTS = {b"i", b"U", b"I", b"l", b"L", b"#", b"$", b"}"}
_UBJSON_FIXED = {
    b"i": (">b", 1),
    b"U": (">B", 1),
    b"I": (">h", 2),
    b"l": (">i", 4),
    b"L": (">q", 8),
    b"d": (">f", 4),
    b"D": (">d", 8),
}
_UBJSON_INTEGERS = {b"i", b"U", b"I", b"l", b"L"}
_UBJSON_CONSTANTS = {b"Z": None, b"T": True, b"F": False}
# Typed numeric arrays longer than this (a tree's nodes, weights, thresholds) are skipped, not decoded: the
# check reads the learner's parameters, and skipping keeps a large model's reading in milliseconds.
_UBJSON_DECODED_MAX = 64


@dataclass(frozen=True)
class _Skipped:
    """A long typed array the reader stepped over."""

    count: int


class _Ubjson:
    """Universal Binary JSON (big-endian, optimized containers), as XGBoost writes it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def document(self) -> Any:
        value = self.value(self.marker())
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} bytes after the document")
        return value

    def skip(self, size: int) -> None:
        if self.pos + size > len(self.data):
            raise ValueError(f"the data ends inside a value at byte {self.pos}")
        self.pos += size

    def take(self, size: int) -> bytes:
        start = self.pos
        self.skip(size)
        return self.data[start : self.pos]

    def marker(self) -> bytes:
        while (found := self.take(1)) == b"N":  # no-op
            pass
        return found

    def integer(self, marker: bytes) -> int:
        if marker not in _UBJSON_INTEGERS:
            raise ValueError(f"expected a length at byte {self.pos - 1}, found {marker!r}")
        fmt, size = _UBJSON_FIXED[marker]
        value: int = struct.unpack(fmt, self.take(size))[0]
        if value < 0:
            raise ValueError(f"negative length at byte {self.pos - size}")
        return value

    def value(self, marker: bytes) -> Any:
        if marker in _UBJSON_FIXED:
            fmt, size = _UBJSON_FIXED[marker]
            return struct.unpack(fmt, self.take(size))[0]
        if marker in (b"S", b"H"):
            return self.take(self.integer(self.take(1))).decode("utf-8")
        if marker == b"C":
            return self.take(1).decode("latin-1")
        if marker in _UBJSON_CONSTANTS:
            return _UBJSON_CONSTANTS[marker]
        if marker == b"[":
            return self.array()
        if marker == b"{":
            return self.object()
        raise ValueError(f"unknown marker {marker!r} at byte {self.pos - 1}")

    def header(self) -> tuple[bytes | None, int | None]:
        """An optimized container's element type and count (None when not given)."""
        following = self.data[self.pos : self.pos + 1]
        if following == b"$":
            self.pos += 1
            kind = self.take(1)
            if self.take(1) != b"#":
                raise ValueError(f"a typed container without a count at byte {self.pos - 1}")
            return kind, self.integer(self.take(1))
        if following == b"#":
            self.pos += 1
            return None, self.integer(self.take(1))
        return None, None

    def array(self) -> Any:
        kind, count = self.header()
        if count is None:
            items = []
            while (marker := self.marker()) != b"]":
                items.append(self.value(marker))
            return items
        if kind in _UBJSON_FIXED:
            fmt, size = _UBJSON_FIXED[kind]
            if count > _UBJSON_DECODED_MAX:
                self.skip(count * size)
                return _Skipped(count)
            return list(struct.unpack(f">{count}{fmt[1]}", self.take(count * size)))
        return [self.value(kind or self.marker()) for _ in range(count)]

    def object(self) -> dict[str, Any]:
        kind, count = self.header()
        result: dict[str, Any] = {}
        if count is None:
            while (marker := self.marker()) != b"}":
                key = self.take(self.integer(marker)).decode("utf-8")
                result[key] = self.value(self.marker())
            return result
        for _ in range(count):
            key = self.take(self.integer(self.take(1))).decode("utf-8")
            result[key] = self.value(kind or self.marker())
        return result


# --- Triton: config.pbtxt beside the XGBoost model -----------------------------------------------------------


@dataclass(frozen=True)
class FilOutput:
    """What Triton's FIL backend must be told for an objective: its two flags and ``output__0``'s width.
    The same rule as modelpack/build_triton_artifact.fil_settings (tests/test_manifest_check.py keeps them equal)."""

    output_class: bool
    predict_proba: bool
    columns: int


def fil_output(objective: str, num_class: int | None) -> FilOutput:
    if num_class is not None:
        return FilOutput(True, True, num_class)
    if objective == "binary:logistic":  # FIL answers (1 - p, p)
        return FilOutput(True, True, 2)
    return FilOutput(False, False, 1)  # values and reg:logistic: the model's own output, one column


_FIL_FLAGS = ("output_class", "predict_proba")
_PBTXT_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|[{}\[\]<>:,;]|[^\s{}\[\]<>:,;"\'#]+')
_PBTXT_OPEN = {"{": "}", "<": ">"}


def parse_pbtxt(text: str) -> dict[str, list[Any]]:
    """Protobuf text format as nested dicts: each field name -> its values in order (repeated or not);
    a scalar is its token, a string without quotes or escapes, a message a dict of the same kind."""
    pieces = _PBTXT_TOKEN.findall(text)
    if "".join(pieces) != text:
        raise ValueError("an unterminated string or a character outside protobuf text format")
    tokens = [piece for piece in pieces if not piece[:1].isspace() and not piece.startswith("#")]
    message, _ = _pbtxt_message(tokens, 0, None)
    return message


def _pbtxt_message(tokens: list[str], pos: int, closer: str | None) -> tuple[dict[str, list[Any]], int]:
    fields: dict[str, list[Any]] = {}
    while pos < len(tokens) and tokens[pos] != closer:
        name = tokens[pos]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"expected a field name, found {name!r}")
        pos += 1
        if pos < len(tokens) and tokens[pos] == ":":
            pos += 1
        if pos >= len(tokens):
            raise ValueError(f"field {name} has no value")
        values = fields.setdefault(name, [])
        if tokens[pos] == "[":
            pos += 1
            while tokens[pos] != "]":
                value, pos = _pbtxt_value(tokens, pos)
                values.append(value)
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
        else:
            value, pos = _pbtxt_value(tokens, pos)
            values.append(value)
        if pos < len(tokens) and tokens[pos] in (",", ";"):
            pos += 1
    if closer is not None and pos >= len(tokens):
        raise ValueError(f"a message is not closed with {closer!r}")
    return fields, pos + (closer is not None)


def _pbtxt_value(tokens: list[str], pos: int) -> tuple[Any, int]:
    token = tokens[pos]
    if token in _PBTXT_OPEN:
        return _pbtxt_message(tokens, pos + 1, _PBTXT_OPEN[token])
    if token in "{}[]<>:,;":
        raise ValueError(f"expected a value, found {token!r}")
    if token[:1] in "\"'":
        return token[1:-1], pos + 1  # escapes are kept as written: the kit's configs have none
    return token, pos + 1


def _one(message: Mapping[str, list[Any]], name: str) -> Any:
    values = message.get(name, [])
    return values[0] if len(values) == 1 else None


def _tensor_config(message: Any) -> dict[str, Any]:
    """An input or output of config.pbtxt in the manifest's terms: name, data_type, dims."""
    if not isinstance(message, dict):
        raise ValueError("an input or output is not a message")
    dims = [int(value) for value in message.get("dims", [])]
    return {"name": _one(message, "name"), "data_type": _one(message, "data_type"), "dims": dims}


def _triton_config(text: str) -> dict[str, Any]:
    """The fields of config.pbtxt the manifest's ``triton`` block also records, under its names."""
    config = parse_pbtxt(text)
    inputs, outputs = config.get("input", []), config.get("output", [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"{len(inputs)} inputs and {len(outputs)} outputs, not one of each")
    parameters: dict[str, Any] = {}
    for parameter in config.get("parameters", []):
        value = _one(parameter, "value")
        parameters[str(_one(parameter, "key"))] = _one(value, "string_value") if isinstance(value, dict) else None
    batching = _one(config, "dynamic_batching")
    delay = _one(batching, "max_queue_delay_microseconds") if isinstance(batching, dict) else None
    # FIL's flags are the strings "true" and "false"; the manifest records them as booleans.
    flags = {name: {"true": True, "false": False}.get(str(parameters.get(name))) for name in _FIL_FLAGS}
    return {
        "model_name": _one(config, "name"),
        "backend": _one(config, "backend"),
        "max_batch_size": int(_one(config, "max_batch_size") or 0),
        "max_queue_delay_microseconds": None if delay is None else int(delay),
        "model_type": parameters.get("model_type"),
        **flags,
        "input": _tensor_config(inputs[0]),
        "output": _tensor_config(outputs[0]),
    }


def _check_triton(
    facts: ModelFacts, manifest: Mapping[str, Any], triton: Mapping[str, Any], model_file: str, read: ReadMember
) -> None:
    """config.pbtxt against the model (input width, output columns, FIL flags) and the manifest's triton block."""
    path = f"{model_file.split('/')[0]}/config.pbtxt"
    data = read(path)
    if data is None:
        raise ManifestCheckError(
            f"holds no Triton config {path} beside its model {model_file}; allowed: the model repository "
            f"make package writes (<name>/config.pbtxt, <name>/1/xgboost.json)"
        )
    try:
        config = _triton_config(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, IndexError) as error:
        raise ManifestCheckError(
            f"holds a Triton config ({path}) the synth cannot read ({str(error)[:120]}); allowed: the config.pbtxt "
            f"{_MAKE_PACKAGE}"
        ) from error
    where = f"a Triton config ({path})"
    if config["input"]["dims"] != [facts.features]:
        raise ManifestCheckError(
            f"holds {where} whose input takes dims {config['input']['dims']} but the model takes {facts.features} "
            f"features; allowed: dims [{facts.features}] {_MAKE_PACKAGE}"
        )
    if facts.objective is not None:
        fil = fil_output(facts.objective, facts.num_class)
        expected = {"output_class": fil.output_class, "predict_proba": fil.predict_proba}
        for flag, value in expected.items():
            if config[flag] is not value:
                said = "not 'true' or 'false'" if config[flag] is None else repr(str(config[flag]).lower())
                raise ManifestCheckError(
                    f"holds {where} whose {flag} is {said} but the FIL backend needs {str(value).lower()!r} for "
                    f"{facts.where}; allowed: {str(value).lower()!r} {_MAKE_PACKAGE}"
                )
        if config["output"]["dims"] != [fil.columns]:
            raise ManifestCheckError(
                f"holds {where} whose output has dims {config['output']['dims']} but the FIL backend answers "
                f"{_columns(fil.columns)} for {facts.where}; allowed: dims [{fil.columns}] {_MAKE_PACKAGE}"
            )
    if config["model_type"] != "xgboost_json" or facts.ubjson:
        form = "UBJSON" if facts.ubjson else "JSON"
        raise ManifestCheckError(
            f"holds {where} whose model_type is {config['model_type']!r} beside a model in {form}; allowed: "
            f"'xgboost_json' beside XGBoost JSON {_MAKE_PACKAGE}"
        )
    for key, found in config.items():
        described = triton.get(key)
        if isinstance(found, dict) and isinstance(described, Mapping):
            for part, value in found.items():
                if described.get(part) != value:
                    raise ManifestCheckError(
                        f"holds {where} whose {key} {part} is {value!r} but its manifest's triton.{key}.{part} is "
                        f"{described.get(part)!r}; allowed: the same value in both {_MAKE_PACKAGE}"
                    )
        elif described != found:
            raise ManifestCheckError(
                f"holds {where} whose {key} is {found!r} but its manifest's triton.{key} is {described!r}; "
                f"allowed: the same value in both {_MAKE_PACKAGE}"
            )


# --- TorchScript (the inferentia profile) --------------------------------------------------------------------

_TORCHSCRIPT = "a model.pth that scripts/build_inf1_artifact.py traced (make inf1-model)"
# The operators the kit's traced models call (modelpack/inf1_format.TORCH_1_9_OPS; tests/test_manifest_check.py
# keeps the two equal): the link decides what the model answers, the others only carry the trees' arithmetic.
_LINKS = {"sigmoid": "probability", "softmax": "class_probabilities"}
_ARITHMETIC = frozenset({"add", "eq", "lt", "matmul", "mm", "select", "slice", "squeeze", "sum", "t", "to", "view"})
TRACED_OPS = frozenset(f"aten::{name}" for name in _ARITHMETIC | set(_LINKS))
_PICKLES = ("traced_inputs.pkl", "data.pkl")
_OP_CALL = re.compile(r"\btorch\.([a-z_][a-z0-9_]*)\(", re.ASCII)


@dataclass(frozen=True)
class _Tensor:
    """A tensor in a TorchScript pickle: its shape only (its data stays in the zip, unread)."""

    shape: tuple[int, ...]


class _ScriptObject:
    """A TorchScript module in data.pkl: its class name and attributes, nothing run."""

    qualified_name = "?"

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _rebuild_tensor(storage: Any, offset: Any, size: Any, *rest: Any) -> _Tensor:
    if not (isinstance(size, tuple) and all(isinstance(value, int) for value in size)):
        raise pickle.UnpicklingError(f"a tensor whose size is {size!r}")
    return _Tensor(size)


def _restore_type_tag(value: Any, tag: Any) -> Any:
    return value


class _TorchScriptUnpickler(pickle.Unpickler):
    """Maps the globals TorchScript's pickles use to the stand-ins above; any other global is refused."""

    _STANDINS: Mapping[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
        ("collections", "OrderedDict"): dict,
    }

    def find_class(self, module: str, name: str) -> Any:
        standin = self._STANDINS.get((module, name))
        if standin is not None:
            return standin
        if module == "torch" and name.endswith("Storage"):
            return name  # the storage's type, only named in the persistent id
        if module.startswith("__torch__.") and name.isidentifier():
            return type(name, (_ScriptObject,), {"qualified_name": f"{module.removeprefix('__torch__.')}.{name}"})
        raise pickle.UnpicklingError(f"it references {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        return pid  # ('storage', type, key, location, size): the data is not read


def _unpickle(data: bytes) -> Any:
    return _TorchScriptUnpickler(io.BytesIO(data)).load()


@dataclass(frozen=True)
class TracedModel:
    """What a traced model.pth shows: its output, and the input shape it was traced with (Neo compiles for it)."""

    facts: ModelFacts
    input_shape: tuple[int, ...]


def read_torchscript(data: bytes, file: str) -> TracedModel:
    """Features from the traced input shape [1, features]; output kind from the link its code calls
    (sigmoid, softmax, none); classes from the length of its base_margin buffer (one per class)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # Records by name without the zip's top folder, as torch's reader names them.
            named = {name.split("/", 1)[1]: name for name in archive.namelist() if "/" in name}
            wanted = [name for name in named if name in _PICKLES or (name.startswith("code/") and name.endswith(".py"))]
            records = {name: archive.read(named[name]) for name in wanted}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ManifestCheckError(
            f"holds {file!r}, which is not a readable zip ({error}); allowed: {_TORCHSCRIPT}"
        ) from error
    missing = [name for name in _PICKLES if name not in records]
    if missing:
        raise ManifestCheckError(
            f"holds a TorchScript model ({file}) without {' and '.join(missing)}, where the synth reads its traced "
            f"input shape and output; allowed: {_TORCHSCRIPT}"
        )
    try:
        inputs = _unpickle(records["traced_inputs.pkl"])
        top = _unpickle(records["data.pkl"])
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError, IndexError) as error:
        raise ManifestCheckError(
            f"holds a TorchScript model ({file}) whose pickles the synth does not read ({str(error)[:120]}); "
            f"allowed: {_TORCHSCRIPT}"
        ) from error
    traced = inputs.get("forward") if isinstance(inputs, dict) else None
    if not (isinstance(traced, list) and len(traced) == 1 and isinstance(traced[0], _Tensor)):
        raise ManifestCheckError(
            f"holds a TorchScript model ({file}) whose forward was not traced with one tensor; allowed: {_TORCHSCRIPT}"
        )
    shape = traced[0].shape
    if len(shape) != 2 or shape[0] < 1:
        raise ManifestCheckError(
            f"holds a TorchScript model ({file}) traced with input shape {list(shape)}; allowed: [rows, features], "
            f"{_TORCHSCRIPT}"
        )
    code = (text.decode("utf-8", "replace") for name, text in records.items() if name.startswith("code/"))
    ops = {name for text in code for name in _OP_CALL.findall(text)}
    unknown = sorted(ops - _ARITHMETIC - set(_LINKS))
    links = sorted(ops & set(_LINKS))
    if unknown or len(links) > 1:
        calls = ", ".join(f"torch.{name}" for name in unknown or links)
        raise ManifestCheckError(
            f"holds a TorchScript model ({file}) whose code calls {calls}, which the synth cannot map to one output "
            f"(sigmoid: a probability, softmax: class probabilities, no link: a value); allowed: {_TORCHSCRIPT}"
        )
    link = links[0] if links else "identity"
    kind = _LINKS.get(link, "value")
    state = getattr(top, "state", None) if isinstance(top, _ScriptObject) else None
    margin = state.get("base_margin") if isinstance(state, dict) else None
    name = top.qualified_name if isinstance(top, _ScriptObject) else type(top).__name__
    classes = kind == "class_probabilities"
    if not isinstance(margin, _Tensor) or len(margin.shape) != (1 if classes else 0):
        holds = "one value per class" if classes else "one value"
        raise ManifestCheckError(
            f"holds a TorchScript model ({file}) whose top module {name} has no base_margin buffer of {holds} (the "
            f"kit's wrappers add one per output column); allowed: {_TORCHSCRIPT}"
        )
    num_class = margin.shape[0] if classes else None
    link_words = "no link" if link == "identity" else link
    facts = ModelFacts(
        file=file,
        features=shape[1],
        kind=kind,
        columns=num_class if num_class is not None else 1,
        num_class=num_class,
        where=f"a traced model ({file}, {link_words})",
    )
    return TracedModel(facts, shape)


def _check_traced(traced: TracedModel, manifest: Mapping[str, Any]) -> None:
    facts, shape = traced.facts, list(traced.input_shape)
    _check_features(facts, manifest, how=f" (traced with input shape {shape})")
    objective = manifest.get("objective")
    if OBJECTIVE_KINDS.get(str(objective)) != facts.kind:
        fitting = sorted(name for name, kind in OBJECTIVE_KINDS.items() if kind == facts.kind)
        answers = OBJECTIVE_KINDS.get(str(objective), "nothing the kit serves")
        # The link is all a trace keeps of the objective: binary:logistic and reg:logistic (sigmoid) read alike,
        # as do the value objectives (no link).
        raise ManifestCheckError(
            f"holds {facts.where}, which answers {facts.kind}, but its manifest {_said(manifest, 'objective')}, which "
            f"answers {answers}; allowed: an objective that answers {facts.kind} ({', '.join(fitting)}) "
            f"{_MAKE_PACKAGE}"
        )
    _check_output(facts, manifest)
    neo = manifest.get("neo")
    if isinstance(neo, Mapping) and "data_input_config" in neo:
        configured = neo["data_input_config"]
        if not (isinstance(configured, Mapping) and list(configured.values()) == [shape]):
            raise ManifestCheckError(
                f"holds {facts.where} traced with input shape {shape} but its manifest's neo.data_input_config is "
                f"{json.dumps(configured)}; allowed: one input of shape {shape}, which Neo compiles {_MAKE_PACKAGE}"
            )
    described = manifest.get("input")
    if isinstance(described, Mapping) and "shape" in described and described["shape"] != shape:
        raise ManifestCheckError(
            f"holds {facts.where} traced with input shape {shape} but its manifest's input.shape is "
            f"{described['shape']!r}; allowed: {shape} {_MAKE_PACKAGE}"
        )
