"""Package your own XGBoost model for the kit: the cpu artifact and its manifest, then the gpu and inferentia ones.

Usage::

    python scripts/package_model.py MODEL [--features FILE] [--out-dir DIR] [--profiles cpu,gpu,inferentia]
    make package MODEL=path/to/model.json [FEATURES=names.txt] [OUT=model_artifacts/mine]

MODEL is a booster file (XGBoost JSON or UBJSON, as ``Booster.save_model`` writes them) or the
``model.tar.gz`` a SageMaker training job wrote (exactly one model file inside). FILE names the features
in column order, one per line; without it the names stored in the model are used, else f0, f1, ...

Writes into DIR (default ``model_artifacts/custom``), byte for byte the same on every run:

* ``model.tar.gz`` and ``model-manifest.json`` -- the cpu profile's archive (``xgboost-model``, XGBoost
  JSON, at the root: what the built-in XGBoost container loads) and what the kit reads from it: features,
  objective, output shape, versions, and reference rows drawn at the model's own split thresholds with the
  model's predictions for them;
* ``triton/`` -- the gpu profile's Triton FIL model repository (scripts/build_triton_artifact.py);
* ``inf1/`` -- the inferentia profile's traced model (scripts/build_inf1_artifact.py), when the
  model-building layer is installed (``make setup-model``).

A model the containers cannot load or would score differently is refused with one line saying why.
Point a stage's ``model_artifact`` at DIR/model.tar.gz (cpu), DIR/triton/model.tar.gz (gpu) or
DIR/inf1/model.tar.gz (inferentia): docs/own-model.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from modelpack.archive import reproducible_tar_gz  # noqa: E402
from modelpack.model_rows import probe_rows  # noqa: E402
from modelpack.model_source import SourceError, profile_refusal  # noqa: E402
from rtb_client import OBJECTIVE_KINDS  # noqa: E402  (what each served objective answers)
from stacks import catalog  # noqa: E402

ARTIFACT = "model.tar.gz"
MANIFEST = "model-manifest.json"
# The built-in container loads the first file at the archive root; the name is the convention.
MODEL_FILE = "xgboost-model"
CONTENT_TYPE = "text/csv"
DEFAULT_OUT_DIR = REPO_ROOT / "model_artifacts" / "custom"
PROFILES = ("cpu", "gpu", "inferentia")
REFERENCE_ROWS = 20
REFERENCE_SEED = 20261201

# Why the others are refused: what they answer, and what to train instead.
_REFUSED_OBJECTIVES = {
    "binary:logitraw": "it answers raw margins, not probabilities; train with binary:logistic",
    "binary:hinge": "it answers 0/1 labels; train with binary:logistic",
    "multi:softmax": "it answers a class label; train with multi:softprob (the kit serves class probabilities)",
}


class PackagingError(ValueError):
    """The model cannot be packaged; the message says why, in one line."""


@dataclass(frozen=True)
class ModelInfo:
    """What XGBoost knows about a booster, read from its own JSON."""

    saved_with: str
    objective: str
    num_feature: int
    num_class: int
    feature_names: tuple[str, ...]
    booster: str

    @property
    def kind(self) -> str:
        return OBJECTIVE_KINDS[self.objective]

    @property
    def columns(self) -> int:
        return self.num_class if self.kind == "class_probabilities" else 1


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3])


def read_model_bytes(path: Path) -> bytes:
    """The booster bytes of a booster file, or of the one model file in a training job's archive."""
    if not path.is_file():
        raise PackagingError(f"{path}: no such file; allowed: a booster file (JSON or UBJSON) or a model.tar.gz")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip: a training job's model.tar.gz
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                files = [member for member in archive.getmembers() if member.isfile()]
                if len(files) != 1:
                    names = ", ".join(member.name for member in files) or "none"
                    raise PackagingError(
                        f"{path} holds {len(files)} files ({names}); allowed: an archive with exactly one model file"
                    )
                member = archive.extractfile(files[0])
                assert member is not None  # a regular file
                data = member.read()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise PackagingError(f"{path} is not a readable tar.gz archive ({error})") from error
    if data[:1] == b"\x80":
        raise PackagingError(
            f"{path} holds a pickled booster, which the kit does not unpickle; allowed: a model saved with "
            "Booster.save_model('model.json') (load the pickle in the XGBoost that trained it, then save it)"
        )
    if data[:1] != b"{":
        raise PackagingError(f"{path} is neither XGBoost JSON nor UBJSON; allowed: a file Booster.save_model wrote")
    return data


def saved_version(model_bytes: bytes) -> str:
    """The XGBoost version recorded in the model (JSON or UBJSON), not the installed one."""
    try:
        major, minor, patch = json.loads(model_bytes)["version"]
        return f"{major}.{minor}.{patch}"
    except (ValueError, KeyError, TypeError):
        pass
    # UBJSON: the key "version" (length-prefixed), then an int array such as [#L<count>i<3>i<2>i<0>.
    marker = model_bytes.rfind(b"version")
    if marker < 0:
        raise PackagingError("the model records no XGBoost version; allowed: a file Booster.save_model wrote")
    stream = io.BytesIO(model_bytes[marker + len(b"version") :])
    sizes = {b"i": 1, b"U": 1, b"I": 2, b"l": 4, b"L": 8}
    if stream.read(1) != b"[":
        raise PackagingError("the model's UBJSON version record is not an array")
    values: list[int] = []
    kind = stream.read(1)
    count = None
    if kind == b"$":
        kind = stream.read(1)
        stream.read(1)  # '#'
        count_kind = stream.read(1)
        count = int.from_bytes(stream.read(sizes[count_kind]), "big", signed=True)
    elif kind == b"#":
        count_kind = stream.read(1)
        count = int.from_bytes(stream.read(sizes[count_kind]), "big", signed=True)
        kind = stream.read(1)
    while kind in sizes and (count is None or len(values) < count):
        values.append(int.from_bytes(stream.read(sizes[kind]), "big", signed=kind != b"U"))
        if count is not None and len(values) == count:
            break
        kind = stream.read(1)
    if len(values) != 3:
        raise PackagingError("the model's UBJSON version record is not three numbers")
    return ".".join(str(value) for value in values)


def load_booster(model_bytes: bytes) -> xgb.Booster:
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(model_bytes))
    except xgb.core.XGBoostError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PackagingError(f"XGBoost {xgb.__version__} cannot load the model ({first[:160]})") from error
    return booster


def inspect_model(model_bytes: bytes, booster: xgb.Booster) -> ModelInfo:
    """Read the model's own description and refuse what a profile cannot serve exactly."""
    version = saved_version(model_bytes)
    if _version_tuple(version) > _version_tuple(xgb.__version__):
        raise PackagingError(
            f"the model was saved with XGBoost {version}, newer than the kit's {xgb.__version__} and the newest "
            f"cpu container's; allowed: a model saved with XGBoost {xgb.__version__} or older"
        )
    model = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]
    params = model["learner_model_param"]
    objective = str(model["objective"]["name"])
    gbm = model["gradient_booster"]
    if gbm["name"] != "gbtree":
        raise PackagingError(
            f"the model is a {gbm['name']} booster; allowed: gbtree (the gpu and inferentia converters take trees)"
        )
    if int(params.get("num_target", "1")) > 1:
        raise PackagingError(
            f"the model has {params['num_target']} outputs per row (multi-output); allowed: one target "
            "(multi:softprob for classes)"
        )
    types = [str(kind) for kind in model.get("feature_types", [])]
    trees = gbm["model"]["trees"]
    if "c" in types or any(tree.get("categories_nodes") for tree in trees):
        raise PackagingError(
            "the model splits on categorical features; allowed: numeric features only (every profile sends plain "
            "numbers: CSV or FP32 tensors); encode the categories as numbers and retrain"
        )
    if objective not in OBJECTIVE_KINDS:
        reason = _REFUSED_OBJECTIVES.get(objective)
        if reason is None:
            reason = "the kit's profiles are not checked for its output"
        raise PackagingError(
            f"objective {objective!r} is not served: {reason}; allowed: one of {sorted(OBJECTIVE_KINDS)}"
        )
    return ModelInfo(
        saved_with=version,
        objective=objective,
        num_feature=int(params["num_feature"]),
        num_class=int(params.get("num_class", "0")),
        feature_names=tuple(str(name) for name in model.get("feature_names", [])),
        booster=str(gbm["name"]),
    )


def read_feature_names(path: Path | None, info: ModelInfo) -> tuple[str, ...]:
    """The names in column order: from FILE (checked against the model's), the model's, or f0, f1, ..."""
    if path is None:
        return info.feature_names or tuple(f"f{index}" for index in range(info.num_feature))
    if not path.is_file():
        raise PackagingError(f"--features {path}: no such file; allowed: a text file with one name per line")
    text = path.read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    names = tuple(part.strip() for part in lines[0].split(",")) if len(lines) == 1 else tuple(lines)
    if len(names) != info.num_feature:
        raise PackagingError(f"--features {path} lists {len(names)} names; the model takes {info.num_feature} features")
    bad = [name for name in names if not name or "," in name]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if bad or duplicates:
        raise PackagingError(
            f"--features {path}: names must be unique, non-empty and without commas; found {(bad + duplicates)[:3]}"
        )
    if info.feature_names and names != info.feature_names:
        column = next(i for i, (a, b) in enumerate(zip(names, info.feature_names, strict=True)) if a != b)
        raise PackagingError(
            f"--features {path} names column {column} {names[column]!r}, the model stores "
            f"{info.feature_names[column]!r}; allowed: the model's own order"
        )
    return names


def csv_row(row: list[float]) -> str:
    """Exact: the shortest text that reads back as the same float."""
    return ",".join(repr(float(value)) for value in row)


def predictions_of(booster: xgb.Booster, rows: np.ndarray, kind: str) -> list[Any]:
    """What the client decodes per row: a float, or the list of class probabilities."""
    scored = booster.predict(xgb.DMatrix(rows))
    if kind == "class_probabilities":
        return [[float(value) for value in row] for row in scored]
    return [float(value) for value in scored.reshape(-1)]


def cpu_manifest(
    archive: bytes,
    booster: xgb.Booster,
    info: ModelInfo,
    features: tuple[str, ...],
    rows: np.ndarray,
    *,
    sample_payload: str | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The cpu archive's manifest: what every other part of the kit reads about the model."""
    listed = [[float(value) for value in row] for row in rows]
    manifest: dict[str, Any] = {
        "artifact": ARTIFACT,
        "sha256": hashlib.sha256(archive).hexdigest(),
        "model_file": MODEL_FILE,
        "xgboost_version": xgb.__version__,
        "objective": info.objective,
        "features": list(features),
        "output": {"kind": info.kind, "columns": info.columns},
        "content_type": CONTENT_TYPE,
        "sample_payload": sample_payload if sample_payload is not None else csv_row(listed[0]),
        "reference": {"rows": listed, "predictions": predictions_of(booster, rows, info.kind)},
    }
    if info.kind == "class_probabilities":
        manifest["num_class"] = info.num_class
    if source is not None:
        manifest["source"] = source
    return manifest


def container_tag() -> str:
    """The cpu container tag whose XGBoost matches the kit's (the manifest's version) in major.minor."""
    ours = _version_tuple(xgb.__version__)[:2]
    tags = [
        tag
        for tag in catalog.xgboost_image_tags()
        if _version_tuple(catalog.xgboost_image_table(tag)["xgboost_version"])[:2] == ours
    ]
    if not tags:
        raise PackagingError(
            f"no cpu container runs XGBoost {xgb.__version__} (stacks/data/xgboost_images.json); install the "
            "kit's pinned XGBoost (make setup-dev)"
        )
    return max(tags, key=lambda tag: _version_tuple(tag.replace("-", ".")))


def write_cpu(
    out_dir: Path,
    model_bytes: bytes,
    features_file: Path | None = None,
    *,
    source: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Check the model, write the cpu archive and manifest into ``out_dir``; return the archive path and manifest."""
    original = load_booster(model_bytes)
    info = inspect_model(model_bytes, original)
    features = read_feature_names(features_file, info)
    container_tag()
    # Saved as JSON by the kit's XGBoost, which the matching container runs; reloaded, so the
    # references come from the bytes that ship, and compared with the model as it was given.
    json_bytes = bytes(original.save_raw(raw_format="json"))
    shipped = load_booster(json_bytes)
    rows = probe_rows(shipped, REFERENCE_ROWS, REFERENCE_SEED)
    before, after = (booster.predict(xgb.DMatrix(rows)) for booster in (original, shipped))
    if not np.array_equal(before, after):
        raise PackagingError("the model scores differently once saved as JSON; report it with the model file")
    archive = reproducible_tar_gz({MODEL_FILE: json_bytes})
    out_dir.mkdir(parents=True, exist_ok=True)
    archive_path = out_dir / ARTIFACT
    archive_path.write_bytes(archive)
    manifest = cpu_manifest(archive, shipped, info, features, rows, source=source)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return archive_path, manifest


def _has_model_layer() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "hummingbird"))


def _source(path: Path, model_bytes: bytes) -> dict[str, Any]:
    return {
        "file": path.name,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "xgboost_version": saved_version(model_bytes),
    }


def package(
    model: Path, out_dir: Path, features_file: Path | None, profiles: tuple[str, ...] | None = None
) -> list[str]:
    """Write the profiles' artifacts (None: every one the model and the installed tools allow); return one
    line per profile, written or skipped and why. A profile asked for by name that cannot be built is an error."""
    explicit = profiles is not None
    profiles = profiles or PROFILES
    model_bytes = read_model_bytes(model)
    if explicit:  # a profile asked for that cannot serve the objective: refused before anything is written
        objective = inspect_model(model_bytes, load_booster(model_bytes)).objective
        refused = [(name, reason) for name in profiles if (reason := _refusal(name, objective)) is not None]
        if refused:
            raise PackagingError(f"{refused[0][0]}: {refused[0][1]}")
    archive_path, manifest = write_cpu(out_dir, model_bytes, features_file, source=_source(model, model_bytes))
    objective = str(manifest["objective"])
    report = [f"cpu: {archive_path} ({len(manifest['features'])} features, {objective})"]
    if "gpu" in profiles:
        from modelpack import build_triton_artifact  # xgboost only

        try:
            report.append(f"gpu: {build_triton_artifact.build(archive_path, out_dir / 'triton')}")
        except (SourceError, SystemExit) as error:  # the builder's own one-line refusal
            if explicit:
                raise PackagingError(f"gpu: {error}") from None
            report.append(f"gpu: skipped ({error})")
    if "inferentia" in profiles:
        report.append(_inferentia(archive_path, out_dir / "inf1", objective, explicit=explicit))
    return report


def _refusal(profile: str, objective: str) -> str | None:
    """Why ``profile``'s builder would refuse a model of ``objective``, asked before anything is written."""
    if profile == "gpu":
        from modelpack import build_triton_artifact  # xgboost only

        if objective in build_triton_artifact.FIL_UNSUPPORTED:
            return f"{objective} cannot be served by Triton FIL: {build_triton_artifact.FIL_UNSUPPORTED[objective]}"
    return profile_refusal(profile, objective)


def _inferentia(archive_path: Path, out_dir: Path, objective: str, *, explicit: bool) -> str:
    refused = profile_refusal("inferentia", objective)
    if refused is not None:  # not explicit: package() refuses an explicit one before writing anything
        return f"inferentia: skipped ({refused})"
    if not _has_model_layer():
        if explicit:
            raise PackagingError("inferentia needs the model-building layer (torch, hummingbird-ml): make setup-model")
        return "inferentia: skipped (the model-building layer is not installed: make setup-model)"
    # A fresh interpreter: TorchScript mangles class names on a second trace, which would change the bytes.
    command = [sys.executable, str(REPO_ROOT / "scripts" / "build_inf1_artifact.py")]
    done = subprocess.run(
        [*command, "--source", str(archive_path), "--out-dir", str(out_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"exit {done.returncode}"
        if explicit:
            raise PackagingError(f"inferentia: {reason}")
        return f"inferentia: skipped ({reason})"
    return f"inferentia: {out_dir / ARTIFACT}"


def parse_profiles(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in PROFILES]
    if unknown or "cpu" not in names:
        raise PackagingError(
            f"--profiles {text!r} is invalid; allowed: a comma-separated subset of {','.join(PROFILES)} with cpu "
            "(the other two are built from the cpu archive)"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit 0 with one line per profile, or one line on stderr and exit 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("model", type=Path, help="a booster file (JSON or UBJSON) or a training job's model.tar.gz")
    parser.add_argument("--features", type=Path, help="feature names in column order, one per line")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="output folder (default: %(default)s)")
    parser.add_argument(
        "--profiles",
        help=f"which artifacts to write, e.g. cpu,gpu (default: every one of {','.join(PROFILES)} that the model "
        "and the installed tools allow, saying why one is skipped)",
    )
    args = parser.parse_args(argv)
    try:
        profiles = parse_profiles(args.profiles) if args.profiles is not None else None
        lines = package(args.model, args.out_dir, args.features, profiles)
    except PackagingError as error:
        print(f"package_model: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
