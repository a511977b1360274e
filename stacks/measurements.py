"""Measured per-instance capacity, read by the stages (the load test writes it: loadgen/write_back.py).

`stacks/data/measurements.json` maps a stage to the MAX_RPS one instance sustained within the latency
SLO, the instance type it was measured on, and where the figure came from. The stages read it, so the
next `cdk deploy` sets the autoscaling target from the measurement instead of the default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MEASUREMENTS_FILE = Path(__file__).resolve().parent / "data" / "measurements.json"


def read_measurements(path: Path | None) -> dict[str, Any]:
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
    entry = read_measurements(path).get(stage)
    if entry is None:
        return default
    value = entry.get("max_rps_per_instance") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"the entry of stage {stage!r} has no number max_rps_per_instance: {entry!r}")
    if entry.get("instance_type") != instance_type:
        return default
    return float(value)
