"""Endpoint shards: N identical endpoints behind the one runtime interface endpoint, each with its own model, config,
autoscaling, alarms and dashboard rows, updated one after another (DependsOn), published as EndpointNames."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.rehearsal.base import RehearsalError
from devtools.rehearsal.verify import endpoint_chain
from stacks.settings import MAX_INSTANCES, MAX_SHARDS, RolloutSettings, SettingsError, ShadowSettings, StageSettings
from stacks.stages import STAGES, load_stage

from .conftest import Synthesized, synthesize
from .test_inference_stack import STABLE_LOGICAL_IDS

SHARDED = [name for name in STAGES if load_stage(name).shards > 1]
ONE_ENDPOINT = [name for name in STAGES if load_stage(name).shards == 1]
# CloudFormation's quota of resources in one template, and IAM's of characters (whitespace not counted) in one
# managed policy: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html and
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
CFN_MAX_RESOURCES = 500
IAM_MANAGED_POLICY_MAX_CHARS = 6144


def test_a_stage_with_shards_is_shipped() -> None:
    assert SHARDED, "a stage with shards (stacks/stages.py: scale) is synthesized, linted and rehearsed"
    assert ONE_ENDPOINT


@pytest.fixture(params=SHARDED)
def sharded(request: pytest.FixtureRequest, synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage(str(request.param))


def _endpoints(stage: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """(logical id, properties) of each shard's endpoint, shard 0 first (by the names the settings give them)."""
    by_name = {
        resource["Properties"]["EndpointName"]: (key, resource["Properties"])
        for key, resource in stage.of_type("AWS::SageMaker::Endpoint").items()
    }
    assert sorted(by_name) == sorted(stage.settings.endpoint_names)
    return [by_name[name] for name in stage.settings.endpoint_names]


def _depends_on(resource: dict[str, Any]) -> set[str]:
    depends_on = resource.get("DependsOn", [])
    return {depends_on} if isinstance(depends_on, str) else set(depends_on)


# --- one identical endpoint per shard ------------------------------------------------------------------------


def test_each_shard_has_its_own_model_config_and_endpoint_all_alike(sharded: Synthesized) -> None:
    shards = sharded.settings.shards
    for kind in ("AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint"):
        assert len(sharded.of_type(kind)) == shards, kind
    configs = []
    for _, endpoint in _endpoints(sharded):
        config = sharded.resources[endpoint["EndpointConfigName"]["Fn::GetAtt"][0]]["Properties"]
        (variant,) = config["ProductionVariants"]
        model = sharded.resources[variant["ModelName"]["Fn::GetAtt"][0]]["Properties"]
        others = {key: value for key, value in variant.items() if key != "ModelName"}  # the shared template stays whole
        configs.append((others, json.dumps(model, sort_keys=True)))
    # The same variant (type, counts, routing) and the same model in every shard; only the names differ.
    assert all(config == configs[0] for config in configs)
    assert configs[0][0]["InitialInstanceCount"] == sharded.settings.initial_instance_count


def test_shard_names_extend_shard_0s_which_keeps_the_one_endpoint_name(sharded: Synthesized) -> None:
    names = [endpoint["EndpointName"] for _, endpoint in _endpoints(sharded)]
    first = sharded.settings.endpoint_name
    assert names == [first, *(f"{first}-shard{index}" for index in range(1, sharded.settings.shards))]


def test_shard_0_keeps_the_logical_ids_of_a_one_endpoint_stage(sharded: Synthesized) -> None:
    """A stage that adds shards keeps its endpoint, scaling and alarms: nothing of shard 0 is replaced."""
    for logical_id, kind in STABLE_LOGICAL_IDS.items():
        if kind in ("AWS::SageMaker::Endpoint", "AWS::ApplicationAutoScaling::ScalableTarget"):
            assert sharded.resources[logical_id]["Type"] == kind
    (first_id, _), *others = _endpoints(sharded)
    assert first_id == "InferenceEndpointA45980A1"
    assert [key for key, _ in others] == [
        key for key in sharded.of_type("AWS::SageMaker::Endpoint") if key.startswith("InferenceShard")
    ]


@pytest.mark.parametrize("name", ONE_ENDPOINT)
def test_a_one_endpoint_stage_has_no_shard_resources_and_no_endpoint_names_output(
    name: str, synth_stage: Callable[[str], Synthesized]
) -> None:
    """With shards=1 the template is the one it always was (the reviewed snapshots, unchanged, prove it whole)."""
    stage = synth_stage(name)
    assert not [key for key in stage.resources if "Shard" in key]
    assert "EndpointNames" not in stage.template_json["Outputs"]


# --- each shard's autoscaling, alarms and dashboard rows ------------------------------------------------------


def test_each_shard_scales_on_its_own_between_the_per_shard_bounds(sharded: Synthesized) -> None:
    scaling = sharded.settings.autoscaling
    targets = {
        target["Properties"]["ResourceId"]["Fn::Join"][1][1]["Fn::GetAtt"][0]: (key, target["Properties"])
        for key, target in sharded.of_type("AWS::ApplicationAutoScaling::ScalableTarget").items()
    }
    assert sorted(targets) == sorted(key for key, _ in _endpoints(sharded))  # one target per shard's endpoint
    for target_id, properties in targets.values():
        assert (properties["MinCapacity"], properties["MaxCapacity"]) == (scaling.min_capacity, scaling.max_capacity)
        policies = [
            policy["Properties"]
            for policy in sharded.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
            if policy["Properties"]["ScalingTargetId"] == {"Ref": target_id}
        ]
        assert [p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] for p in policies] == [
            scaling.invocations_per_instance_target
        ]


def _alarm_endpoints(alarm: dict[str, Any]) -> set[str]:
    """The EndpointName dimensions an alarm's metrics carry."""
    metrics = [m["MetricStat"]["Metric"] for m in alarm["Properties"].get("Metrics", []) if "MetricStat" in m]
    dimensions = [d for metric in metrics for d in metric.get("Dimensions", [])]
    dimensions += alarm["Properties"].get("Dimensions", [])
    return {json.dumps(d["Value"]) for d in dimensions if d["Name"] == "EndpointName"}


def test_each_shard_has_its_own_slo_error_capacity_and_rollback_alarms(sharded: Synthesized) -> None:
    alarms = sharded.of_type("AWS::CloudWatch::Alarm").values()
    for index, name in enumerate(sharded.settings.endpoint_names):
        own = [alarm for alarm in alarms if _alarm_endpoints(alarm) == {json.dumps(name)}]
        # SLO, error rate, capacity (Monitoring) and the new fleet's 5XX and latency (Rollout); each says its shard.
        assert len(own) == 5, (index, name)
        for alarm in own:
            assert alarm["Properties"]["AlarmDescription"].startswith(f"{name}: "), alarm["Properties"]


def test_the_dashboard_has_rows_per_shard_each_titled_with_its_endpoint(sharded: Synthesized) -> None:
    _, dashboard = sharded.one("AWS::CloudWatch::Dashboard")
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = "".join(part if isinstance(part, str) else "<token>" for part in parts)
    titles = [title for title in body.split('"title":"')[1:]]
    for name in sharded.settings.endpoint_names:
        mine = [title for title in titles if title.startswith(f"{name}: ")]
        assert len(mine) == 7, name  # latency (2), traffic and capacity (3), resources (2)
        assert f'"EndpointName","{name}"' in body


def test_every_shards_rollback_alarms_notify_on_call(sharded: Synthesized) -> None:
    (topic_id,) = sharded.of_type("AWS::SNS::Topic")
    for key, alarm in sharded.of_type("AWS::CloudWatch::Alarm").items():
        if "Rollout" in key:
            assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}], key


# --- shard by shard --------------------------------------------------------------------------------------------


def test_each_shards_endpoint_waits_for_the_one_before_it_only(sharded: Synthesized) -> None:
    """Shard k+1's endpoint DependsOn shard k's: CloudFormation updates them one at a time, and a shard whose update
    fails (and rolls back) stops the stack update before the next one starts."""
    endpoints = _endpoints(sharded)
    ids = [key for key, _ in endpoints]
    for index, key in enumerate(ids):
        waits_for = _depends_on(sharded.resources[key]) & set(ids)
        assert waits_for == (set() if index == 0 else {ids[index - 1]}), key
    assert endpoint_chain(sharded.template_json) == ids


def test_the_chain_check_refuses_endpoints_that_update_together(sharded: Synthesized) -> None:
    template = json.loads(json.dumps(sharded.template_json))
    last, _ = _endpoints(sharded)[-1]
    template["Resources"][last]["DependsOn"] = [
        key for key in _depends_on(template["Resources"][last]) if not key.startswith("Inference")
    ]
    with pytest.raises(RehearsalError, match="do not wait for each other in one DependsOn chain"):
        endpoint_chain(template)


# --- outputs and callers ----------------------------------------------------------------------------------------


def test_endpoint_names_lists_every_shard_and_endpoint_name_stays_shard_0(sharded: Synthesized) -> None:
    outputs = sharded.template_json["Outputs"]
    ids = [key for key, _ in _endpoints(sharded)]
    assert outputs["EndpointName"]["Value"] == {"Fn::GetAtt": [ids[0], "EndpointName"]}
    joined = outputs["EndpointNames"]["Value"]["Fn::Join"]
    assert joined[0] == ""
    # A JSON list of each endpoint's name, shard 0 first: '["' name '","' name ... '"]'
    names = [part["Fn::GetAtt"] for part in joined[1] if isinstance(part, dict)]
    assert names == [[key, "EndpointName"] for key in ids]
    text = "".join(
        part if isinstance(part, str) else json.dumps(f"<{part['Fn::GetAtt'][0]}>")[1:-1] for part in joined[1]
    )
    assert json.loads(text) == [f"<{key}>" for key in ids]


# --- the bound on shards ---------------------------------------------------------------------------------------


def _stage(**changes: Any) -> StageSettings:
    return dataclasses.replace(load_stage("dev"), **changes)


def _problems(**changes: Any) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        _stage(**changes)
    return caught.value.problems


@pytest.mark.parametrize("shards", [0, -1, MAX_SHARDS + 1])
def test_shards_outside_1_to_the_bound_are_refused_in_one_line(shards: int) -> None:
    assert _problems(shards=shards) == [
        f"shards={shards} is invalid: allowed: 1 to {MAX_SHARDS} (the kit's bound; each shard runs up to "
        f"{MAX_INSTANCES} instances)"
    ]


@pytest.mark.parametrize("value", [True, 2.0, "3", None])
def test_shards_of_another_type_are_refused(value: object) -> None:
    (problem,) = _problems(shards=value)
    assert problem == f"shards={value!r} is invalid: expected int"


def test_every_shard_name_fits_sagemakers_63_characters_at_the_bounds() -> None:
    """The longest stage name, the longest instance type botocore knows and the most shards give 63 characters."""
    from stacks import catalog

    longest = max(catalog.hosting_instance_types(), key=len)
    settings = dataclasses.replace(load_stage("dev"), name="a" * 24)  # not validated again: only names are read
    object.__setattr__(settings, "instance_type", longest)
    object.__setattr__(settings, "shards", MAX_SHARDS)
    assert max(len(name) for name in settings.endpoint_names) <= 63


def test_the_name_rule_judges_the_longest_shards_endpoint_name() -> None:
    name = "a" * 24
    too_long = "ml.c5.xlarge" + "x" * 10  # not a real type (refused on its own), only long enough
    problems = _problems(name=name, instance_type=too_long, shards=3)
    longest = f"RtbInference-{name}-c5-xlarge{'x' * 10}-shard2"
    assert len(longest) == 64
    assert problems[0] == (
        f"name={name!r} is invalid: the endpoint name {longest!r} would have 64 characters; allowed: a name that "
        "keeps it within SageMaker's 63"
    )
    assert not [p for p in _problems(name=name, instance_type=too_long, shards=1) if p.startswith("name=")]


def test_counts_are_per_shard_so_a_sharded_stage_may_run_more_than_the_per_endpoint_bound() -> None:
    settings = _stage(
        shards=3,
        initial_instance_count=MAX_INSTANCES,
        autoscaling=dataclasses.replace(load_stage("dev").autoscaling, min_capacity=2, max_capacity=MAX_INSTANCES),
    )
    assert settings.shards * settings.autoscaling.max_capacity == 3 * MAX_INSTANCES


def test_rolling_updates_refuse_a_shadow_variant_in_one_line() -> None:
    shadow = ShadowSettings(model_artifact="model_artifacts/model.tar.gz")
    assert _problems(shards=2, shadow=shadow, rollout=RolloutSettings(strategy="rolling")) == [
        "rollout.strategy='rolling' is invalid: SageMaker's rolling deployments exclude multi-variant endpoints, and "
        "a shadow variant is a second variant; allowed: 'blue_green' with a shadow, or shadow=None"
    ]


# --- a stage at the bound fits CloudFormation's and IAM's limits ----------------------------------------------


def _worst_case(node: Any, stack_name: str) -> Any:
    """``node`` with every Ref and GetAtt replaced by the longest text it can resolve to here: a generated name is
    the stack's name, the logical id and 13 random characters (CloudFormation's form)."""
    if isinstance(node, list):
        return [_worst_case(item, stack_name) for item in node]
    if not isinstance(node, dict):
        return node
    if "Ref" in node:
        name = node["Ref"]
        pseudo = {"AWS::AccountId": "1" * 12, "AWS::Partition": "aws-us-gov", "AWS::Region": "ap-southeast-7"}
        return pseudo.get(name, f"{stack_name}-{name}-{'X' * 13}")
    if "Fn::GetAtt" in node:
        return f"{stack_name}-{node['Fn::GetAtt'][0]}-{'X' * 13}"
    if "Fn::Join" in node:
        separator, parts = node["Fn::Join"]
        return str(separator).join(str(_worst_case(part, stack_name)) for part in parts)
    return {key: _worst_case(value, stack_name) for key, value in node.items()}


@pytest.mark.slow
def test_a_prod_like_stage_at_the_shard_bound_fits_cloudformation_and_iam(tmp_path: Path) -> None:
    """prod (probes in three AZs, data capture, scheduled capacity) with the most shards the settings allow."""
    settings = dataclasses.replace(load_stage("prod"), shards=MAX_SHARDS)
    stage = synthesize(settings, tmp_path)
    assert len(stage.resources) < CFN_MAX_RESOURCES
    assert len(stage.of_type("AWS::SageMaker::Endpoint")) == MAX_SHARDS
    for key, policy in stage.of_type("AWS::IAM::ManagedPolicy").items():
        document = _worst_case(policy["Properties"]["PolicyDocument"], settings.stack_name)
        assert len(json.dumps(document, separators=(",", ":"))) < IAM_MANAGED_POLICY_MAX_CHARS, key
    # Each shard adds one widget row set; a dashboard holds at most 100 widgets in CloudWatch's oldest stated limit.
    _, dashboard = stage.one("AWS::CloudWatch::Dashboard")
    widgets = json.dumps(dashboard["Properties"]["DashboardBody"]).count('\\"type\\":\\"metric\\"')
    assert 7 * MAX_SHARDS <= widgets <= 100
    # The probes call shard 0 (docs/settings.md#shards): the client path every shard shares.
    probes = [f for f in stage.of_type("AWS::Lambda::Function").values() if "ENDPOINT_NAME" in json.dumps(f)]
    assert probes and {f["Properties"]["Environment"]["Variables"]["ENDPOINT_NAME"] for f in probes} == {
        settings.endpoint_name
    }
