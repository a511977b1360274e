"""A day's traffic for the simulation: the request rate of every second, from the built-in curve or a CSV file.

A curve is a list of (time of day, value) points, linear between them and wrapping at midnight; a value is a share
of the peak (the built-in curve, or a CSV with a `fraction` column) or requests per second (a CSV with `rps`).
Times are local to the stage's autoscaling.time_zone, the zone its scheduled actions' crons run in.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from capacity.queueing import Floats

DAY_SECONDS = 86_400

# US ad traffic, as a share of the day's peak, by the hour (local time): a night trough at 30% (the capacity
# plan's default off-peak share), a daytime plateau at 55%, and prime time: in the ten minutes from 19:50 the rate
# climbs from 55% to the peak (1.8x) as the evening's programmes start, holds until 22:00, then eases off. A shape
# to plan with, not a measurement: replace it with your own day (--curve-csv), e.g. CloudWatch's Invocations per
# minute summed over the shards.
EVENING_RAMP: tuple[tuple[float, float], ...] = (
    (0.0, 0.55), (2.0, 0.38), (4.0, 0.30), (6.0, 0.33), (8.0, 0.50), (10.0, 0.55), (17.0, 0.55),
    (19 + 50 / 60, 0.55), (20.0, 1.0), (22.0, 1.0), (23.0, 0.80), (24.0, 0.55),
)  # fmt: skip
CURVES = {"evening": EVENING_RAMP}


class CurveError(ValueError):
    """A curve file or point that cannot be read; the message says which and what is allowed."""


def per_second(points: list[tuple[float, float]] | tuple[tuple[float, float], ...]) -> Floats:
    """The value at every second of the day, linear between (hour, value) points, wrapping at midnight."""
    ordered = sorted(points)
    hours = [hour for hour, _ in ordered]
    values = [value for _, value in ordered]
    # Wrap: the last point before midnight joins the first after it.
    xs = np.array([hours[-1] - 24, *hours, hours[0] + 24]) * 3600
    ys = np.array([values[-1], *values, values[0]])
    return np.asarray(np.interp(np.arange(DAY_SECONDS) + 0.5, xs, ys), dtype=np.float64)


def _hour(text: str, where: str) -> float:
    """'HH:MM', 'HH:MM:SS' or seconds since midnight, as hours."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [int(part) for part in text.split(":")]
            if len(parts) not in (2, 3) or not (0 <= parts[0] <= 24 and all(0 <= p < 60 for p in parts[1:])):
                raise ValueError
            hour = parts[0] + parts[1] / 60 + (parts[2] / 3600 if len(parts) == 3 else 0)
        else:
            hour = float(text) / 3600
    except ValueError:
        raise CurveError(f"{where}: time {text!r}; allowed: HH:MM, HH:MM:SS or seconds since midnight") from None
    if not 0 <= hour <= 24:
        raise CurveError(f"{where}: time {text!r}; allowed: within the day (00:00 to 24:00)")
    return hour


def read_curve(path: Path, peak_rps: float | None) -> tuple[Floats, float]:
    """A CSV curve with a header `time,rps` (requests per second) or `time,fraction` (of ``peak_rps``):
    the rate of every second and the curve's peak. CurveError names the file, the line and what is allowed."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise CurveError(f"--curve-csv {path}: cannot read it ({error.strerror})") from None
    if not rows or [cell.strip().lower() for cell in rows[0]] not in (["time", "rps"], ["time", "fraction"]):
        raise CurveError(f"--curve-csv {path}: the header must be 'time,rps' or 'time,fraction'")
    kind = rows[0][1].strip().lower()
    if kind == "fraction" and peak_rps is None:
        raise CurveError(f"--curve-csv {path}: a 'fraction' curve needs --peak-rps")
    points = []
    for number, row in enumerate(rows[1:], start=2):
        where = f"--curve-csv {path} line {number}"
        if len(row) != 2:
            raise CurveError(f"{where}: {len(row)} fields; allowed: 2 (time and {kind})")
        try:
            value = float(row[1])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise CurveError(f"{where}: {kind} {row[1].strip()!r}; allowed: a number, 0 or more")
        points.append((_hour(row[0], where), value))
    if len(points) < 2 or max(value for _, value in points) <= 0:
        raise CurveError(f"--curve-csv {path}: allowed: at least 2 points and a peak above 0")
    curve = per_second(points)
    if kind == "fraction":
        assert peak_rps is not None
        curve = curve * peak_rps
    return curve, float(curve.max())


def builtin(name: str, peak_rps: float) -> Floats:
    """The built-in curve ``name`` scaled to ``peak_rps``."""
    return per_second(CURVES[name]) * peak_rps
