"""Issue 12: every wrong stage a careful user could write is refused with one line per problem, by the
loader (stacks/stage_loader.py) and through the real `cdk synth`; never a traceback or a template."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks import settings as settings_module
from stacks import settings_rules, stages
from stacks.settings import (
    AutoscalingSettings,
    RolloutSettings,
    ScheduledCapacity,
    SettingsError,
    ShadowSettings,
    StageSettings,
)
from stacks.stage_loader import load_from

from .conftest import REPO_ROOT

AZS = ("us-east-1a", "us-east-1b")
FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + digit) for digit in range(10)))


def problems(factory: Callable[[], object], key: str = "dev") -> list[str]:
    """What the loader says about the stage ``factory`` registered as ``key``."""
    with pytest.raises(SettingsError) as caught:
        load_from({key: factory}, key)
    assert str(caught.value).startswith(f"stage {key!r} has {len(caught.value.problems)} invalid setting(s):\n  - ")
    return caught.value.problems


def dev(**changes: Any) -> Callable[[], StageSettings]:
    return lambda: dataclasses.replace(stages.dev(), **changes)


def scaling(**changes: Any) -> AutoscalingSettings:
    return dataclasses.replace(stages.dev().autoscaling, **changes)


def peak(**changes: Any) -> ScheduledCapacity:
    values: dict[str, Any] = {"name": "EveningPeak", "cron": "cron(0 17 * * ? *)", "min_capacity": 3}
    return ScheduledCapacity(**(values | changes))


# --- (a) typos and shapes -----------------------------------------------------------------------------


def test_misspelled_keyword_names_the_class_and_suggests_the_field() -> None:
    def stage() -> StageSettings:
        return StageSettings(name="dev", region="us-east-1", client_azs=AZS, instance_typ="ml.c5.xlarge")  # type: ignore[call-arg]

    (problem,) = problems(stage)
    assert problem.startswith(
        "StageSettings(instance_typ=...) is invalid: StageSettings has no setting 'instance_typ'; "
        "did you mean 'instance_type'? allowed: name, region, account, "
    )


def test_misspelled_keyword_on_a_nested_settings_object() -> None:
    def stage() -> StageSettings:
        return StageSettings(
            name="dev",
            region="us-east-1",
            client_azs=AZS,
            autoscaling=AutoscalingSettings(max_capcity=4),  # type: ignore[call-arg]
        )

    assert problems(stage) == [
        "AutoscalingSettings(max_capcity=...) is invalid: AutoscalingSettings has no setting 'max_capcity'; "
        "did you mean 'max_capacity'? allowed: enabled, min_capacity, max_capacity, max_rps_per_instance, "
        "safety_factor, scale_in_cooldown_seconds, scale_out_cooldown_seconds, concurrency_target_per_instance, "
        "time_zone, scheduled, latency_step_scaling"
    ]


def test_missing_required_keyword() -> None:
    assert problems(lambda: StageSettings(name="dev")) == [  # type: ignore[call-arg]
        "StageSettings(...) is invalid: required setting(s) missing: 'region'"
    ]


def test_positional_values_are_refused() -> None:
    assert problems(lambda: ShadowSettings("model_artifacts/model.tar.gz")) == [  # type: ignore[call-arg]
        "ShadowSettings(...) is invalid: settings are keywords only, such as ShadowSettings(model_artifact=...)"
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"autoscaling": None}, "autoscaling=None is invalid: expected AutoscalingSettings"),
        (
            {"rollout": {"step_percent": 10}},
            "rollout={'step_percent': 10} is invalid: expected RolloutSettings",
        ),
        (
            {"client_azs": "us-east-1a"},
            "client_azs='us-east-1a' is invalid: expected tuple[str, ...]: a single value needs a trailing comma: "
            "('us-east-1a',)",
        ),
        (
            {"client_azs": ["us-east-1a", "us-east-1b"]},
            "client_azs=['us-east-1a', 'us-east-1b'] is invalid: expected tuple[str, ...]: a tuple in parentheses, "
            "not a list in brackets",
        ),
        ({"client_cidrs": ("10.0.0.0/8", 10)}, "client_cidrs[1]=10 is invalid: expected str"),
        (
            {"shadow": "model_artifacts/model.tar.gz"},
            "shadow='model_artifacts/model.tar.gz' is invalid: expected ShadowSettings | None",
        ),
        ({"high_availability": 1}, "high_availability=1 is invalid: expected bool"),
        ({"initial_instance_count": True}, "initial_instance_count=True is invalid: expected int"),
        ({"initial_instance_count": 2.0}, "initial_instance_count=2.0 is invalid: expected int"),
    ],
)
def test_wrong_shapes_are_named(changes: dict[str, Any], expected: str) -> None:
    assert problems(dev(**changes)) == [expected]


def test_single_scheduled_action_without_a_trailing_comma() -> None:
    action = peak()
    assert problems(dev(autoscaling=scaling(scheduled=(action)))) == [
        f"autoscaling.scheduled={action!r} is invalid: expected tuple[ScheduledCapacity, ...]: a single value "
        f"needs a trailing comma: ({action!r},)"
    ]


def test_wrong_type_deep_in_the_tree_is_named_by_its_path() -> None:
    assert problems(dev(autoscaling=scaling(scheduled=(peak(), peak(name=7))))) == [
        "autoscaling.scheduled[1].name=7 is invalid: expected str"
    ]


def test_stage_function_without_return() -> None:
    def forgetful() -> None:
        stages.dev()

    assert problems(forgetful) == [
        "forgetful() in stacks/stages.py returned None (a missing return?); allowed: a StageSettings(...)"
    ]


def test_stage_function_returning_something_else() -> None:
    assert problems(lambda: stages.dev().autoscaling)[0].startswith(
        "<lambda>() in stacks/stages.py returned AutoscalingSettings("
    )


def test_stage_function_that_raises_is_one_line() -> None:
    def broken() -> StageSettings:
        raise KeyError("instance")

    assert problems(broken) == ["broken() in stacks/stages.py raised KeyError: 'instance'"]


# --- (b) NaN and infinity -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(
    "where",
    [
        "latency_slo_ms",
        "error_rate_alarm",
        "autoscaling.safety_factor",
        "autoscaling.max_rps_per_instance",
        "autoscaling.concurrency_target_per_instance",
    ],
)
def test_nan_and_infinity_are_refused_everywhere(where: str, value: float) -> None:
    if where.startswith("autoscaling."):
        factory = dev(autoscaling=scaling(**{where.removeprefix("autoscaling."): value}))
    else:
        factory = dev(**{where: value})
    assert problems(factory) == [f"{where}={value!r} is invalid: allowed: a finite number"]


# --- (c) patterns match the whole string, in ASCII --------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"name": "dev\n"}, "name"),
        ({"name": "dév"}, "name"),
        ({"account": "123456789012\n"}, "account"),
        ({"account": "123456789012".translate(FULL_WIDTH)}, "account"),
        ({"account": "١٢٣٤٥٦٧٨٩٠١٢"}, "account"),  # Arabic-Indic digits
        ({"region": "us-east-1\n"}, "region"),
        ({"region": "us-east-\uff11"}, "region"),
        ({"client_azs": ("us-east-1a", "us-east-1b\n")}, "client_azs"),
    ],
)
def test_patterns_refuse_trailing_newlines_and_non_ascii_digits(changes: dict[str, Any], setting: str) -> None:
    (problem,) = problems(dev(**changes), key=str(changes.get("name", "dev")))
    assert problem.startswith(f"{setting}=")


@pytest.mark.parametrize(
    ("action", "setting"),
    [
        (peak(name="Peak\n"), "name"),
        (peak(cron="cron(0 17 * * ? *)\n"), "cron"),
        (peak(cron="cron(0 \uff117 * * ? *)"), "cron"),
        (peak(cron="cron(0 17 ? * \u017fun *)"), "cron"),  # U+017F upper-cases to 'S'
        (peak(cron="cron(0/٣ 17 * * ? *)"), "cron"),
    ],
)
def test_scheduled_action_patterns_are_ascii_and_whole(action: ScheduledCapacity, setting: str) -> None:
    (problem,) = problems(dev(autoscaling=scaling(scheduled=(action,))))
    assert problem.startswith(f"autoscaling.scheduled[0].{setting}=")


def test_vpc_id_with_trailing_newline_is_refused() -> None:
    changes = {"account": "123456789012", "vpc_id": "vpc-0a1b2c3d4e5f67890\n", "vpc_cidr": None}
    assert problems(dev(**changes)) == [
        "vpc_id='vpc-0a1b2c3d4e5f67890\\n' is invalid: allowed: a VPC id such as 'vpc-0123456789abcdef0', or None"
    ]


# --- (d) silent defaults and ignored settings ---------------------------------------------------


@pytest.mark.parametrize("path", ["", "   "])
def test_empty_model_artifact_is_not_the_sample(path: str) -> None:
    assert problems(dev(model_artifact=path)) == [
        f"model_artifact={path!r} is invalid: allowed: a path to a model .tar.gz in this repository, or None for "
        "the profile's artifact"
    ]


def test_empty_shadow_artifact_is_refused() -> None:
    assert problems(dev(shadow=ShadowSettings(model_artifact=""))) == [
        "shadow.model_artifact='' is invalid: allowed: a path to a model .tar.gz in this repository, or None"
    ]


@pytest.mark.parametrize("cidr", ["10.42.0.0/16", "not a cidr"])
def test_vpc_cidr_with_an_existing_vpc_is_refused(cidr: str) -> None:
    shared = lambda: dataclasses.replace(stages.shared_vpc(), vpc_cidr=cidr)  # noqa: E731
    assert problems(shared, key="shared-vpc") == [
        f"vpc_cidr={cidr!r} is invalid: an existing VPC (vpc_id) keeps its own network; allowed: None with vpc_id"
    ]


def test_new_vpc_without_a_cidr_takes_the_documented_default() -> None:
    settings = dataclasses.replace(stages.dev(), vpc_cidr=None)
    assert (settings.vpc_cidr, settings.new_vpc_cidr) == (None, "10.42.0.0/16")


def test_concurrency_policy_with_autoscaling_off_is_refused() -> None:
    off = scaling(enabled=False, concurrency_target_per_instance=5.0)
    assert problems(dev(autoscaling=off, initial_instance_count=2)) == [
        "autoscaling.concurrency_target_per_instance=5.0 is invalid: the policy needs the scalable target; "
        "allowed: None or autoscaling.enabled=True"
    ]


@pytest.mark.parametrize("name", ["", " ", "dev ", "DEV", None, 0])
def test_unknown_or_empty_stage_names_are_refused(name: object) -> None:
    with pytest.raises(SettingsError) as caught:
        stages.load_stage(name)
    (problem,) = caught.value.problems
    assert problem.startswith(f"stage={name!r} is not defined; ")
    # The stages STAGES defines, not a list written here: a stage the user adds is allowed like the shipped ones.
    assert problem.endswith(f"allowed: one of {sorted(stages.STAGES)} (stacks/stages.py)")


def test_the_refusal_lists_the_stages_of_the_registry_in_order() -> None:
    with pytest.raises(SettingsError) as caught:
        load_from({"zeta": stages.dev, "alpha": stages.dev, "mid-1": stages.dev}, "nothing-close")
    assert caught.value.problems == [
        "stage='nothing-close' is not defined; allowed: one of ['alpha', 'mid-1', 'zeta'] (stacks/stages.py)"
    ]


def test_unknown_stage_suggests_a_close_one() -> None:
    with pytest.raises(SettingsError) as caught:
        stages.load_stage("prd")
    assert caught.value.problems[0].startswith("stage='prd' is not defined; did you mean 'prod'? allowed: ")


# --- (e) stage identity ---------------------------------------------------------------------------


def test_copied_stage_that_keeps_the_name_is_refused() -> None:
    assert problems(stages.dev, key="dev-copy") == [
        "name='dev' is invalid: the stage is registered as 'dev-copy' in STAGES and its stack would be another "
        "stage's (or a stranger's); allowed: name='dev-copy'"
    ]


def test_name_mismatch_is_reported_beside_the_other_problems() -> None:
    assert problems(dev(latency_slo_ms=0), key="dev-copy") == [
        "latency_slo_ms=0 is invalid: allowed: greater than 0, at most 60000 (the invoke timeout)",
        "name='dev' is invalid: the stage is registered as 'dev-copy' in STAGES and its stack would be another "
        "stage's (or a stranger's); allowed: name='dev-copy'",
    ]


def test_every_stage_is_named_after_its_key_and_every_stack_name_is_unique() -> None:
    loaded = {key: stages.load_stage(key) for key in stages.STAGES}
    assert all(settings.name == key for key, settings in loaded.items())
    names = [settings.stack_name.lower() for settings in loaded.values()] + [stages.github_ci().stack_name.lower()]
    assert len(set(names)) == len(names)
    endpoints = [settings.endpoint_name for settings in loaded.values()]
    assert len(set(endpoints)) == len(endpoints)


# --- (f) checks at load time, not in the constructs -----------------------------------------------


def test_existing_vpc_without_a_private_subnet_in_a_client_az_is_refused_at_load() -> None:
    shared = lambda: dataclasses.replace(stages.shared_vpc(), client_azs=("us-east-1a", "us-east-1d"))  # noqa: E731
    assert problems(shared, key="shared-vpc") == [
        "client_azs=('us-east-1a', 'us-east-1d') is invalid: VPC vpc-0a1b2c3d4e5f67890 has no private subnet in "
        "['us-east-1d'] (cdk.context.json); allowed: AZs among ['us-east-1a', 'us-east-1b', 'us-east-1c'] (after a "
        "VPC change, refresh the lookup: 'npx cdk context --reset KEY', then synth with credentials)"
    ]


def test_public_subnets_do_not_count_for_client_azs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = json.loads(settings_rules.CONTEXT_FILE.read_text())
    (lookup,) = context.values()
    lookup["subnetGroups"] = [group for group in lookup["subnetGroups"] if group["type"] == "Public"]
    path = tmp_path / "cdk.context.json"
    path.write_text(json.dumps(context))
    monkeypatch.setattr(settings_rules, "CONTEXT_FILE", path)
    (problem,) = problems(stages.shared_vpc, key="shared-vpc")
    assert "has no private subnet in ['us-east-1a', 'us-east-1b']" in problem


def test_vpc_not_yet_looked_up_is_left_to_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_rules, "CONTEXT_FILE", tmp_path / "absent.json")
    assert load_from({"shared-vpc": stages.shared_vpc}, "shared-vpc").vpc_id == "vpc-0a1b2c3d4e5f67890"


def _artifact_with_manifest(directory: Path, manifest: object) -> str:
    source = REPO_ROOT / "model_artifacts" / "model.tar.gz"
    (directory / "model.tar.gz").write_bytes(source.read_bytes())
    (directory / "model-manifest.json").write_text(json.dumps(manifest))
    return os.path.relpath(directory / "model.tar.gz", REPO_ROOT)


@pytest.mark.parametrize(
    ("manifest", "why"),
    [
        ([], "a manifest model-manifest.json that is not a JSON object"),
        (
            {"sha256": 1, "xgboost_version": "3.2.0", "features": []},
            "a manifest model-manifest.json whose sha256 is not a JSON string",
        ),
        (
            {"sha256": "", "xgboost_version": "3.2.0", "features": 7},
            "a manifest model-manifest.json whose features is not a JSON array",
        ),
        (
            {"sha256": "", "xgboost_version": ["3.2.0"], "features": []},
            "a manifest model-manifest.json whose xgboost_version is not a JSON string",
        ),
        (
            {"sha256": "", "xgboost_version": "3.2.0", "features": [], "triton": "fil"},
            "a manifest model-manifest.json whose triton is not a JSON object",
        ),
    ],
)
def test_manifest_of_the_wrong_shape_is_refused(tmp_path: Path, manifest: object, why: str) -> None:
    relative = _artifact_with_manifest(tmp_path, manifest)
    assert problems(dev(model_artifact=relative)) == [f"model_artifact={relative!r} is invalid: the artifact has {why}"]


# --- (g) precise messages -------------------------------------------------------------------------


def test_too_long_name_is_told_its_length() -> None:
    name = "a" * 25
    assert problems(dev(name=name), key=name) == [
        f"name={name!r} is invalid: 25 characters; allowed: at most 24 (the stack is named after it)"
    ]


def test_longest_name_is_accepted() -> None:
    name = "a" * 24
    assert load_from({name: dev(name=name)}, name).stack_name == f"RtbInference-{name}"


def test_trainium_is_not_called_burstable() -> None:
    (problem,) = problems(dev(instance_type="ml.trn1.2xlarge", kms_encryption=False))
    assert "burstable" not in problem
    assert problem.startswith("instance_type='ml.trn1.2xlarge' is invalid: the cpu profile serves x86 CPU types")


def test_rollout_longer_than_sagemaker_allows_names_the_waiting() -> None:
    linear = RolloutSettings(traffic_shifting="LINEAR", step_percent=10, wait_interval_seconds=3000)
    assert problems(dev(rollout=linear)) == [
        "rollout.wait_interval_seconds=3000 is invalid: the rollout waits 30300 s (10 bakes of wait_interval_seconds "
        "plus termination_wait_seconds), and SageMaker stops a rollout after at most 28800 s; allowed: shorter bakes "
        "or termination wait, so that the waiting stays under 28800"
    ]


def test_folder_given_as_artifact_is_called_a_folder() -> None:
    assert problems(dev(model_artifact="model_artifacts")) == [
        "model_artifact='model_artifacts' is invalid: the artifact is a folder; allowed: the path of a model .tar.gz "
        "file"
    ]


# --- (h) upper bounds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (
            dev(autoscaling=scaling(max_capacity=1001)),
            "autoscaling.max_capacity=1001 is invalid: allowed: at most 1000 (the kit's bound on instance counts)",
        ),
        (
            dev(autoscaling=scaling(min_capacity=1001, max_capacity=1001), initial_instance_count=1001),
            "autoscaling.min_capacity=1001 is invalid: allowed: at most 1000 (the kit's bound on instance counts)",
        ),
        (
            dev(autoscaling=scaling(scale_in_cooldown_seconds=86401)),
            "autoscaling.scale_in_cooldown_seconds=86401 is invalid: allowed: 0 to 86400 (the kit's bound: one day)",
        ),
        (
            dev(autoscaling=scaling(scale_out_cooldown_seconds=-1)),
            "autoscaling.scale_out_cooldown_seconds=-1 is invalid: allowed: 0 to 86400 (the kit's bound: one day)",
        ),
        (
            dev(autoscaling=scaling(max_rps_per_instance=1e7)),
            "autoscaling.max_rps_per_instance=10000000.0 is invalid: allowed: greater than 0, at most 1000000",
        ),
        (
            dev(autoscaling=scaling(scheduled=(peak(min_capacity=None, max_capacity=1001),))),
            "autoscaling.scheduled[0].max_capacity=1001 is invalid: allowed: at most 1000 (the kit's bound on "
            "instance counts)",
        ),
        (
            dev(shadow=ShadowSettings(model_artifact="model_artifacts/model.tar.gz", instance_count=1001)),
            "shadow.instance_count=1001 is invalid: allowed: at most 1000 (the kit's bound on instance counts)",
        ),
    ],
)
def test_upper_bounds(factory: Callable[[], StageSettings], expected: str) -> None:
    assert expected in problems(factory)


def test_bounds_at_their_limits_are_accepted() -> None:
    wide = scaling(min_capacity=2, max_capacity=1000, scale_in_cooldown_seconds=86400, max_rps_per_instance=1e6)
    assert load_from({"dev": dev(autoscaling=wide)}, "dev").autoscaling.max_capacity == 1000


def test_sagemaker_bounds_are_botocores() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")

    def bounds(shape: str, member: str) -> tuple[int, int]:
        metadata = model.shape_for(shape).members[member].metadata
        return metadata["min"], metadata["max"]

    assert (
        bounds("BlueGreenUpdatePolicy", "MaximumExecutionTimeoutInSeconds") == settings_module.EXECUTION_TIMEOUT_RANGE
    )
    assert bounds("BlueGreenUpdatePolicy", "TerminationWaitInSeconds") == settings_module.WAIT_RANGE
    assert bounds("TrafficRoutingConfig", "WaitIntervalInSeconds") == settings_module.WAIT_RANGE
    assert bounds("RollingUpdatePolicy", "WaitIntervalInSeconds") == settings_module.WAIT_RANGE
    assert bounds("RollingUpdatePolicy", "MaximumExecutionTimeoutInSeconds") == settings_module.EXECUTION_TIMEOUT_RANGE
    # A rolling batch is a CapacitySize like the canary's: a share (5-50% per the API reference's text, which the
    # model does not encode) or a count of at least 1.
    assert model.shape_for("CapacitySizeValue").metadata["min"] == 1 <= settings_module.ROLLING_BATCH_PERCENT[0]
    assert "CAPACITY_PERCENT" in model.shape_for("CapacitySizeType").enum
    assert bounds("ProductionVariant", "ContainerStartupHealthCheckTimeoutInSeconds") == settings_module.TIMEOUT_RANGE
    assert bounds("ProductionVariant", "ModelDataDownloadTimeoutInSeconds") == settings_module.TIMEOUT_RANGE
    assert model.shape_for("EndpointName").metadata["max"] == settings_module.ENDPOINT_NAME_MAX


def test_every_stage_name_fits_every_instance_types_endpoint_name() -> None:
    from stacks import catalog

    longest = max(catalog.hosting_instance_types(), key=len)
    name = "a" * settings_module.STAGE_NAME_MAX
    settings = dataclasses.replace(stages.dev(), name=name)
    assert len(f"{settings.stack_name}-{longest.removeprefix('ml.').replace('.', '-')}") <= 63


# --- the vpc size rule and public ranges (rules without a test before) ----------------------------


@pytest.mark.parametrize("cidr", ["10.42.0.0/15", "10.42.0.0/25", "10.0.0.0/8"])
def test_vpc_size_outside_16_to_24_is_refused(cidr: str) -> None:
    assert problems(dev(vpc_cidr=cidr)) == [
        f"vpc_cidr={cidr!r} is invalid: allowed: a private IPv4 network from /16 to /24 within 10.0.0.0/8, "
        "172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10"
    ]


@pytest.mark.parametrize("cidr", ["10.42.0.0/16", "10.42.0.0/24", "192.168.0.0/16", "172.31.0.0/16", "100.64.0.0/16"])
def test_vpc_sizes_within_16_to_24_are_accepted(cidr: str) -> None:
    assert load_from({"dev": dev(vpc_cidr=cidr)}, "dev").new_vpc_cidr == cidr


@pytest.mark.parametrize("cidr", ["8.8.8.0/24", "52.0.0.0/16", "100.64.0.0/16", "2600:1f18::/32", "0.0.0.0/0", "::/0"])
def test_every_public_client_range_is_refused(cidr: str) -> None:
    assert problems(dev(client_cidrs=(cidr,))) == [
        f"client_cidrs={cidr!r} is invalid: allowed: private networks only (no public path to the endpoint)"
    ]


@pytest.mark.parametrize("cidr", ["8.8.8.0/24", "203.0.113.0/24", "127.0.0.0/16", "169.254.0.0/16", "10.0.0.0/7"])
def test_public_vpc_cidr_is_refused(cidr: str) -> None:
    assert problems(dev(vpc_cidr=cidr))[0].startswith(f"vpc_cidr={cidr!r} is invalid: ")


# --- through the real `cdk synth` -----------------------------------------------------------------

# Installed as sitecustomize in the synth's Python: broken stages registered beside the shipped ones.
_BROKEN_STAGES = textwrap.dedent(
    """
    import dataclasses
    from stacks import stages
    from stacks.settings import AutoscalingSettings, RolloutSettings, ScheduledCapacity, StageSettings

    def typo():
        return StageSettings(name="typo", region="us-east-1", client_azs=("us-east-1a", "us-east-1b"),
                             autoscaling=AutoscalingSettings(max_capcity=4))

    def nan():
        return dataclasses.replace(stages.dev(), name="nan", latency_slo_ms=float("nan"))

    def combo():
        # A copy of shared-vpc that keeps its name, with one mistake of each remaining class.
        return dataclasses.replace(
            stages.shared_vpc(),
            client_azs=("us-east-1a", "us-east-1d"),
            vpc_cidr="10.42.0.0/16",
            model_artifact="",
            rollout=RolloutSettings(traffic_shifting="LINEAR", step_percent=10, wait_interval_seconds=3000),
            autoscaling=AutoscalingSettings(min_capacity=2, max_capacity=4000, scheduled=(
                ScheduledCapacity(name="Peak\\n", cron="cron(0 17 * * ? *)", min_capacity=3),)),
        )

    stages.STAGES.update({"typo": typo, "nan": nan, "combo": combo})
    """
)


CLI_CASES: dict[str, list[str]] = {
    "": ["stage='' is not defined; allowed: one of ['combo', 'dev', "],
    "typo": [
        "AutoscalingSettings(max_capcity=...) is invalid: AutoscalingSettings has no setting 'max_capcity'; "
        "did you mean 'max_capacity'?"
    ],
    "nan": ["latency_slo_ms=nan is invalid: allowed: a finite number"],
    "combo": [
        "client_azs=('us-east-1a', 'us-east-1d') is invalid: VPC vpc-0a1b2c3d4e5f67890 has no private subnet",
        "vpc_cidr='10.42.0.0/16' is invalid: an existing VPC (vpc_id) keeps its own network",
        "autoscaling.max_capacity=4000 is invalid: allowed: at most 1000",
        "autoscaling.scheduled[0].name='Peak\\n' is invalid: allowed: letters, digits",
        "model_artifact='' is invalid: allowed: a path to a model .tar.gz",
        "rollout.wait_interval_seconds=3000 is invalid: the rollout waits 30300 s",
        "name='shared-vpc' is invalid: the stage is registered as 'combo' in STAGES",
    ],
}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, Path]]:
    """`cdk synth -c stage=NAME` for every case, run side by side (each costs seconds of CLI start-up)."""
    root = tmp_path_factory.mktemp("cli")
    (root / "sitecustomize.py").write_text(_BROKEN_STAGES)
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(root), str(REPO_ROOT)]),
        "PATH": os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), os.environ["PATH"]]),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1",
    }
    running = {}
    for index, stage in enumerate(CLI_CASES):
        outdir = root / f"out{index}"
        command = ["node_modules/.bin/cdk", "synth", "--no-lookups", "--no-notices", "-c", f"stage={stage}"]
        process = subprocess.Popen(
            [*command, "-o", str(outdir)],
            cwd=REPO_ROOT,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        running[stage] = (process, outdir)
    results = {}
    for stage, (process, outdir) in running.items():
        _, stderr = process.communicate(timeout=300)
        results[stage] = (process.returncode, stderr, outdir)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(CLI_CASES))
def test_cdk_synth_refuses_each_class_with_exit_status_1_and_no_template(
    cli_runs: dict[str, tuple[int, str, Path]], stage: str
) -> None:
    returncode, stderr, outdir = cli_runs[stage]
    expected = CLI_CASES[stage]
    assert returncode == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    header = f"error: stage {stage!r} has {len(expected)} invalid setting(s):"
    assert header in lines, stderr
    body = lines[lines.index(header) + 1 : lines.index(header) + 1 + len(expected)]
    assert all(line.startswith("  - ") for line in body)
    assert sorted(expected) == sorted(next(e for e in expected if line[4:].startswith(e)) for line in body)
    assert not list(outdir.glob("*.template.json"))
