"""Bad settings fail at synth, before CloudFormation, naming the setting, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from stacks import stages
from stacks.settings import (
    AutoscalingSettings,
    DataCaptureSettings,
    RolloutSettings,
    ScheduledCapacity,
    SettingsError,
    ShadowSettings,
    StageSettings,
    rollout_steps,
    update_surge_instances,
)

from .conftest import REPO_ROOT


def dev_with(**changes: Any) -> StageSettings:
    return dataclasses.replace(stages.dev(), **changes)


def scaling(**changes: Any) -> AutoscalingSettings:
    return dataclasses.replace(stages.dev().autoscaling, **changes)


def problems_of(**changes: Any) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        dev_with(**changes)
    assert str(caught.value).startswith("stage 'dev' has ")
    return caught.value.problems


@pytest.mark.parametrize("name", sorted(stages.STAGES))
def test_every_defined_stage_is_valid(name: str) -> None:
    settings = stages.load_stage(name)
    assert settings.name == name


def test_unknown_stage_lists_the_defined_ones() -> None:
    with pytest.raises(SettingsError) as caught:
        stages.load_stage("staging")
    assert caught.value.problems == [
        f"stage='staging' is not defined; allowed: one of {sorted(stages.STAGES)} (stacks/stages.py)"
    ]


def test_default_stage_targets_c5_xlarge_with_two_instances() -> None:
    settings = stages.load_stage(stages.DEFAULT_STAGE)
    assert (settings.instance_type, settings.initial_instance_count) == ("ml.c5.xlarge", 2)
    assert settings.account is None  # synthesizes without an AWS account


def test_misspelled_instance_type_suggests_the_right_one() -> None:
    assert problems_of(instance_type="ml.c5.xlarg") == [
        "instance_type='ml.c5.xlarg' is invalid: not a SageMaker real-time instance type; did you mean "
        "'ml.c5.xlarge' or 'ml.c5d.xlarge' or 'ml.c5.9xlarge'? allowed: the 277 types in "
        "stacks/data/instance_types.json"
    ]


def test_unknown_instance_type_is_rejected() -> None:
    assert problems_of(instance_type="ml.z9.huge") == [
        "instance_type='ml.z9.huge' is invalid: not a SageMaker real-time instance type; allowed: the 277 types "
        "in stacks/data/instance_types.json"
    ]


def test_burstable_instance_with_autoscaling_is_rejected() -> None:
    assert problems_of(instance_type="ml.t2.medium") == [
        "instance_type='ml.t2.medium' is invalid: burstable (ml.t*) instances cannot be autoscaled; "
        "allowed: a non-burstable type, or autoscaling.enabled=False"
    ]


def test_burstable_instance_without_autoscaling_is_accepted() -> None:
    settings = dev_with(instance_type="ml.t2.medium", autoscaling=scaling(enabled=False))
    assert settings.instance_type == "ml.t2.medium"


@pytest.mark.parametrize(
    ("instance_type", "hint"),
    [("ml.inf1.xlarge", ", or profile='inferentia'"), ("ml.c6g.xlarge", ""), ("ml.p3.2xlarge", "")],
)
def test_instance_the_xgboost_container_cannot_serve_is_rejected(instance_type: str, hint: str) -> None:
    assert problems_of(instance_type=instance_type) == [
        f"instance_type={instance_type!r} is invalid: the cpu profile serves x86 CPU types such as ml.c5, ml.c6i, "
        f"ml.m5; allowed: one of those{hint}"
    ]


@pytest.mark.parametrize("instance_type", ["ml.c5d.xlarge", "ml.m5d.large"])
def test_kms_key_on_local_nvme_instance_is_rejected(instance_type: str) -> None:
    assert problems_of(instance_type=instance_type) == [
        f"kms_encryption=True is invalid: {instance_type} has local NVMe storage, which SageMaker encrypts in "
        "hardware and for which it rejects KmsKeyId; allowed: False for this type, or a type without local "
        "storage such as ml.c5.xlarge"
    ]


def test_local_nvme_instance_without_kms_is_accepted() -> None:
    assert dev_with(instance_type="ml.c5d.xlarge", kms_encryption=False).kms_encryption is False


def test_turning_kms_off_on_an_ebs_instance_is_rejected() -> None:
    assert problems_of(kms_encryption=False) == [
        "kms_encryption=False is invalid: ml.c5.xlarge stores the model on an EBS volume, which must be encrypted "
        "with the stack's customer-managed key; allowed: True"
    ]


def test_min_capacity_above_max_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(min_capacity=5, max_capacity=3)) == [
        "autoscaling.max_capacity=3 is invalid: allowed: at least autoscaling.min_capacity (5)"
    ]


@pytest.mark.parametrize("initial", [1, 5])
def test_initial_count_outside_min_max_is_rejected(initial: int) -> None:
    problems = problems_of(initial_instance_count=initial, high_availability=False)
    assert problems == [
        f"initial_instance_count={initial} is invalid: allowed: within [autoscaling.min_capacity, "
        "autoscaling.max_capacity] = [2, 4]"
    ]


def test_min_capacity_below_two_with_high_availability_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(min_capacity=1)) == [
        "autoscaling.min_capacity=1 is invalid: high_availability needs instances in 2 AZs; allowed: 2 or more, "
        "or high_availability=False"
    ]


def test_single_instance_needs_high_availability_off() -> None:
    settings = dev_with(high_availability=False, initial_instance_count=1, autoscaling=scaling(min_capacity=1))
    assert settings.autoscaling.min_capacity == 1


def test_fewer_than_two_client_azs_is_rejected() -> None:
    assert problems_of(client_azs=("us-east-1a",)) == [
        "client_azs=('us-east-1a',) is invalid: allowed: at least 2 Availability Zones (high availability)"
    ]


def test_client_az_outside_the_region_is_rejected() -> None:
    assert problems_of(client_azs=("us-east-1a", "us-west-2b")) == [
        "client_azs='us-west-2b' is invalid: allowed: Availability Zones of region us-east-1 such as 'us-east-1a'"
    ]


def test_duplicate_client_az_is_rejected() -> None:
    assert problems_of(client_azs=("us-east-1a", "us-east-1a")) == [
        "client_azs=('us-east-1a', 'us-east-1a') is invalid: allowed: each Availability Zone once"
    ]


@pytest.mark.parametrize("safety", [0, -0.5, 1.01])
def test_safety_factor_outside_zero_one_is_rejected(safety: float) -> None:
    assert problems_of(autoscaling=scaling(safety_factor=safety)) == [
        f"autoscaling.safety_factor={safety!r} is invalid: allowed: greater than 0 and at most 1"
    ]


@pytest.mark.parametrize("max_rps", [0, -100.0])
def test_max_rps_not_positive_is_rejected(max_rps: float) -> None:
    assert problems_of(autoscaling=scaling(max_rps_per_instance=max_rps)) == [
        f"autoscaling.max_rps_per_instance={max_rps!r} is invalid: allowed: greater than 0, at most 1000000"
    ]


def test_region_without_xgboost_image_is_rejected() -> None:
    problems = problems_of(region="eu-west-9", client_azs=("eu-west-9a", "eu-west-9b"))
    assert len(problems) == 1
    assert problems[0].startswith(
        "region='eu-west-9' is invalid: SageMaker publishes no XGBoost 3.2-0 image there; allowed: one of "
        "['af-south-1', 'ap-east-1', "
    )
    assert "'us-east-1'" in problems[0]


def test_malformed_region_is_rejected_without_cascading_az_errors() -> None:
    assert problems_of(region="US East") == [
        "region='US East' is invalid: allowed: an AWS region name such as 'us-east-1', or None"
    ]


def test_wrong_type_is_named_before_any_rule_runs() -> None:
    assert problems_of(initial_instance_count="2") == ["initial_instance_count='2' is invalid: expected int"]


def test_public_client_network_is_rejected() -> None:
    assert problems_of(client_cidrs=("0.0.0.0/0",)) == [
        "client_cidrs='0.0.0.0/0' is invalid: allowed: private networks only (no public path to the endpoint)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(instance_type="ml.c5.xlarg", autoscaling=scaling(safety_factor=2.0, max_rps_per_instance=0))
    assert [problem.split("=")[0] for problem in problems] == [
        "instance_type",
        "autoscaling.safety_factor",
        "autoscaling.max_rps_per_instance",
    ]


def test_image_whose_xgboost_differs_from_the_model_is_rejected() -> None:
    assert problems_of(image_tag="1.7-1") == [
        "image_tag='1.7-1' is invalid: it runs XGBoost 1.7.6 but the model was saved with XGBoost 3.2.0; "
        "allowed: a tag whose XGBoost matches the model's, or retrain with that version"
    ]


def test_unknown_image_tag_is_rejected() -> None:
    assert problems_of(image_tag="latest") == [
        "image_tag='latest' is invalid: the cpu profile's images: allowed: one of ['1.7-1', '3.0-5', '3.2-0'], or None"
    ]


def test_environment_agnostic_stage_takes_no_azs() -> None:
    with pytest.raises(SettingsError) as caught:
        dataclasses.replace(stages.portable(), client_azs=("us-east-1a", "us-east-1b"))
    assert caught.value.problems == [
        "client_azs=('us-east-1a', 'us-east-1b') is invalid: an environment-agnostic stage (region=None) uses the "
        "first two AZs of the deploy region; allowed: () or set region"
    ]


def test_existing_vpc_needs_account_and_region() -> None:
    assert problems_of(vpc_id="vpc-0a1b2c3d4e5f67890", vpc_cidr=None) == [
        "vpc_id='vpc-0a1b2c3d4e5f67890' is invalid: an existing VPC is looked up per account and region; "
        "set account and region"
    ]


# --- the model artifact --------------------------------------------------------------------------


def _write_artifact(directory: Path, members: dict[str, bytes], *, manifest: dict[str, Any] | None) -> str:
    """A tar.gz with ``members`` and (optionally) a manifest; returns its path relative to the repo."""
    path = directory / "model.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    if manifest is not None:
        (directory / "model-manifest.json").write_text(json.dumps(manifest))
    return os.path.relpath(path, REPO_ROOT)


def _valid_manifest(path: Path) -> dict[str, Any]:
    import hashlib

    return {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "xgboost_version": "3.2.0",
        "features": ["a", "b", "c", "d", "e", "f", "g"],
    }


def test_missing_model_artifact_is_rejected() -> None:
    assert problems_of(model_artifact="model_artifacts/nope.tar.gz") == [
        "model_artifact='model_artifacts/nope.tar.gz' is invalid: the artifact does not exist "
        "(run: python scripts/train_model.py)"
    ]


def test_artifact_that_is_not_a_tar_gz_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"not a tarball")
    relative = os.path.relpath(path, REPO_ROOT)
    (problem,) = problems_of(model_artifact=relative)
    assert problem.startswith(f"model_artifact={relative!r} is invalid: the artifact is not a gzip-compressed tar")


def test_artifact_without_manifest_is_rejected(tmp_path: Path) -> None:
    relative = _write_artifact(tmp_path, {"xgboost-model": b"{}"}, manifest=None)
    assert problems_of(model_artifact=relative) == [
        f"model_artifact={relative!r} is invalid: the artifact has no manifest model-manifest.json beside it "
        "(scripts/train_model.py writes one; it records the XGBoost version the model was saved with)"
    ]


def test_artifact_changed_after_its_manifest_is_rejected(tmp_path: Path) -> None:
    relative = _write_artifact(tmp_path, {"xgboost-model": b"{}"}, manifest={})
    manifest = _valid_manifest(REPO_ROOT / relative) | {"sha256": "0" * 64}
    (tmp_path / "model-manifest.json").write_text(json.dumps(manifest))
    (problem,) = problems_of(model_artifact=relative)
    assert "the artifact does not match its manifest" in problem
    assert "rebuild both with scripts/train_model.py" in problem


def test_artifact_with_unsafe_path_is_rejected(tmp_path: Path) -> None:
    relative = _write_artifact(tmp_path, {"../xgboost-model": b"{}"}, manifest={})
    (tmp_path / "model-manifest.json").write_text(json.dumps(_valid_manifest(REPO_ROOT / relative)))
    assert problems_of(model_artifact=relative) == [
        f"model_artifact={relative!r} is invalid: the artifact holds an unsafe path '../xgboost-model'"
    ]


def test_artifact_whose_first_file_is_not_at_the_root_is_rejected(tmp_path: Path) -> None:
    relative = _write_artifact(tmp_path, {"nested/xgboost-model": b"{}"}, manifest={})
    (tmp_path / "model-manifest.json").write_text(json.dumps(_valid_manifest(REPO_ROOT / relative)))
    assert problems_of(model_artifact=relative) == [
        f"model_artifact={relative!r} is invalid: the artifact must start with a non-empty model file at its "
        "root, not 'nested/xgboost-model'"
    ]


def test_well_formed_artifact_is_accepted(tmp_path: Path) -> None:
    # A real model: the synth reads it and compares it with the manifest (stacks/manifest_check.py).
    with tarfile.open(REPO_ROOT / "model_artifacts" / "model.tar.gz") as sample:
        member = sample.extractfile("xgboost-model")
        assert member is not None
        model = member.read()
    relative = _write_artifact(tmp_path, {"xgboost-model": model}, manifest={})
    manifest = _valid_manifest(REPO_ROOT / relative) | {"objective": "binary:logistic"}
    (tmp_path / "model-manifest.json").write_text(json.dumps(manifest))
    assert dev_with(model_artifact=relative).artifact.model_file == "xgboost-model"


# --- through the real entry point --------------------------------------------------------------


@pytest.mark.slow
def test_cdk_app_rejects_an_unknown_stage_before_synthesizing(tmp_path: Path) -> None:
    """What `cdk synth -c stage=staging` runs: the app exits non-zero and writes no template."""
    env = os.environ | {"CDK_CONTEXT_JSON": json.dumps({"stage": "staging"}), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert f"stage='staging' is not defined; allowed: one of {sorted(stages.STAGES)}" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))


# --- scaling over the day --------------------------------------------------------------------------


def evening(**changes: Any) -> ScheduledCapacity:
    return dataclasses.replace(
        ScheduledCapacity(name="EveningPeak", cron="cron(0 17 * * ? *)", min_capacity=3), **changes
    )


def test_a_day_schedule_in_a_local_time_zone_is_accepted() -> None:
    night = ScheduledCapacity(name="Night", cron="cron(0 23 * * ? *)", min_capacity=2)
    settings = dev_with(autoscaling=scaling(time_zone="America/New_York", scheduled=(evening(), night)))
    assert [action.name for action in settings.autoscaling.scheduled] == ["EveningPeak", "Night"]


def test_unknown_time_zone_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(time_zone="America/NewYork")) == [
        "autoscaling.time_zone='America/NewYork' is invalid: allowed: an IANA time zone name such as 'UTC' or "
        "'America/New_York'"
    ]


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 17 * * ? *", "not of the form cron(...)"),
        ("cron(0 17 * * ?)", "5 fields instead of 6"),
        ("cron(0 25 * * ? *)", "hours '25' is not within 0-23"),
        ("cron(0 17 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(? 17 * * MON *)", "'?' is only for day-of-month or day-of-week, not minutes"),
        ("cron(0/0 17 * * ? *)", "minutes '0/0' has a bad increment"),
        ("cron(0 17 ? * MON-FUN *)", "day-of-week 'MON-FUN' is not within 1-7"),
    ],
)
def test_malformed_cron_is_rejected(cron: str, reason: str) -> None:
    assert problems_of(autoscaling=scaling(scheduled=(evening(cron=cron),))) == [
        f"autoscaling.scheduled[0].cron={cron!r} is invalid: {reason}; allowed: "
        "'cron(minutes hours day-of-month month day-of-week year)' such as 'cron(0 17 * * ? *)'"
    ]


@pytest.mark.parametrize(
    "cron", ["cron(30 7 ? * MON-FRI *)", "cron(0 */2 1,15 * ? 2030)", "cron(0 6 L * ? *)", "cron(0 6 ? JAN-MAR 2#1 *)"]
)
def test_well_formed_crons_are_accepted(cron: str) -> None:
    assert dev_with(autoscaling=scaling(scheduled=(evening(cron=cron),))).autoscaling.scheduled[0].cron == cron


def test_scheduled_minimum_above_its_own_maximum_is_rejected() -> None:
    night = ScheduledCapacity(name="Night", cron="cron(0 23 * * ? *)", min_capacity=9, max_capacity=6)
    assert problems_of(autoscaling=scaling(scheduled=(evening(), night))) == [
        "autoscaling.scheduled[1].min_capacity=9 is invalid: allowed: at most this action's max_capacity (6)"
    ]


def test_scheduled_minimum_above_the_maximum_it_keeps_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(scheduled=(evening(min_capacity=5),))) == [
        "autoscaling.scheduled[0].min_capacity=5 is invalid: the action keeps the maximum at "
        "autoscaling.max_capacity; allowed: at most 4, or set this action's max_capacity"
    ]


def test_scheduled_maximum_below_the_minimum_it_keeps_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(scheduled=(evening(min_capacity=None, max_capacity=1),))) == [
        "autoscaling.scheduled[0].max_capacity=1 is invalid: the action keeps the minimum at "
        "autoscaling.min_capacity; allowed: at least 2, or set this action's min_capacity"
    ]


def test_scheduled_minimum_below_two_with_high_availability_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(scheduled=(evening(min_capacity=1),))) == [
        "autoscaling.scheduled[0].min_capacity=1 is invalid: high_availability needs instances in 2 AZs; "
        "allowed: 2 or more, or high_availability=False"
    ]


def test_scheduled_action_without_capacities_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(scheduled=(evening(min_capacity=None),))) == [
        "autoscaling.scheduled[0].min_capacity=None is invalid: allowed: a min_capacity, a max_capacity or both"
    ]


def test_duplicate_scheduled_names_are_rejected() -> None:
    assert problems_of(autoscaling=scaling(scheduled=(evening(), evening(cron="cron(0 18 * * ? *)")))) == [
        "autoscaling.scheduled[1].name='EveningPeak' is invalid: already used by autoscaling.scheduled[0]; "
        "allowed: a name used once in the stage"
    ]


def test_scheduled_name_that_is_not_a_construct_id_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(scheduled=(evening(name="evening/peak"),))) == [
        "autoscaling.scheduled[0].name='evening/peak' is invalid: allowed: letters, digits, '-' and '_', starting "
        "with a letter, at most 64 characters"
    ]


def test_scheduled_capacity_of_the_wrong_type_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(scheduled=(evening(min_capacity="6"),))) == [
        "autoscaling.scheduled[0].min_capacity='6' is invalid: expected int | None"
    ]


def test_scheduled_actions_with_autoscaling_off_are_rejected() -> None:
    action = evening()
    assert problems_of(autoscaling=scaling(enabled=False, scheduled=(action,))) == [
        f"autoscaling.scheduled={(action,)!r} is invalid: scheduled actions need the scalable target; "
        "allowed: () or autoscaling.enabled=True"
    ]


def test_latency_step_scaling_with_autoscaling_off_is_rejected() -> None:
    assert problems_of(autoscaling=scaling(enabled=False, latency_step_scaling=True)) == [
        "autoscaling.latency_step_scaling=True is invalid: the policy needs the scalable target; "
        "allowed: False or autoscaling.enabled=True"
    ]


# --- rollout, data capture and the shadow variant ---------------------------------------------------


def rollout(**changes: Any) -> RolloutSettings:
    return dataclasses.replace(stages.dev().rollout, **changes)


def capture(**changes: Any) -> DataCaptureSettings:
    return dataclasses.replace(stages.dev().data_capture, **changes)


def shadow(**changes: Any) -> ShadowSettings:
    """A shadow variant serving the stage's own model unless changed."""
    return ShadowSettings(**({"model_artifact": "model_artifacts/model.tar.gz"} | changes))


def test_unknown_traffic_shifting_is_rejected() -> None:
    assert problems_of(rollout=rollout(traffic_shifting="X")) == [
        "rollout.traffic_shifting='X' is invalid: allowed: one of ['CANARY', 'LINEAR', 'ALL_AT_ONCE']"
    ]


@pytest.mark.parametrize(("shifting", "percent", "allowed"), [("CANARY", 60, "1 to 50"), ("LINEAR", 5, "10 to 50")])
def test_step_outside_sagemakers_bounds_is_rejected(shifting: str, percent: int, allowed: str) -> None:
    assert problems_of(rollout=rollout(traffic_shifting=shifting, step_percent=percent)) == [
        f"rollout.step_percent={percent} is invalid: a {shifting} step is a share of the variant's capacity; "
        f"allowed: {allowed}"
    ]


def test_bake_too_short_for_the_rollback_alarms_is_rejected() -> None:
    assert problems_of(rollout=rollout(wait_interval_seconds=60)) == [
        "rollout.wait_interval_seconds=60 is invalid: allowed: 120 to 3600 (the rollback alarms need two "
        "one-minute datapoints per step)"
    ]


def test_no_bake_without_auto_rollback_is_accepted() -> None:
    settings = dev_with(rollout=rollout(wait_interval_seconds=0, auto_rollback=False))
    assert (settings.rollout.wait_interval_seconds, settings.rollout.auto_rollback) == (0, False)


def test_termination_wait_over_an_hour_is_rejected() -> None:
    # A timeout that covers the waiting, so the termination wait is the one problem.
    changes = rollout(termination_wait_seconds=4000, max_execution_timeout_seconds=14400)
    assert problems_of(rollout=changes) == ["rollout.termination_wait_seconds=4000 is invalid: allowed: 0 to 3600"]


def test_execution_timeout_below_sagemakers_minimum_is_rejected() -> None:
    assert problems_of(rollout=rollout(max_execution_timeout_seconds=500)) == [
        "rollout.max_execution_timeout_seconds=500 is invalid: allowed: 600 to 28800"
    ]


@pytest.mark.parametrize(
    ("changes", "timeout", "waiting", "bakes"),
    [
        ({}, 700, 900, 2),  # canary: 2 x 300 + 300
        ({}, 900, 900, 2),  # the whole waiting time leaves none for the steps themselves
        (
            {"traffic_shifting": "LINEAR", "step_percent": 30, "wait_interval_seconds": 120},
            700,
            780,
            4,
        ),  # 4 x 120 + 300
    ],
)
def test_execution_timeout_within_the_rollouts_waiting_is_rejected(
    changes: dict[str, Any], timeout: int, waiting: int, bakes: int
) -> None:
    assert problems_of(rollout=rollout(max_execution_timeout_seconds=timeout, **changes)) == [
        f"rollout.max_execution_timeout_seconds={timeout} is invalid: the rollout waits {waiting} s ({bakes} bakes "
        f"of wait_interval_seconds plus termination_wait_seconds); allowed: more than {waiting}, at most 28800"
    ]


def test_execution_timeout_just_over_the_waiting_is_accepted() -> None:
    assert dev_with(rollout=rollout(max_execution_timeout_seconds=901)).rollout.max_execution_timeout_seconds == 901


# --- rolling updates ---------------------------------------------------------------------------------------


def rolling(**changes: Any) -> RolloutSettings:
    return rollout(strategy="rolling", **changes)


def test_unknown_rollout_strategy_is_rejected() -> None:
    assert problems_of(rollout=rollout(strategy="canary")) == [
        "rollout.strategy='canary' is invalid: allowed: one of ['blue_green', 'rolling']"
    ]


@pytest.mark.parametrize("percent", [4, 51])
def test_rolling_batch_outside_sagemakers_5_to_50_percent_is_rejected(percent: int) -> None:
    assert problems_of(rollout=rolling(rolling_batch_percent=percent)) == [
        f"rollout.rolling_batch_percent={percent} is invalid: a rolling batch is a share of the variant's instances; "
        "allowed: 5 to 50 (SageMaker's bounds)"
    ]


@pytest.mark.parametrize("percent", [4, 101])
def test_rolling_rollback_batch_outside_5_to_100_percent_is_rejected(percent: int) -> None:
    assert problems_of(rollout=rolling(rolling_rollback_batch_percent=percent)) == [
        f"rollout.rolling_rollback_batch_percent={percent} is invalid: allowed: 5 to 100 (100: the whole old fleet "
        "at once), or None (rolling_batch_percent)"
    ]


def test_rolling_updates_are_refused_where_sagemaker_has_no_guardrails() -> None:
    with pytest.raises(SettingsError) as caught:
        dataclasses.replace(stages.inferentia(), rollout=rolling())
    assert caught.value.problems == [
        "rollout.strategy='rolling' is invalid: the inferentia profile's ml.inf1.xlarge endpoints cannot use "
        "SageMaker's deployment guardrails (an update falls back to blue/green, all at once); allowed: 'blue_green'"
    ]


def test_rolling_updates_are_refused_with_a_shadow_variant() -> None:
    assert problems_of(rollout=rolling(), shadow=shadow()) == [
        "rollout.strategy='rolling' is invalid: SageMaker's rolling deployments exclude multi-variant endpoints, and "
        "a shadow variant is a second variant; allowed: 'blue_green' with a shadow, or shadow=None"
    ]


def test_a_rolling_update_waits_one_bake_per_batch_and_no_termination_wait() -> None:
    # 10 batches of 10% x 300 s = 3000 s, under the default 3600 s timeout; termination_wait_seconds does not count.
    settings = dev_with(rollout=rolling(rolling_batch_percent=10, termination_wait_seconds=3600))
    assert rollout_steps(settings.rollout) == 10
    assert problems_of(rollout=rolling(rolling_batch_percent=5)) == [
        "rollout.max_execution_timeout_seconds=3600 is invalid: the rollout waits 6000 s (20 bakes of "
        "wait_interval_seconds, one per rolling batch); allowed: more than 6000, at most 28800"
    ]


def test_a_rolling_update_longer_than_sagemaker_allows_is_rejected() -> None:
    assert problems_of(rollout=rolling(rolling_batch_percent=5, wait_interval_seconds=1800)) == [
        "rollout.wait_interval_seconds=1800 is invalid: the rollout waits 36000 s (20 bakes of wait_interval_seconds, "
        "one per rolling batch), and SageMaker stops a rollout after at most 28800 s; allowed: shorter bakes or larger "
        "batches, so that the waiting stays under 28800"
    ]


@pytest.mark.parametrize(
    ("changes", "instances", "surge"),
    [
        ({}, 40, 40),  # blue/green: a second fleet
        ({"strategy": "rolling", "rolling_batch_percent": 20}, 40, 8),  # one batch
        ({"strategy": "rolling", "rolling_batch_percent": 10}, 3, 1),  # a share of 3 is still a whole instance
        ({"strategy": "rolling", "rolling_batch_percent": 10, "rolling_rollback_batch_percent": 100}, 40, 40),
        ({"strategy": "rolling", "rolling_batch_percent": 20, "rolling_rollback_batch_percent": 25}, 10, 3),
        ({"strategy": "rolling"}, 0, 0),
    ],
)
def test_update_surge_is_a_fleet_for_blue_green_and_the_larger_batch_for_rolling(
    changes: dict[str, Any], instances: int, surge: int
) -> None:
    assert update_surge_instances(rollout(**changes), instances) == surge


@pytest.mark.parametrize("percent", [0, 101])
def test_capture_sampling_outside_one_to_a_hundred_is_rejected(percent: int) -> None:
    assert problems_of(data_capture=capture(enabled=True, sampling_percent=percent)) == [
        f"data_capture.sampling_percent={percent} is invalid: allowed: 1 to 100"
    ]


def test_capture_retention_of_zero_days_is_rejected() -> None:
    assert problems_of(data_capture=capture(enabled=True, retention_days=0)) == [
        "data_capture.retention_days=0 is invalid: allowed: 1 to 3650"
    ]


def test_shadow_sampling_of_zero_is_rejected() -> None:
    assert problems_of(shadow=shadow(sampling_percent=0)) == ["shadow.sampling_percent=0 is invalid: allowed: 1 to 100"]


def test_shadow_without_instances_is_rejected() -> None:
    assert problems_of(shadow=shadow(instance_count=0)) == ["shadow.instance_count=0 is invalid: allowed: 1 or more"]


def test_shadow_with_a_missing_artifact_is_rejected() -> None:
    assert problems_of(shadow=shadow(model_artifact="model_artifacts/nope.tar.gz")) == [
        "shadow.model_artifact='model_artifacts/nope.tar.gz' is invalid: the artifact does not exist "
        "(run: python scripts/train_model.py)"
    ]


def test_shadow_on_nvme_storage_beside_a_kms_encrypted_variant_is_rejected() -> None:
    assert problems_of(shadow=shadow(instance_type="ml.c5d.xlarge")) == [
        "shadow.instance_type='ml.c5d.xlarge' is invalid: the endpoint config's KmsKeyId covers every variant, so "
        "the shadow needs the same kind of storage as ml.c5.xlarge; allowed: a type without local NVMe storage, "
        "or None"
    ]


def test_a_valid_shadow_is_accepted() -> None:
    settings = dev_with(shadow=shadow(instance_type="ml.c5.2xlarge", instance_count=2, sampling_percent=100))
    assert settings.shadow == shadow(instance_type="ml.c5.2xlarge", instance_count=2, sampling_percent=100)
    assert settings.shadow is not None and settings.shadow.instance_count == 2
