"""Checks a model artifact before synth turns it into an asset, so a broken one never deploys."""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from stacks.manifest_check import ManifestCheckError, check_manifest


class ArtifactError(ValueError):
    """The artifact or its manifest cannot be served; the message says why."""


@dataclass(frozen=True)
class ModelArtifact:
    """A checked ``model.tar.gz`` and the manifest written beside it by ``scripts/train_model.py``."""

    path: Path
    model_file: str
    xgboost_version: str
    feature_count: int
    sha256: str
    manifest: dict[str, Any]


def manifest_path(artifact: Path) -> Path:
    """``model.tar.gz`` -> ``model-manifest.json``."""
    stem = artifact.name.removesuffix(".gz").removesuffix(".tar")
    return artifact.with_name(f"{stem}-manifest.json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _members(path: Path) -> list[tarfile.TarInfo]:
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = archive.getmembers()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ArtifactError(f"is not a gzip-compressed tar archive ({error})") from error
    seen: set[PurePosixPath] = set()
    for member in members:
        name = member.name
        if name.startswith("/") or ".." in Path(name).parts:
            raise ArtifactError(f"holds an unsafe path {name!r}")
        if not (member.isfile() or member.isdir()):
            raise ArtifactError(f"holds {name!r}, which is not a regular file")
        if PurePosixPath(name) in seen:
            # Unpacked, the last copy wins: the model checked and the model served could differ.
            raise ArtifactError(f"holds {name!r} more than once; allowed: each file once")
        seen.add(PurePosixPath(name))
    return members


def _read_members(path: Path, names: set[str]) -> dict[str, bytes]:
    """The bytes of the named regular files, in one pass that stops once it has them all (the cpu model is
    the archive's first file); nothing is written to disk."""
    found: dict[str, bytes] = {}
    with tarfile.open(path, "r|gz") as archive:
        for member in archive:
            if member.name in names and member.isfile():
                extracted = archive.extractfile(member)
                if extracted is not None:
                    found[member.name] = extracted.read()
                if len(found) == len(names):
                    break
    return found


def _check_model(path: Path, members: list[tarfile.TarInfo], manifest: dict[str, Any], model_file: str) -> None:
    """The model against its manifest: features, objective, classes (stacks/manifest_check.py)."""
    # The Triton config sits in the model's folder; the other names cannot be members of other layouts.
    wanted = {model_file, f"{model_file.split('/')[0]}/config.pbtxt"}
    files = _read_members(path, wanted & {member.name for member in members})
    try:
        check_manifest(manifest, model_file, files.get)
    except ManifestCheckError as error:
        raise ArtifactError(str(error)) from error


def _model_file(members: list[tarfile.TarInfo], named: str | None, *, root_file_first: bool) -> str:
    """The first file at the root (the XGBoost container's rule), else the manifest's ``model_file``
    (Triton's model repository, Neo's model.pth)."""
    files = [member for member in members if member.isfile()]
    if not files:
        raise ArtifactError("holds no model file")
    if not root_file_first:
        if named is None:
            raise ArtifactError("has a manifest without model_file")
        if not any(member.name == named and member.size > 0 for member in files):
            raise ArtifactError(f"does not hold the non-empty model file {named!r} its manifest names")
        return named
    # The built-in XGBoost container loads the first file it finds at the archive root.
    first = files[0]
    if "/" in first.name.strip("./") or first.size == 0:
        raise ArtifactError(f"must start with a non-empty model file at its root, not {first.name!r}")
    return first.name


_JSON_NAMES = {str: "string", list: "array", dict: "object"}


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ArtifactError(
            f"has no manifest {path.name} beside it (scripts/train_model.py writes one; it records "
            "the XGBoost version the model was saved with)"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ArtifactError(f"has a manifest {path.name} that is not valid JSON ({error})") from error
    if not isinstance(manifest, dict):
        raise ArtifactError(f"has a manifest {path.name} that is not a JSON object")
    missing = [key for key in ("sha256", "xgboost_version", "features") if key not in manifest]
    if missing:
        raise ArtifactError(f"has a manifest {path.name} without {', '.join(missing)}")
    # The shape the checks downstream read; anything else is a broken manifest, not a crash.
    shapes = {"sha256": str, "xgboost_version": str, "features": list, "model_file": str, "triton": dict, "neo": dict}
    for key, kind in shapes.items():
        if key in manifest and not isinstance(manifest[key], kind):
            raise ArtifactError(f"has a manifest {path.name} whose {key} is not a JSON {_JSON_NAMES[kind]}")
    return manifest


def inspect_artifact(path: Path, *, root_file_first: bool = True) -> ModelArtifact:
    """Open the archive and its manifest; raise ArtifactError if the container could not serve it or the manifest
    does not describe the model in it (feature count, objective, classes: stacks/manifest_check.py).

    ``root_file_first``: the built-in XGBoost container's layout (it loads the first file at the root)."""
    if path.is_dir():
        raise ArtifactError("is a folder; allowed: the path of a model .tar.gz file")
    if not path.is_file():
        raise ArtifactError("does not exist (run: python scripts/train_model.py)")
    members = _members(path)
    manifest = _read_manifest(manifest_path(path))
    model_file = _model_file(members, manifest.get("model_file"), root_file_first=root_file_first)
    digest = _sha256(path)
    if manifest["sha256"] != digest:
        raise ArtifactError(
            f"does not match its manifest (sha256 {digest[:12]}..., manifest says "
            f"{str(manifest['sha256'])[:12]}...); rebuild both with scripts/train_model.py"
        )
    _check_model(path, members, manifest, model_file)
    return ModelArtifact(
        path=path,
        model_file=model_file,
        xgboost_version=str(manifest["xgboost_version"]),
        feature_count=len(manifest["features"]),
        sha256=digest,
        manifest=manifest,
    )
