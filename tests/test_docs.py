"""The docs stay true to the code: the settings table in docs/settings.md matches the settings model."""

from __future__ import annotations

import dataclasses
import re

from stacks.settings import AutoscalingSettings, DataCaptureSettings, RolloutSettings, ShadowSettings, StageSettings

from .conftest import REPO_ROOT

# --- the settings table -------------------------------------------------------------------------------------

SETTINGS_PAGE = REPO_ROOT / "docs" / "settings.md"
SETTINGS_HEADING = "## Every setting"
_ROW = re.compile(r"^\| `(?P<name>[a-z0-9_.]+)` \| (?P<default>[^|]+) \|", re.MULTILINE)


def documented_settings(text: str) -> dict[str, str]:
    start = text.index(SETTINGS_HEADING)
    end = text.find("\n## ", start)
    table = text[start : end if end != -1 else len(text)]
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
    assert documented_settings(SETTINGS_PAGE.read_text()) == _defaults()


def test_a_wrong_or_missing_setting_row_is_caught() -> None:
    text = SETTINGS_PAGE.read_text()
    assert documented_settings(text.replace("| `vpc_cidr` | `10.42.0.0/16` |", "| `vpc_cidr` | `10.0.0.0/16` |")) != (
        _defaults()
    )
    assert documented_settings(re.sub(r"^\| `log_retention_days` .*\n", "", text, flags=re.MULTILINE)) != _defaults()
