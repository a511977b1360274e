"""The client-path probe in the template (stacks/client_probe.py, monitoring.py): one function per client AZ in
that AZ's subnet as a client of the runtime endpoint, its least privilege, schedule and logs, four alarms per AZ
and the dashboard row, for every stage that turns it on; and its settings' one-line refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.client_probe import MAX_EVENT_AGE_SECONDS, NAMESPACE, PROBE_FILES, SECONDS_PER_SCHEDULED_MINUTE, az_id
from stacks.settings import ClientProbeSettings, SettingsError
from stacks.stages import STAGES, load_stage
from tests.conftest import REPO_ROOT, Synthesized

PROBED = [name for name in STAGES if load_stage(name).client_probe.enabled]


def test_prod_probes_its_clients_path() -> None:
    assert "prod" in PROBED


@pytest.fixture(params=PROBED)
def probed(request: pytest.FixtureRequest, synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage(str(request.param))


def _probe_functions(stage: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        key: value
        for key, value in stage.of_type("AWS::Lambda::Function").items()
        if value["Properties"].get("Handler") == "stacks.handlers.client_probe.handler"
    }


def _ref(value: Any) -> str:
    assert isinstance(value, dict) and set(value) == {"Ref"}, value
    return str(value["Ref"])


def test_one_function_per_client_az_in_that_azs_subnet_with_the_client_group(probed: Synthesized) -> None:
    functions = _probe_functions(probed)
    settings = probed.settings
    assert len(functions) == len(settings.client_azs)
    subnets = probed.of_type("AWS::EC2::Subnet")
    client_group = [key for key in probed.of_type("AWS::EC2::SecurityGroup") if "ClientSecurityGroup" in key]
    placed = {}
    for function in functions.values():
        properties = function["Properties"]
        environment = properties["Environment"]["Variables"]
        ((subnet_ref),) = properties["VpcConfig"]["SubnetIds"]
        subnet = subnets[_ref(subnet_ref)]["Properties"]
        assert subnet["AvailabilityZone"] == environment["PROBE_AZ"]
        assert environment["ZONAL_CIDR"] == subnet["CidrBlock"]
        assert [group["Fn::GetAtt"] for group in properties["VpcConfig"]["SecurityGroupIds"]] == [
            [key, "GroupId"] for key in client_group
        ]
        placed[environment["PROBE_AZ"]] = properties
    assert sorted(placed) == sorted(settings.client_azs)


def test_each_function_sends_the_models_sample_with_the_stages_codec(probed: Synthesized) -> None:
    settings = probed.settings
    manifest = settings.artifact.manifest
    for function in _probe_functions(probed).values():
        environment = function["Properties"]["Environment"]["Variables"]
        assert environment["PROFILE"] == settings.profile
        assert environment["SAMPLE_ROW"] == manifest["sample_payload"]
        assert (environment["OUTPUT_KIND"], environment["OUTPUT_COLUMNS"]) == (
            manifest["output"]["kind"],
            str(manifest["output"]["columns"]),
        )
        assert environment["BURST_SIZE"] == str(settings.client_probe.burst_size)
        assert environment["METRIC_NAMESPACE"] == NAMESPACE
        # The zonal names the client package chooses from, by the function's own AZ (PROBE_AZ).
        names_id, _ = probed.one("Custom::RuntimeZonalDnsNames")
        assert environment["ZONAL_DNS_NAMES"] == {"Fn::GetAtt": [names_id, "Json"]}
        assert "PROBE_ENDPOINT_URL" not in environment
        # No reservation (it can fail the deploy on a small account): a run ends before the next is due.
        assert "ReservedConcurrentExecutions" not in function["Properties"]
        assert (
            function["Properties"]["Timeout"] == SECONDS_PER_SCHEDULED_MINUTE * settings.client_probe.schedule_minutes
        )
        assert function["Properties"]["Timeout"] < 60 * settings.client_probe.schedule_minutes


def test_lambda_neither_retries_a_run_nor_keeps_it_waiting(probed: Synthesized) -> None:
    """EventBridge invokes asynchronously, so Lambda's own defaults (two retries, events kept up to 6 hours) apply
    unless the function's invoke config says otherwise: no retries, and events at most Lambda's minimum age."""
    functions = _probe_functions(probed)
    configs = {
        config["Properties"]["FunctionName"]["Ref"]: config["Properties"]
        for config in probed.of_type("AWS::Lambda::EventInvokeConfig").values()
    }
    assert set(configs) == set(functions)
    for config in configs.values():
        assert (config["MaximumRetryAttempts"], config["Qualifier"]) == (0, "$LATEST")
        assert config["MaximumEventAgeInSeconds"] == MAX_EVENT_AGE_SECONDS == 60  # Lambda's minimum
        assert config["MaximumEventAgeInSeconds"] <= 60 * probed.settings.client_probe.schedule_minutes


def test_the_zip_holds_the_handler_and_the_client_module_only(probed: Synthesized) -> None:
    assets = json.loads((probed.outdir / f"{probed.settings.stack_name}.assets.json").read_text())["files"]
    for function in _probe_functions(probed).values():
        key = function["Properties"]["Code"]["S3Key"]
        folder = probed.outdir / assets[key.removesuffix(".zip")]["source"]["path"]
        files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        assert files == sorted(PROBE_FILES)
        for target, source in PROBE_FILES.items():  # the client package at the top, as Lambda imports it
            assert (folder / target).read_bytes() == (REPO_ROOT / source).read_bytes()


def test_the_role_may_invoke_this_endpoint_through_the_runtime_endpoint_only(probed: Synthesized) -> None:
    roles = {
        key: value for key, value in probed.of_type("AWS::IAM::Role").items() if key.startswith("ClientProbesRole")
    }
    assert len(roles) == len(probed.settings.client_azs)
    caller_policy = [key for key in probed.of_type("AWS::IAM::ManagedPolicy") if key.startswith("CallerPolicy")]
    for role in roles.values():
        assert [_ref(arn) for arn in role["Properties"]["ManagedPolicyArns"]] == caller_policy
        assert "Policies" not in role["Properties"]
    own = [
        value["Properties"]["PolicyDocument"]["Statement"]
        for key, value in probed.of_type("AWS::IAM::ManagedPolicy").items()
        if key.startswith("ClientProbesPolicy")
    ]
    for statements in own:
        actions = {action for statement in statements for action in _list(statement["Action"])}
        assert not any(action.startswith("sagemaker:") for action in actions)  # invoking is the caller policy's
        assert {statement["Sid"] for statement in statements} == {
            "WriteItsLogs",
            "PlaceItsInterfaceInItsSubnet",
            "ManageItsInterfaces",
            "DescribeInterfaces",
        }
        # DeleteNetworkInterface in the form Lambda's VPC page documents: all resource IDs, no condition (a
        # network-interface/* ARN with a condition was refused at function creation for others).
        (manage,) = [statement for statement in statements if statement["Sid"] == "ManageItsInterfaces"]
        assert "ec2:DeleteNetworkInterface" in _list(manage["Action"])
        assert "Condition" not in manage
        (resource,) = _list(manage["Resource"])
        parts = resource["Fn::Join"][1] if isinstance(resource, dict) else [resource]
        assert "".join(part if isinstance(part, str) else "<account>" for part in parts) == (
            f"arn:aws:ec2:{probed.settings.region}:<account>:*/*"
        )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_logs_are_retained_and_encrypted_and_the_schedule_is_not_retried(probed: Synthesized) -> None:
    settings = probed.settings
    groups = {key: value for key, value in probed.of_type("AWS::Logs::LogGroup").items() if "ClientProbesLogs" in key}
    assert len(groups) == len(settings.client_azs)
    for group in groups.values():
        assert group["DeletionPolicy"] == "Retain"
        assert group["Properties"]["RetentionInDays"] == settings.log_retention_days
        assert "KmsKeyId" in group["Properties"]
    rules = {key: value for key, value in probed.of_type("AWS::Events::Rule").items() if "ClientProbesSchedule" in key}
    assert len(rules) == len(settings.client_azs)
    minutes = settings.client_probe.schedule_minutes
    for rule in rules.values():
        expected = f"rate({minutes} minute{'s' if minutes > 1 else ''})"
        assert rule["Properties"]["ScheduleExpression"] == expected
        ((target),) = rule["Properties"]["Targets"]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0


def _client_alarms(stage: Synthesized, az: str) -> dict[str, dict[str, Any]]:
    suffix = az_id(az)
    return {
        name: next(
            alarm["Properties"]
            for key, alarm in stage.of_type("AWS::CloudWatch::Alarm").items()
            if key.startswith(f"Monitoring{name}{suffix}")
        )
        for name in ("ClientLatencyAlarm", "ClientErrorsAlarm", "ClientCrossAzAlarm", "ClientProbeMissingAlarm")
    }


def test_four_alarms_per_az_with_the_reviewed_semantics(probed: Synthesized) -> None:
    settings = probed.settings
    period = 60 * settings.client_probe.schedule_minutes
    # The p99 over a window of whole runs holding the 1,000 calls CloudWatch's rule asks of a p99.
    runs = -(-1000 // settings.client_probe.burst_size)
    window = 60 * settings.client_probe.schedule_minutes * runs
    for az in settings.client_azs:
        alarms = _client_alarms(probed, az)
        semantics = {
            name: (
                alarm["Namespace"],
                alarm["MetricName"],
                alarm.get("ExtendedStatistic") or alarm.get("Statistic"),
                alarm["Period"],
                alarm["ComparisonOperator"],
                alarm["Threshold"],
                (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]),
                alarm["TreatMissingData"],
            )
            for name, alarm in alarms.items()
        }
        assert semantics == {
            "ClientLatencyAlarm": (
                NAMESPACE, "ClientRoundTrip", "p99", window, "GreaterThanThreshold", settings.latency_slo_ms,
                (1, 1), "notBreaching",
            ),
            "ClientErrorsAlarm": (
                NAMESPACE, "ProbeErrors", "Sum", period, "GreaterThanThreshold", 0, (5, 3), "notBreaching",
            ),
            "ClientCrossAzAlarm": (
                NAMESPACE, "CrossAzAnswers", "Maximum", period, "GreaterThanThreshold", 0, (1, 1), "notBreaching",
            ),
            "ClientProbeMissingAlarm": (
                NAMESPACE, "ProbeRequests", "SampleCount", period, "LessThanThreshold", 1, (5, 3), "breaching",
            ),
        }  # fmt: skip
        assert window * settings.client_probe.burst_size // (60 * settings.client_probe.schedule_minutes) >= 1000
        assert alarms["ClientLatencyAlarm"]["EvaluateLowSampleCountPercentile"] == "ignore"
        for alarm in alarms.values():
            dimensions = {item["Name"]: item["Value"] for item in alarm["Dimensions"]}
            assert dimensions["AvailabilityZone"] == az
            assert set(dimensions) == {"EndpointName", "AvailabilityZone"}
            assert alarm["AlarmDescription"].startswith(f"{az}: ")


def test_the_dashboard_shows_client_seen_beside_sagemaker_seen_latency(probed: Synthesized) -> None:
    _, dashboard = probed.one("AWS::CloudWatch::Dashboard")
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = json.loads("".join(part if isinstance(part, str) else '"<token>"' for part in parts).replace('""', '"'))
    titles = [widget["properties"].get("title") for widget in body["widgets"]]
    probe = probed.settings.client_probe
    p99_minutes = probe.schedule_minutes * -(-1000 // probe.burst_size)
    p50_minutes = probe.schedule_minutes * -(-20 // probe.burst_size)
    row = titles.index(
        f"Client-seen latency (ms): p99 over {p99_minutes} min, p50 over {p50_minutes} min; SageMaker-seen"
    )
    assert titles[:2] == ["ModelLatency (ms)", "OverheadLatency (ms)"] and row == 2  # the row right below
    assert titles[row + 1] == "Client path per AZ: probe errors and cross-AZ connections"
    metrics = body["widgets"][row]["properties"]["metrics"]
    lines = json.dumps(metrics)
    for az in probed.settings.client_azs:
        # Each percentile over a period that holds the samples CloudWatch's rule asks of it (1,000 for p99, 20
        # for p50).
        periods = {
            line[-1]["stat"]: line[-1]["period"]
            for line in metrics
            if isinstance(line[-1], dict) and az in line and "ClientRoundTrip" in line
        }
        assert periods == {"p99": 60 * p99_minutes, "p50": 60 * p50_minutes}
    assert "(model + overhead) / 1000" in lines


def test_a_stage_without_the_probe_has_none_of_it(synth_stage: Callable[[str], Synthesized]) -> None:
    dev = synth_stage("dev")
    assert not dev.settings.client_probe.enabled
    assert _probe_functions(dev) == {}
    assert not [key for key in dev.resources if key.startswith(("ClientProbes", "MonitoringClient"))]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"burst_size": 0}, "client_probe.burst_size=0 is invalid: allowed: 1 to 100"),
        ({"burst_size": 101}, "client_probe.burst_size=101 is invalid: allowed: 1 to 100"),
        ({"schedule_minutes": 6}, "client_probe.schedule_minutes=6 is invalid: allowed: 1 to 5"),
    ],
)
def test_bad_probe_settings_are_refused_in_one_line(change: dict[str, int], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        dataclasses.replace(load_stage("prod"), client_probe=ClientProbeSettings(enabled=True, **change))
    assert message in str(raised.value)


def test_the_probe_needs_client_azs() -> None:
    portable = load_stage("portable")
    assert not portable.client_azs
    with pytest.raises(SettingsError) as raised:
        dataclasses.replace(portable, client_probe=ClientProbeSettings(enabled=True))
    assert "client_probe.enabled=True is invalid: the probe runs in each client AZ's subnet" in str(raised.value)


def test_a_sample_row_too_wide_for_lambdas_environment_is_refused(tmp_path: Path) -> None:
    prod = load_stage("prod")
    manifest = dict(prod.artifact.manifest)
    manifest["sample_payload"] = ",".join(["0.123456789"] * 300)  # 3,599 characters
    archive = tmp_path / "model.tar.gz"
    shutil.copyfile(prod.artifact_file, archive)
    (tmp_path / "model-manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SettingsError) as raised:
        dataclasses.replace(prod, model_artifact=str(archive))
    assert "client_probe.enabled=True is invalid: the probe sends the manifest's sample_payload (3599 characters)" in (
        str(raised.value)
    )


def test_the_handler_imports_from_its_zip_alone(tmp_path: Path) -> None:
    # Lambda's runtime has the standard library and botocore, not this repository's virtualenv.
    for target, source in PROBE_FILES.items():
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / source, tmp_path / target)
    # Lambda puts the task root (the unzipped folder) on sys.path; -I -S leave out everything else.
    code = "import sys; sys.path.insert(0, '.'); import stacks.handlers.client_probe as p; print(p.handler.__module__)"
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "stacks.handlers.client_probe"), done.stderr
