"""The README's settings table stays in step with the settings model."""

from __future__ import annotations

import dataclasses
import re

from stacks.settings import AutoscalingSettings, DataCaptureSettings, RolloutSettings, ShadowSettings, StageSettings

from .conftest import REPO_ROOT

_ROW = re.compile(r"^\| `(?P<name>[a-z0-9_.]+)` \| (?P<default>[^|]+) \|", re.MULTILINE)


def _documented() -> dict[str, str]:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index("### Settings")
    table = text[start : text.index("\n## ", start)]
    return {match["name"]: match["default"].strip() for match in _ROW.finditer(table)}


def _defaults() -> dict[str, str]:
    found: dict[str, str] = {}
    nested = (
        (StageSettings, ""),
        (AutoscalingSettings, "autoscaling."),
        (RolloutSettings, "rollout."),
        (DataCaptureSettings, "data_capture."),
        (ShadowSettings, "shadow."),
    )
    for cls, prefix in nested:
        for field in dataclasses.fields(cls):
            if field.name in ("autoscaling", "rollout", "data_capture"):
                continue
            if field.default is dataclasses.MISSING:
                found[prefix + field.name] = "(required)"
            else:
                found[prefix + field.name] = f"`{field.default}`"
    return found


def test_every_setting_is_documented_with_its_default() -> None:
    assert _documented() == _defaults()
