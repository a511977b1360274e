"""Property tests (hypothesis): any settings tree is either a valid stage or a SettingsError, never
another exception; and valid trees synthesize. Derandomized, so the suite is deterministic."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacks import stages
from stacks.settings import (
    AutoscalingSettings,
    DataCaptureSettings,
    RolloutSettings,
    ScheduledCapacity,
    SettingsError,
    ShadowSettings,
    StageSettings,
)
from stacks.stage_loader import load_from

from .conftest import synthesize

# Hypothesis explores hundreds of settings trees: make test runs it, make test-quick leaves it out.
pytestmark = pytest.mark.slow

DEV = stages.dev()  # built once: the base every generated tree changes
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Strings a careful user might write, and the tricky ones: trailing newlines, non-ASCII digits, empty.
TRICKY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "dev\n",
        "us-east-1",
        "us-east-1\n",
        "us-east-\uff11",
        "us-east-1a",
        "us-west-2b",
        "\u0661\u0662",
        "ml.c5.xlarge",
        "ml.c5.xlarg",
        "ml.trn1.2xlarge",
        "ml.t2.medium",
        "vpc-0a1b2c3d4e5f67890",
        "10.42.0.0/16",
        "10.42.0.1/16",
        "8.8.8.0/24",
        "::/0",
        "cron(0 17 * * ? *)",
        "cron(0 17 * * ? *)\n",
        "America/New_York",
        "UTC\n",
        "model_artifacts",
        "model_artifacts/model.tar.gz",
        "model_artifacts/nope.tar.gz",
        "/etc/passwd",
        "a\x00b",
        "CANARY",
        "LINEAR",
        "3.2-0",
        "gpu",
    ]
)
NUMBERS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-2, max_value=5000)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, 2, 4, 0.5, 1e-300, 1e308, -0.0])
)
SCALARS = st.none() | st.booleans() | NUMBERS | TRICKY_TEXT | st.text(max_size=12)
WRONG_SHAPES = st.dictionaries(st.text(max_size=5), SCALARS, max_size=2) | st.lists(SCALARS, max_size=3)


def scheduled_actions() -> st.SearchStrategy[Any]:
    action = st.builds(
        ScheduledCapacity,
        name=TRICKY_TEXT | SCALARS,
        cron=TRICKY_TEXT | SCALARS,
        min_capacity=SCALARS,
        max_capacity=SCALARS,
    )
    return st.tuples() | st.lists(action | SCALARS, max_size=3).map(tuple) | action | WRONG_SHAPES


def any_value_for(cls: type, name: str) -> st.SearchStrategy[Any]:
    """A value for field ``name`` of settings class ``cls``: right type or not, sane or not."""
    if (cls, name) == (AutoscalingSettings, "scheduled"):
        return scheduled_actions()
    nested = {"autoscaling": AutoscalingSettings, "rollout": RolloutSettings, "data_capture": DataCaptureSettings}
    if cls is StageSettings and name in nested:
        return settings_objects(nested[name]) | SCALARS | WRONG_SHAPES
    if cls is StageSettings and name == "shadow":
        return st.none() | settings_objects(ShadowSettings) | SCALARS
    if name in ("client_azs", "client_cidrs"):
        return st.lists(TRICKY_TEXT | SCALARS, max_size=3).map(tuple) | SCALARS | WRONG_SHAPES
    return SCALARS | WRONG_SHAPES


def settings_objects(cls: type) -> st.SearchStrategy[Any]:
    """An instance of ``cls`` built from the shipped dev stage's values with some fields replaced."""
    base: Any = {
        StageSettings: DEV,
        AutoscalingSettings: DEV.autoscaling,
        RolloutSettings: RolloutSettings(),
        DataCaptureSettings: DataCaptureSettings(),
        ShadowSettings: ShadowSettings(model_artifact="model_artifacts/model.tar.gz"),
    }[cls]
    names = [item.name for item in dataclasses.fields(cls)]

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        changed = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        values = {name: draw(any_value_for(cls, name)) for name in changed}
        return dataclasses.replace(base, **values)  # nested classes do not validate on their own

    return build()


@st.composite
def stage_trees(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of a StageSettings: the dev stage with up to four fields replaced anyhow."""
    names = [item.name for item in dataclasses.fields(StageSettings)]
    base = {name: getattr(DEV, name) for name in names}
    changed = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    return base | {name: draw(any_value_for(StageSettings, name)) for name in changed}


@settings(DETERMINISTIC, max_examples=400)
@given(stage_trees())
def test_any_tree_is_a_valid_stage_or_a_settings_error(tree: dict[str, Any]) -> None:
    try:
        built = StageSettings(**tree)
    except SettingsError as error:
        assert error.problems
        assert all("\n" not in problem for problem in error.problems)  # one line each
        return
    # Accepted: every number in the tree is finite and every field has its declared shape.
    assert math.isfinite(built.latency_slo_ms) and math.isfinite(built.autoscaling.safety_factor)
    assert isinstance(built.autoscaling.scheduled, tuple)
    assert isinstance(built.client_azs, tuple) and all(isinstance(az, str) for az in built.client_azs)


@settings(DETERMINISTIC, max_examples=150)
@given(st.dictionaries(st.sampled_from(["name", "region", "instance_typ", "autoscaling", "max_capcity"]), SCALARS))
def test_any_keywords_through_the_loader_are_a_stage_or_a_settings_error(keywords: dict[str, Any]) -> None:
    try:
        load_from({"dev": lambda: StageSettings(**keywords)}, "dev")
    except SettingsError as error:
        assert str(error).startswith("stage 'dev' has ")


# --- valid trees ----------------------------------------------------------------------------------


@st.composite
def valid_trees(draw: st.DrawFn) -> StageSettings:
    """Stages within every rule: capacities that nest, bounds respected, a type the cpu profile serves."""
    low = draw(st.integers(min_value=2, max_value=6))
    high = draw(st.integers(min_value=low, max_value=1000))
    shifting = draw(st.sampled_from(["CANARY", "LINEAR", "ALL_AT_ONCE"]))
    step = draw(st.integers(min_value=10 if shifting == "LINEAR" else 1, max_value=50))
    wait = draw(st.integers(min_value=120, max_value=600))
    termination = draw(st.integers(min_value=0, max_value=3600))
    steps = -(-100 // step) if shifting == "LINEAR" else (2 if shifting == "CANARY" else 1)
    rollout = RolloutSettings(
        traffic_shifting=shifting,
        step_percent=step,
        wait_interval_seconds=wait,
        termination_wait_seconds=termination,
        max_execution_timeout_seconds=max(600, steps * wait + termination + 1),
    )
    scheduled = draw(
        st.lists(
            st.builds(
                ScheduledCapacity,
                name=st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True),
                cron=st.sampled_from(["cron(0 17 * * ? *)", "cron(30 7 ? * MON-FRI *)", "cron(0 */2 1,15 * ? *)"]),
                min_capacity=st.integers(min_value=2, max_value=high),
            ),
            max_size=2,
            unique_by=lambda action: action.name,
        ).map(tuple)
    )
    autoscaling = AutoscalingSettings(
        min_capacity=low,
        max_capacity=high,
        max_rps_per_instance=draw(st.none() | st.floats(min_value=0.1, max_value=1e6)),
        safety_factor=draw(st.floats(min_value=0.01, max_value=1.0)),
        scale_in_cooldown_seconds=draw(st.integers(min_value=0, max_value=86400)),
        scale_out_cooldown_seconds=draw(st.integers(min_value=0, max_value=86400)),
        concurrency_target_per_instance=draw(st.none() | st.floats(min_value=0.5, max_value=1e4)),
        time_zone=draw(st.sampled_from(["UTC", "America/New_York", "Europe/Paris"])),
        scheduled=scheduled,
        latency_step_scaling=draw(st.booleans()),
    )
    return dataclasses.replace(
        DEV,
        instance_type=draw(st.sampled_from(["ml.c5.xlarge", "ml.c5.large", "ml.m5.xlarge", "ml.c6i.2xlarge"])),
        vpc_cidr=draw(st.sampled_from([None, "10.42.0.0/16", "192.168.0.0/20", "172.20.0.0/24"])),
        client_cidrs=draw(st.sampled_from([(), ("10.100.0.0/16",), ("10.1.0.0/16", "fd00::/8")])),
        initial_instance_count=draw(st.integers(min_value=low, max_value=high)),
        latency_slo_ms=draw(st.floats(min_value=0.5, max_value=60_000)),
        error_rate_alarm=draw(st.floats(min_value=0.001, max_value=0.5)),
        max_capacity_alarm_minutes=draw(st.integers(min_value=1, max_value=1440)),
        log_retention_days=draw(st.sampled_from([1, 30, 365, 3653])),
        autoscaling=autoscaling,
        rollout=rollout,
        data_capture=DataCaptureSettings(
            enabled=draw(st.booleans()),
            sampling_percent=draw(st.integers(min_value=1, max_value=100)),
            retention_days=draw(st.integers(min_value=1, max_value=3650)),
        ),
    )


@settings(DETERMINISTIC, max_examples=200)
@given(valid_trees())
def test_trees_within_the_rules_are_accepted(stage: StageSettings) -> None:
    assert stage.autoscaling.max_rps_per_instance is not None  # None became the measurement or 1000


@settings(DETERMINISTIC, max_examples=2)
@given(stage=valid_trees())
def test_valid_trees_synthesize(stage: StageSettings, tmp_path_factory: pytest.TempPathFactory) -> None:
    outdir: Path = tmp_path_factory.mktemp("generated")
    synthesized = synthesize(stage, outdir)
    (_, endpoint) = synthesized.one("AWS::SageMaker::EndpointConfig")
    variants = endpoint["Properties"]["ProductionVariants"]
    assert variants[0]["InstanceType"] == stage.instance_type
    assert variants[0]["InitialInstanceCount"] == stage.initial_instance_count
