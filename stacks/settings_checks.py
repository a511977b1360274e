"""How a stage's settings are checked, in the order StageSettings runs them: the declared types, then
MAX_RPS resolution, then the rules (here those on capacity, schedules, alarms, rollout and data capture; the
rest are in stacks/settings_rules.py).

The checks read the settings classes from the object they are given, so this module imports
stacks/settings.py only for the type checker.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

from stacks.measurements import MEASUREMENTS_FILE, measured_max_rps
from stacks.profiles import PROFILES
from stacks.settings_rules import (
    DEFAULT_MAX_RPS_PER_INSTANCE,
    EXECUTION_TIMEOUT_RANGE,
    LOG_RETENTION_DAYS,
    MAX_COOLDOWN_SECONDS,
    MAX_INSTANCES,
    MAX_RPS_PER_INSTANCE,
    MAX_SHARDS,
    TIMEOUT_RANGE,
    WAIT_RANGE,
    artifact_problems,
    client_probe_problems,
    count_problem,
    identity_problems,
    instance_problems,
    invalid,
    network_problems,
    shadow_problems,
)

if TYPE_CHECKING:
    from stacks.settings import DataCaptureSettings, RolloutSettings, ScheduledCapacity, StageSettings


def _type_text(hint: Any) -> str:
    """A declared type as a user writes it: 'int | None', 'tuple[ScheduledCapacity, ...]'."""
    if get_origin(hint) in (Union, types.UnionType):
        return " | ".join("None" if arg is type(None) else _type_text(arg) for arg in get_args(hint))
    if get_origin(hint) is tuple:
        return f"tuple[{_type_text(get_args(hint)[0])}, ...]"
    return str(hint.__name__)


def type_problems(settings: StageSettings) -> Iterator[str]:
    """Wrong types first: a string where a number belongs would make the rules below meaningless."""
    cls: type = type(settings)  # the settings classes come from the object: no runtime import of stacks.settings
    hints = _hints(cls)
    for item in fields(settings):
        yield from _value_problems(item.name, getattr(settings, item.name), hints[item.name])


@cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a settings class (the annotations are strings here)."""
    return get_type_hints(cls)


def _value_problems(name: str, value: Any, hint: Any) -> Iterator[str]:
    """Check ``value`` against the declared type ``hint``, walking nested settings and tuples.

    The settings use only bool, int, float, str, settings classes, ``X | None`` and ``tuple[X, ...]``;
    a field of any other type fails loudly here, so this walker grows with the settings."""
    expected = f"expected {_type_text(hint)}"
    if get_origin(hint) in (Union, types.UnionType):
        (inner,) = [arg for arg in get_args(hint) if arg is not type(None)]
        if value is not None:
            yield from (
                _value_problems(name, value, inner) if _is_type(value, inner) else [invalid(name, value, expected)]
            )
    elif get_origin(hint) is tuple:
        yield from _tuple_problems(name, value, hint)
    elif not _is_type(value, hint):
        yield invalid(name, value, expected)
    elif isinstance(hint, type) and is_dataclass(hint):
        hints = _hints(hint)
        for item in fields(hint):
            yield from _value_problems(f"{name}.{item.name}", getattr(value, item.name), hints[item.name])
    elif isinstance(value, float) and not math.isfinite(value):
        yield invalid(name, value, "allowed: a finite number")


def _is_type(value: Any, hint: Any) -> bool:
    if is_dataclass(hint):
        return type(value) is hint
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float, str):
        # bool is an int to Python, never to a setting; an int is a fine float.
        allowed = (int, float) if hint is float else hint
        return isinstance(value, allowed) and not isinstance(value, bool)
    if get_origin(hint) is tuple:
        return isinstance(value, tuple)
    raise TypeError(f"settings field type {hint!r} is not handled by the settings type check")


def _tuple_problems(name: str, value: Any, hint: Any) -> Iterator[str]:
    item_hint = get_args(hint)[0]
    if not isinstance(value, tuple):
        if _is_type(value, item_hint) if get_origin(item_hint) is None else False:
            why = f"a single value needs a trailing comma: ({value!r},)"
        elif isinstance(value, list):
            why = "a tuple in parentheses, not a list in brackets"
        else:
            why = f"a tuple of {_type_text(item_hint)}, () for none"
        yield invalid(name, value, f"expected {_type_text(hint)}: {why}")
        return
    for index, item in enumerate(value):
        yield from _value_problems(f"{name}[{index}]", item, item_hint)


def resolve_max_rps(s: StageSettings) -> Iterator[str]:
    """Fill autoscaling.max_rps_per_instance=None with this stage's own measurement on its instance type,
    else the documented default; the value records which stage and type it was looked up for, so a copy
    of these settings under another name or type looks its own up again."""
    scaling = s.autoscaling
    looked_up_for = getattr(scaling, "_measured_for", None)
    if scaling.max_rps_per_instance is not None and looked_up_for in (None, (s.name, s.instance_type)):
        return
    try:
        max_rps = measured_max_rps(s.name, instance_type=s.instance_type, default=DEFAULT_MAX_RPS_PER_INSTANCE)
    except ValueError as error:
        yield invalid("autoscaling.max_rps_per_instance", None, f"reading {MEASUREMENTS_FILE.name}: {error}")
        return
    resolved = dataclasses.replace(scaling, max_rps_per_instance=max_rps)
    object.__setattr__(resolved, "_measured_for", (s.name, s.instance_type))
    object.__setattr__(s, "autoscaling", resolved)


def max_rps_is_measured(s: StageSettings) -> bool:
    """Whether the stage takes its MAX_RPS from the measurements (max_rps_per_instance=None)."""
    return getattr(s.autoscaling, "_measured_for", None) is not None


def rule_problems(s: StageSettings) -> Iterator[str]:
    """Every rule, in the order a stage's problems are listed."""
    yield from identity_problems(s)
    yield from network_problems(s)
    yield from instance_problems(s)
    yield from _capacity_problems(s)
    yield from _schedule_problems(s)
    yield from artifact_problems(s)
    if not TIMEOUT_RANGE[0] <= s.container_startup_timeout_seconds <= TIMEOUT_RANGE[1]:
        yield invalid("container_startup_timeout_seconds", s.container_startup_timeout_seconds, "allowed: 60 to 3600")
    if not TIMEOUT_RANGE[0] <= s.model_download_timeout_seconds <= TIMEOUT_RANGE[1]:
        yield invalid("model_download_timeout_seconds", s.model_download_timeout_seconds, "allowed: 60 to 3600")
    yield from _monitoring_problems(s)
    yield from _rollout_problems(s)
    yield from _data_capture_problems(s.data_capture)
    yield from client_probe_problems(s)
    yield from shadow_problems(s)
    if s.log_retention_days not in LOG_RETENTION_DAYS:
        yield invalid("log_retention_days", s.log_retention_days, f"allowed: one of {list(LOG_RETENTION_DAYS)}")


def _capacity_problems(s: StageSettings) -> Iterator[str]:
    scaling = s.autoscaling
    if not 1 <= s.shards <= MAX_SHARDS:
        yield invalid(
            "shards",
            s.shards,
            f"allowed: 1 to {MAX_SHARDS} (the kit's bound; each shard runs up to {MAX_INSTANCES} instances)",
        )
    too_many = count_problem("initial_instance_count", s.initial_instance_count, 1)
    if too_many is not None:
        yield too_many
    if s.high_availability and s.initial_instance_count < 2:
        yield invalid(
            "initial_instance_count",
            s.initial_instance_count,
            "high_availability needs instances in 2 AZs; allowed: 2 or more, or high_availability=False",
        )
    if not 0 < scaling.safety_factor <= 1:
        yield invalid("autoscaling.safety_factor", scaling.safety_factor, "allowed: greater than 0 and at most 1")
    max_rps = scaling.max_rps_per_instance
    if max_rps is not None and not 0 < max_rps <= MAX_RPS_PER_INSTANCE:
        source = f" (measured, {MEASUREMENTS_FILE.name})" if max_rps_is_measured(s) else ""
        yield invalid(
            "autoscaling.max_rps_per_instance",
            max_rps,
            f"allowed: greater than 0, at most {MAX_RPS_PER_INSTANCE:.0f}{source}",
        )
    if not scaling.enabled:
        if scaling.concurrency_target_per_instance is not None:
            yield invalid(
                "autoscaling.concurrency_target_per_instance",
                scaling.concurrency_target_per_instance,
                "the policy needs the scalable target; allowed: None or autoscaling.enabled=True",
            )
        return
    for name in ("min_capacity", "max_capacity"):
        problem = count_problem(f"autoscaling.{name}", getattr(scaling, name), 1)
        if problem is not None:
            yield problem
    if s.high_availability and scaling.min_capacity < 2:
        yield invalid(
            "autoscaling.min_capacity",
            scaling.min_capacity,
            "high_availability needs instances in 2 AZs; allowed: 2 or more, or high_availability=False",
        )
    if scaling.max_capacity < scaling.min_capacity:
        yield invalid(
            "autoscaling.max_capacity",
            scaling.max_capacity,
            f"allowed: at least autoscaling.min_capacity ({scaling.min_capacity})",
        )
    elif not scaling.min_capacity <= s.initial_instance_count <= scaling.max_capacity:
        yield invalid(
            "initial_instance_count",
            s.initial_instance_count,
            "allowed: within [autoscaling.min_capacity, autoscaling.max_capacity] = "
            f"[{scaling.min_capacity}, {scaling.max_capacity}]",
        )
    for name in ("scale_in_cooldown_seconds", "scale_out_cooldown_seconds"):
        value = getattr(scaling, name)
        if not 0 <= value <= MAX_COOLDOWN_SECONDS:
            yield invalid(
                f"autoscaling.{name}", value, f"allowed: 0 to {MAX_COOLDOWN_SECONDS} (the kit's bound: one day)"
            )
    target = scaling.concurrency_target_per_instance
    if target is not None and not 0 < target <= MAX_RPS_PER_INSTANCE:
        yield invalid(
            "autoscaling.concurrency_target_per_instance",
            target,
            f"allowed: greater than 0, at most {MAX_RPS_PER_INSTANCE:.0f}, or None",
        )


# ASCII only, matched whole (re.fullmatch): "\d" would take any Unicode digit.
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_SCHEDULED_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}", re.ASCII)
_CRON = re.compile(r"cron\((?P<fields>[^()]*)\)", re.ASCII)
_CRON_HINT = "allowed: 'cron(minutes hours day-of-month month day-of-week year)' such as 'cron(0 17 * * ? *)'"
# (field, lowest, highest, names standing for lowest, lowest + 1, ...)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day-of-week", 1, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
    ("year", 1970, 2199, ()),
)


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if _DIGITS.fullmatch(text):
        return int(text)
    return names.index(text.upper()) + low if text.isascii() and text.upper() in names else None


def _cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not an Application Auto Scaling cron expression, or None if it is one."""
    match = _CRON.fullmatch(cron)
    if match is None:
        return "not of the form cron(...)"
    parts = match["fields"].split(" ")
    if len(parts) != len(_CRON_FIELDS):
        return f"{len(parts)} fields instead of 6"
    for text, (field_name, low, high, names) in zip(parts, _CRON_FIELDS, strict=True):
        if text == "?":
            if field_name not in ("day-of-month", "day-of-week"):
                return f"'?' is only for day-of-month or day-of-week, not {field_name}"
            continue
        if field_name == "day-of-month" and re.fullmatch(r"L|LW|([1-9]|[12][0-9]|3[01])W", text):
            continue
        if field_name == "day-of-week" and re.fullmatch(r"[1-7]L|[1-7]#[1-5]", text):
            continue
        for item in text.split(","):
            base, slash, step = item.partition("/")
            if slash and not (_DIGITS.fullmatch(step) and int(step) >= 1):
                return f"{field_name} {text!r} has a bad increment"
            if base == "*":
                continue
            values = [_cron_value(bound, low, names) for bound in base.split("-")]
            if len(values) > 2 or any(value is None or not low <= value <= high for value in values):
                return f"{field_name} {text!r} is not within {low}-{high}"
    if (parts[2] == "?") == (parts[4] == "?"):
        return "exactly one of day-of-month and day-of-week must be '?'"
    return None


def _schedule_problems(s: StageSettings) -> Iterator[str]:
    """The time zone, the scheduled actions and the latency step policy of autoscaling."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    scaling = s.autoscaling
    try:
        ZoneInfo(scaling.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        yield invalid(
            "autoscaling.time_zone",
            scaling.time_zone,
            "allowed: an IANA time zone name such as 'UTC' or 'America/New_York'",
        )
    if not scaling.enabled:
        if scaling.scheduled:
            yield invalid(
                "autoscaling.scheduled",
                scaling.scheduled,
                "scheduled actions need the scalable target; allowed: () or autoscaling.enabled=True",
            )
        if scaling.latency_step_scaling:
            yield invalid(
                "autoscaling.latency_step_scaling",
                scaling.latency_step_scaling,
                "the policy needs the scalable target; allowed: False or autoscaling.enabled=True",
            )
        return
    seen: dict[str, int] = {}
    for index, action in enumerate(scaling.scheduled):
        yield from _scheduled_action_problems(s, f"autoscaling.scheduled[{index}]", action, seen, index)


def _scheduled_action_problems(
    s: StageSettings, prefix: str, action: ScheduledCapacity, seen: dict[str, int], index: int
) -> Iterator[str]:
    scaling = s.autoscaling
    if not _SCHEDULED_NAME.fullmatch(action.name):
        yield invalid(
            f"{prefix}.name",
            action.name,
            "allowed: letters, digits, '-' and '_', starting with a letter, at most 64 characters",
        )
    elif action.name in seen:
        yield invalid(
            f"{prefix}.name",
            action.name,
            f"already used by autoscaling.scheduled[{seen[action.name]}]; allowed: a name used once in the stage",
        )
    else:
        seen[action.name] = index
    reason = _cron_problem(action.cron)
    if reason is not None:
        yield invalid(f"{prefix}.cron", action.cron, f"{reason}; {_CRON_HINT}")
    low, high = action.min_capacity, action.max_capacity
    for name, value in (("min_capacity", low), ("max_capacity", high)):
        if value is not None and value > MAX_INSTANCES:
            yield invalid(
                f"{prefix}.{name}", value, f"allowed: at most {MAX_INSTANCES} (the kit's bound on instance counts)"
            )
            return
    if low is None and high is None:
        yield invalid(f"{prefix}.min_capacity", low, "allowed: a min_capacity, a max_capacity or both")
    if low is not None:
        if s.high_availability and low < 2:
            yield invalid(
                f"{prefix}.min_capacity",
                low,
                "high_availability needs instances in 2 AZs; allowed: 2 or more, or high_availability=False",
            )
        elif low < 1:
            yield invalid(f"{prefix}.min_capacity", low, "allowed: 1 or more")
        elif high is not None and low > high:
            yield invalid(f"{prefix}.min_capacity", low, f"allowed: at most this action's max_capacity ({high})")
        elif high is None and low > scaling.max_capacity:
            yield invalid(
                f"{prefix}.min_capacity",
                low,
                f"the action keeps the maximum at autoscaling.max_capacity; allowed: at most "
                f"{scaling.max_capacity}, or set this action's max_capacity",
            )
    if high is not None:
        if high < 1:
            yield invalid(f"{prefix}.max_capacity", high, "allowed: 1 or more")
        elif low is None and high < scaling.min_capacity:
            yield invalid(
                f"{prefix}.max_capacity",
                high,
                f"the action keeps the minimum at autoscaling.min_capacity; allowed: at least "
                f"{scaling.min_capacity}, or set this action's min_capacity",
            )


def _monitoring_problems(s: StageSettings) -> Iterator[str]:
    if not 0 < s.latency_slo_ms <= 60_000:
        yield invalid("latency_slo_ms", s.latency_slo_ms, "allowed: greater than 0, at most 60000 (the invoke timeout)")
    if not 0 < s.error_rate_alarm < 1:
        yield invalid("error_rate_alarm", s.error_rate_alarm, "allowed: a share between 0 and 1, such as 0.01")
    # CloudWatch evaluates at most one day of one-minute periods.
    if not 1 <= s.max_capacity_alarm_minutes <= 1440:
        yield invalid("max_capacity_alarm_minutes", s.max_capacity_alarm_minutes, "allowed: 1 to 1440")


TRAFFIC_SHIFTING = ("CANARY", "LINEAR", "ALL_AT_ONCE")
# SageMaker's bounds: canary size at most 50% of the fleet, linear steps 10-50%.
_STEP_PERCENT = {"CANARY": (1, 50), "LINEAR": (10, 50), "ALL_AT_ONCE": (1, 100)}
# The rollback alarms evaluate two one-minute datapoints; a shorter bake could shift before they can fire.
MIN_BAKE_WITH_ROLLBACK_SECONDS = 120
ROLLOUT_STRATEGIES = ("blue_green", "rolling")
# A rolling batch "must be between 5% to 50% of the variant's total instance count" (RollingUpdatePolicy,
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_RollingUpdatePolicy.html). Its rollback batch has no
# stated bound but CapacitySize's minimum of 1; absent, it is 100%: the whole old fleet at once.
ROLLING_BATCH_PERCENT = (5, 50)
ROLLBACK_BATCH_PERCENT = (5, 100)


def rollout_steps(rollout: RolloutSettings) -> int:
    """Steps of an update, each followed by a baking period of wait_interval_seconds: traffic-shifting steps of a
    blue/green update, batches of a rolling one."""
    if rollout.strategy == "rolling":
        return -(-100 // rollout.rolling_batch_percent)
    if rollout.traffic_shifting == "LINEAR":
        return -(-100 // rollout.step_percent)
    return 2 if rollout.traffic_shifting == "CANARY" else 1


def rollback_batch_percent(rollout: RolloutSettings) -> int:
    """The share of the instances a rolling rollback brings back per step."""
    chosen = rollout.rolling_rollback_batch_percent
    return rollout.rolling_batch_percent if chosen is None else chosen


def update_surge_instances(rollout: RolloutSettings, instances: int) -> int:
    """The most instances an update of one endpoint of ``instances`` runs beside them: the whole fleet again for
    blue/green (SageMaker starts the new fleet before shifting traffic), one batch for a rolling update (or one
    rollback batch, if larger), rounded up to whole instances. Shards update one at a time (docs/safe-updates.md),
    so this is also a stage's surge."""
    if rollout.strategy != "rolling":
        return instances
    share = max(rollout.rolling_batch_percent, rollback_batch_percent(rollout))
    return max(1, -(-instances * share // 100)) if instances > 0 else 0


def _rollout_problems(s: StageSettings) -> Iterator[str]:
    rollout = s.rollout
    if rollout.strategy not in ROLLOUT_STRATEGIES:
        yield invalid("rollout.strategy", rollout.strategy, f"allowed: one of {list(ROLLOUT_STRATEGIES)}")
        return
    if rollout.traffic_shifting not in TRAFFIC_SHIFTING:
        yield invalid("rollout.traffic_shifting", rollout.traffic_shifting, f"allowed: one of {list(TRAFFIC_SHIFTING)}")
        return
    low, high = _STEP_PERCENT[rollout.traffic_shifting]
    if not low <= rollout.step_percent <= high:
        yield invalid(
            "rollout.step_percent",
            rollout.step_percent,
            f"a {rollout.traffic_shifting} step is a share of the variant's capacity; allowed: {low} to {high}",
        )
        return
    batches = list(_rolling_batch_problems(rollout))
    yield from batches
    if rollout.strategy == "rolling":
        yield from _rolling_exclusions(s)
    if batches:
        return
    yield from _rollout_wait_problems(rollout)


def _rolling_batch_problems(rollout: RolloutSettings) -> Iterator[str]:
    low, high = ROLLING_BATCH_PERCENT
    if not low <= rollout.rolling_batch_percent <= high:
        yield invalid(
            "rollout.rolling_batch_percent",
            rollout.rolling_batch_percent,
            f"a rolling batch is a share of the variant's instances; allowed: {low} to {high} (SageMaker's bounds)",
        )
    low, high = ROLLBACK_BATCH_PERCENT
    rollback = rollout.rolling_rollback_batch_percent
    if rollback is not None and not low <= rollback <= high:
        yield invalid(
            "rollout.rolling_rollback_batch_percent",
            rollback,
            f"allowed: {low} to {high} ({high}: the whole old fleet at once), or None (rolling_batch_percent)",
        )


def _rolling_exclusions(s: StageSettings) -> Iterator[str]:
    """What SageMaker's deployment guardrails exclude from rolling deployments
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html): Inf1 endpoints (no
    guardrails at all: an update falls back to blue/green, all at once), serverless endpoints (the kit has none)
    and multi-variant endpoints, which an endpoint config with a shadow variant is."""
    if s.profile in PROFILES and not s.serving.guardrails:
        yield invalid(
            "rollout.strategy",
            s.rollout.strategy,
            f"the {s.profile} profile's {s.instance_type} endpoints cannot use SageMaker's deployment guardrails (an "
            "update falls back to blue/green, all at once); allowed: 'blue_green'",
        )
    if s.shadow is not None:
        yield invalid(
            "rollout.strategy",
            s.rollout.strategy,
            "SageMaker's rolling deployments exclude multi-variant endpoints, and a shadow variant is a second "
            "variant; allowed: 'blue_green' with a shadow, or shadow=None",
        )


def _rollout_wait_problems(rollout: RolloutSettings) -> Iterator[str]:
    low_wait = MIN_BAKE_WITH_ROLLBACK_SECONDS if rollout.auto_rollback else WAIT_RANGE[0]
    waits_ok = True
    if not low_wait <= rollout.wait_interval_seconds <= WAIT_RANGE[1]:
        why = " (the rollback alarms need two one-minute datapoints per step)" if rollout.auto_rollback else ""
        yield invalid(
            "rollout.wait_interval_seconds",
            rollout.wait_interval_seconds,
            f"allowed: {low_wait} to {WAIT_RANGE[1]}{why}",
        )
        waits_ok = False
    if not WAIT_RANGE[0] <= rollout.termination_wait_seconds <= WAIT_RANGE[1]:
        yield invalid(
            "rollout.termination_wait_seconds",
            rollout.termination_wait_seconds,
            f"allowed: {WAIT_RANGE[0]} to {WAIT_RANGE[1]}",
        )
        waits_ok = False
    low, high = EXECUTION_TIMEOUT_RANGE
    timeout = rollout.max_execution_timeout_seconds
    steps = rollout_steps(rollout)
    if rollout.strategy == "rolling":
        # A rolling update has no termination wait: each batch's old instances go once its bake passed.
        waiting = steps * rollout.wait_interval_seconds
        how = f"the rollout waits {waiting} s ({steps} bakes of wait_interval_seconds, one per rolling batch)"
        shorter = "shorter bakes or larger batches"
    else:
        waiting = steps * rollout.wait_interval_seconds + rollout.termination_wait_seconds
        how = f"the rollout waits {waiting} s ({steps} bakes of wait_interval_seconds plus termination_wait_seconds)"
        shorter = "shorter bakes or termination wait"
    if not low <= timeout <= high:
        yield invalid("rollout.max_execution_timeout_seconds", timeout, f"allowed: {low} to {high}")
    elif not waits_ok:
        return  # the waiting is already reported as out of range
    elif waiting >= high:
        yield invalid(
            "rollout.wait_interval_seconds",
            rollout.wait_interval_seconds,
            f"{how}, and SageMaker stops a rollout after at most {high} s; allowed: {shorter}, so that the waiting "
            f"stays under {high}",
        )
    elif timeout <= waiting:
        yield invalid(
            "rollout.max_execution_timeout_seconds",
            timeout,
            f"{how}; allowed: more than {waiting}, at most {high}",
        )


def _data_capture_problems(capture: DataCaptureSettings) -> Iterator[str]:
    if not 1 <= capture.sampling_percent <= 100:
        yield invalid("data_capture.sampling_percent", capture.sampling_percent, "allowed: 1 to 100")
    if not 1 <= capture.retention_days <= 3650:
        yield invalid("data_capture.retention_days", capture.retention_days, "allowed: 1 to 3650")
