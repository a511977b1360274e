"""The load test's write-back: a measured MAX_RPS into stacks/data/measurements.json, checked against the stage
first (its settings must take measurements, on the same instance type, and still be valid with the figure)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from stacks import measurements
from stacks.settings import max_rps_is_measured
from stacks.stages import load_stage


def record_max_rps(
    stage: str,
    max_rps_per_instance: float,
    *,
    instance_type: str,
    source: str,
    path: Path | None = None,
    rows_per_request: int | None = None,
) -> dict[str, Any]:
    """Validate the measurement against the stage's settings, then write it; returns the entry written.
    MAX_RPS stays per request (SageMaker's invocations metric counts requests); ``rows_per_request`` records
    how many rows each carried when measured.

    Raises ValueError (or SettingsError) and writes nothing when the figure or the stage is wrong."""
    if isinstance(max_rps_per_instance, bool) or not math.isfinite(max_rps_per_instance) or max_rps_per_instance <= 0:
        raise ValueError(f"max_rps_per_instance={max_rps_per_instance!r} is invalid: allowed: a finite number above 0")
    if rows_per_request is not None and (isinstance(rows_per_request, bool) or rows_per_request < 1):
        raise ValueError(f"rows_per_request={rows_per_request!r} is invalid: allowed: a whole number from 1")
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
    if rows_per_request is not None:
        entry["rows_per_request"] = rows_per_request
    path = path or measurements.MEASUREMENTS_FILE
    data = measurements.read_measurements(path) | {stage: entry}
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
