"""Measured per-instance capacity, written by the load test and read by the stages.

`stacks/data/measurements.json` maps a stage to the MAX_RPS one instance sustained within the latency
SLO, the instance type it was measured on, and where the figure came from. The stages read it, so the
next `cdk deploy` sets the autoscaling target from the measurement instead of the default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

MEASUREMENTS_FILE = Path(__file__).resolve().parent / "data" / "measurements.json"


def _read(path: Path | None) -> dict[str, Any]:
    path = path or MEASUREMENTS_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} must hold an object of stages, not {type(data).__name__}")
    return data


def measured_max_rps(stage: str, *, instance_type: str, default: float, path: Path | None = None) -> float:
    """The stage's measured MAX_RPS per instance, or ``default`` when none was measured on this type.

    A figure measured on another instance type says nothing about this one, so it is ignored."""
    entry = _read(path).get(stage)
    if entry is None:
        return default
    value = entry.get("max_rps_per_instance") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"the entry of stage {stage!r} has no number max_rps_per_instance: {entry!r}")
    if entry.get("instance_type") != instance_type:
        return default
    return float(value)


def record_max_rps(
    stage: str, max_rps_per_instance: float, *, instance_type: str, source: str, path: Path | None = None
) -> dict[str, Any]:
    """Validate the measurement against the stage's settings, then write it; returns the entry written.

    Raises ValueError (or SettingsError) and writes nothing when the figure or the stage is wrong."""
    from stacks.stages import load_stage  # local: the stages import this module

    if isinstance(max_rps_per_instance, bool) or not math.isfinite(max_rps_per_instance) or max_rps_per_instance <= 0:
        raise ValueError(f"max_rps_per_instance={max_rps_per_instance!r} is invalid: allowed: a finite number above 0")
    from stacks.settings import max_rps_is_measured

    settings = load_stage(stage)
    if not max_rps_is_measured(settings):
        raise ValueError(
            f"stage {stage!r} sets autoscaling.max_rps_per_instance={settings.autoscaling.max_rps_per_instance!r} "
            "in stacks/stages.py, so a measurement would be ignored; allowed: leave it out (None) to use measurements"
        )
    if instance_type != settings.instance_type:
        raise ValueError(
            f"instance_type={instance_type!r} is invalid: stage {stage!r} runs {settings.instance_type}; "
            "allowed: a measurement taken on the stage's own instance type"
        )
    # The same checks a hand edit would meet at synth (e.g. a target that breaks a rule).
    dataclasses.replace(
        settings, autoscaling=dataclasses.replace(settings.autoscaling, max_rps_per_instance=max_rps_per_instance)
    )
    entry = {
        "instance_type": instance_type,
        "max_rps_per_instance": round(float(max_rps_per_instance), 1),
        "source": source,
    }
    path = path or MEASUREMENTS_FILE
    data = _read(path) | {stage: entry}
    # Write a sibling file and rename it over the old one: a crash never leaves half a file.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        temporary = Path(handle.name)
        try:
            handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())  # the new content is on disk before the rename makes it the file
        except BaseException:
            handle.close()
            temporary.unlink()
            raise
    try:
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return entry
