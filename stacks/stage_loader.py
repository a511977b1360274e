"""Loading a stage: whatever a stage function does wrong becomes one SettingsError, never a traceback.

Misspelled or missing keywords raise TypeError while the stage function runs, before any settings
object exists to validate; they are caught here, around the call, and named with a did-you-mean.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import fields

from stacks.settings import (
    AutoscalingSettings,
    DataCaptureSettings,
    ExistingRuntimeEndpoint,
    RolloutSettings,
    ScheduledCapacity,
    SettingsError,
    ShadowSettings,
    StageSettings,
)

SETTINGS_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        StageSettings,
        AutoscalingSettings,
        ScheduledCapacity,
        RolloutSettings,
        DataCaptureSettings,
        ShadowSettings,
        ExistingRuntimeEndpoint,
    )
}

_UNEXPECTED = re.compile(r"(?P<cls>\w+)\.__init__\(\) got an unexpected keyword argument '(?P<keyword>\w+)'")
_MISSING = re.compile(r"(?P<cls>\w+)\.__init__\(\) missing \d+ required keyword-only arguments?: (?P<names>.+)")
_POSITIONAL = re.compile(r"(?P<cls>\w+)\.__init__\(\) takes \d+ positional arguments? but \d+ (were|was) given")


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def keyword_problem(error: TypeError) -> str:
    """A settings class called with a wrong keyword, a missing one, or positional values, as one line."""
    text = str(error)
    if match := _UNEXPECTED.fullmatch(text):
        cls = SETTINGS_CLASSES.get(match["cls"])
        if cls is not None:
            names = [item.name for item in fields(cls)]
            keyword = match["keyword"]
            return (
                f"{cls.__name__}({keyword}=...) is invalid: {cls.__name__} has no setting {keyword!r}; "
                f"{_did_you_mean(keyword, names)}allowed: {', '.join(names)}"
            )
    if (match := _MISSING.fullmatch(text)) and match["cls"] in SETTINGS_CLASSES:
        return f"{match['cls']}(...) is invalid: required setting(s) missing: {match['names']}"
    if (match := _POSITIONAL.fullmatch(text)) and match["cls"] in SETTINGS_CLASSES:
        first = fields(SETTINGS_CLASSES[match["cls"]])[0].name
        return f"{match['cls']}(...) is invalid: settings are keywords only, such as {match['cls']}({first}=...)"
    return f"the stage function raised TypeError: {text}"


def load_from(stages: Mapping[str, Callable[[], object]], name: object) -> StageSettings:
    """Call the stage function registered as ``name`` and check what it returns; SettingsError if
    the name is unknown, the function fails, or the settings are wrong or not named ``name``."""
    label = name if isinstance(name, str) else repr(name)
    factory = stages.get(name) if isinstance(name, str) else None
    if factory is None:
        hint = _did_you_mean(name, sorted(stages)) if isinstance(name, str) else ""
        raise SettingsError(
            label, [f"stage={name!r} is not defined; {hint}allowed: one of {sorted(stages)} (stacks/stages.py)"]
        )
    where = f"{getattr(factory, '__name__', 'the stage function')}() in stacks/stages.py"
    try:
        settings = factory()
    except SettingsError as error:
        problems = list(error.problems)
        if error.stage != name and not any(problem.startswith("name=") for problem in problems):
            problems.append(_name_problem(error.stage, label))
        raise SettingsError(label, problems) from None
    except TypeError as error:
        raise SettingsError(label, [keyword_problem(error)]) from None
    except Exception as error:  # a stage function is user code: report it, never a traceback
        raise SettingsError(label, [f"{where} raised {type(error).__name__}: {error}"]) from None
    if not isinstance(settings, StageSettings):
        forgot = " (a missing return?)" if settings is None else ""
        raise SettingsError(label, [f"{where} returned {settings!r}{forgot}; allowed: a StageSettings(...)"])
    if settings.name != name:
        raise SettingsError(label, [_name_problem(settings.name, label)])
    return settings


def _name_problem(stage_name: str, key: str) -> str:
    return (
        f"name={stage_name!r} is invalid: the stage is registered as {key!r} in STAGES and its stack would be "
        f"another stage's (or a stranger's); allowed: name={key!r}"
    )
