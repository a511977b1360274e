"""scripts/rehearse.py, offline: the stand-in for CDK's VpcRestrictDefaultSG handler, the CLI's environment and
where each stage is bootstrapped and deployed.

The rehearsal itself (moto's server, the real CLI) takes about 10 s and runs as `make rehearse`, its own CI job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.responses import BaseResponse

from devtools import rehearsal as rehearse
from stacks.settings import StageSettings
from stacks.stages import STAGES, load_stage

GROUP = "sg-0123456789abcdef0"
STACK_ID = f"arn:aws:cloudformation:{rehearse.DEFAULT_REGION}:{rehearse.ACCOUNT}:stack/RtbInference-dev/0b1c"
PORT = 45000
RESPONSE_URL = f"http://localhost:{PORT}/cloudformation_us-east-1/cfnresponse?stack={STACK_ID}"
EGRESS = {"GroupId": GROUP, "IpPermissions": [{"IpRanges": [{"CidrIp": "0.0.0.0/0"}], "IpProtocol": "-1"}]}
INGRESS = {
    "GroupId": GROUP,
    "IpPermissions": [{"UserIdGroupPairs": [{"GroupId": GROUP, "UserId": rehearse.ACCOUNT}], "IpProtocol": "-1"}],
}


def event(request_type: str = "Create", **extra: Any) -> dict[str, Any]:
    """A custom-resource request as moto sends it (moto sends Create only; the others as CloudFormation does)."""
    return {
        "RequestType": request_type,
        "ServiceToken": f"arn:aws:lambda:{rehearse.DEFAULT_REGION}:{rehearse.ACCOUNT}:function:Provider",
        "ResponseURL": RESPONSE_URL,
        "StackId": STACK_ID,
        "RequestId": "req-1",
        "LogicalResourceId": "NetworkVpcRestrictDefaultSecurityGroupCustomResource491E144D",
        "ResourceType": rehearse.PROVIDER_RESOURCE_TYPE,
        "ResourceProperties": {"ServiceToken": "arn", "DefaultSecurityGroupId": GROUP, "Account": rehearse.ACCOUNT},
        **extra,
    }


def calls(ev: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    return [(c.method, c.params, c.ignore_not_found) for c in rehearse.handler_calls(ev)]


# --- which rules the stand-in revokes or restores, as CDK's index.js does ------------------------------------


def test_create_revokes_the_default_egress_then_ingress_rule_tolerating_missing_ones() -> None:
    assert calls(event()) == [
        ("revoke_security_group_egress", EGRESS, True),
        ("revoke_security_group_ingress", INGRESS, True),
    ]


def test_delete_restores_both_default_rules() -> None:
    assert calls(event("Delete", PhysicalResourceId="req-1")) == [
        ("authorize_security_group_ingress", INGRESS, False),
        ("authorize_security_group_egress", EGRESS, False),
    ]


def test_delete_after_a_failed_create_touches_nothing() -> None:
    assert calls(event("Delete", PhysicalResourceId=rehearse.CREATE_FAILED_MARKER)) == []


def test_update_of_the_same_group_touches_nothing() -> None:
    old = {"DefaultSecurityGroupId": GROUP, "Account": rehearse.ACCOUNT}
    assert calls(event("Update", PhysicalResourceId="req-1", OldResourceProperties=old)) == []


def test_update_to_another_group_restores_the_old_one_then_strips_the_new_one() -> None:
    old_group = "sg-0fedcba9876543210"
    old = {"DefaultSecurityGroupId": old_group, "Account": rehearse.ACCOUNT}
    methods = [(m, p["GroupId"]) for m, p, _ in calls(event("Update", OldResourceProperties=old))]
    assert methods == [
        ("authorize_security_group_ingress", old_group),
        ("authorize_security_group_egress", old_group),
        ("revoke_security_group_egress", GROUP),
        ("revoke_security_group_ingress", GROUP),
    ]


# --- the response body, as CDK's __entrypoint__.js builds it ------------------------------------------------


def test_success_on_create_takes_the_request_id_as_physical_id() -> None:
    assert rehearse.response_body(event()) == {
        "Status": "SUCCESS",
        "Reason": "SUCCESS",
        "StackId": STACK_ID,
        "RequestId": "req-1",
        "PhysicalResourceId": "req-1",
        "LogicalResourceId": "NetworkVpcRestrictDefaultSecurityGroupCustomResource491E144D",
    }


def test_success_keeps_an_existing_physical_id() -> None:
    body = rehearse.response_body(event("Delete", PhysicalResourceId="phys-7"))
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", "phys-7")


def test_failed_create_answers_with_the_create_failed_marker_and_the_reason() -> None:
    body = rehearse.response_body(event(), error="revoke_security_group_egress failed: boom")
    assert body["Status"] == "FAILED"
    assert body["Reason"] == "revoke_security_group_egress failed: boom"
    assert body["PhysicalResourceId"] == rehearse.CREATE_FAILED_MARKER


def test_failed_delete_without_physical_id_answers_with_the_missing_marker() -> None:
    body = rehearse.response_body(event("Delete"), error="boom")
    assert body["PhysicalResourceId"] == rehearse.MISSING_PHYSICAL_ID_MARKER


# --- recognising the one function, and refusing everything else --------------------------------------------


def zipped(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


PROVIDER_FILES = {"__entrypoint__.js": b"entrypoint", "index.js": b"index"}


@pytest.fixture
def provider_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the provider's digests to the stand-in files above (the real asset is not available offline)."""
    from devtools.rehearsal import stand_ins as rehearse  # where provider_mismatch reads the digests

    digests = {name: hashlib.sha256(content).hexdigest() for name, content in PROVIDER_FILES.items()}
    monkeypatch.setattr(rehearse, "PROVIDER_CODE_SHA256", digests)


def provider(**overrides: Any) -> SimpleNamespace:
    """A moto LambdaFunction, as far as the dispatcher reads it."""
    attributes = {
        "function_name": "RtbInference-dev-CustomVpcRestrictDefaultSGCustomResourceProviderHandler-X",
        "handler": rehearse.PROVIDER_HANDLER,
        "description": rehearse.PROVIDER_DESCRIPTION,
        "code_bytes": zipped(PROVIDER_FILES),
    }
    return SimpleNamespace(**{**attributes, **overrides})


@pytest.mark.usefixtures("provider_digests")
def test_the_provider_is_recognised() -> None:
    fn = provider()
    assert rehearse.provider_mismatch(handler=fn.handler, description=fn.description, code_zip=fn.code_bytes) is None


@pytest.mark.usefixtures("provider_digests")
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"handler": "index.handler"}, "handler 'index.handler'"),
        ({"description": "Lambda function for something else"}, "description"),
        ({"code_bytes": zipped({**PROVIDER_FILES, "index.js": b"changed"})}, "code differs"),
        ({"code_bytes": zipped({**PROVIDER_FILES, "extra.js": b""})}, "code differs"),
        ({"code_bytes": b"not a zip"}, "not a zip"),
    ],
)
def test_anything_else_is_not_the_provider(overrides: dict[str, Any], reason: str) -> None:
    fn = provider(**overrides)
    mismatch = rehearse.provider_mismatch(handler=fn.handler, description=fn.description, code_zip=fn.code_bytes)
    assert mismatch is not None
    assert reason in mismatch


class FakeEc2:
    """Records calls; raises the ClientError given for a method."""

    def __init__(self, errors: Mapping[str, str] | None = None) -> None:
        self.errors = dict(errors or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        def call(**params: Any) -> dict[str, Any]:
            self.calls.append((method, params))
            if method in self.errors:
                raise ClientError({"Error": {"Code": self.errors[method], "Message": "no"}}, method)
            return {}

        return call


def stand_in(ec2: FakeEc2) -> tuple[rehearse.LambdaStandIn, list[tuple[str, Mapping[str, Any]]]]:
    sent: list[tuple[str, Mapping[str, Any]]] = []
    return rehearse.LambdaStandIn(ec2=ec2, port=PORT, send=lambda url, body: sent.append((url, body))), sent


@pytest.mark.usefixtures("provider_digests")
def test_the_stand_in_strips_the_group_and_answers_success() -> None:
    ec2 = FakeEc2(errors={"revoke_security_group_ingress": "InvalidPermission.NotFound"})
    dispatcher, sent = stand_in(ec2)
    assert dispatcher(provider(), event()) == ("null", False, "")
    assert [method for method, _ in ec2.calls] == ["revoke_security_group_egress", "revoke_security_group_ingress"]
    assert sent == [(RESPONSE_URL, rehearse.response_body(event()))]
    assert dispatcher.failures == []
    dispatcher.raise_if_failed()
    answer = dispatcher.answers["NetworkVpcRestrictDefaultSecurityGroupCustomResource491E144D"]
    assert answer.status == "SUCCESS"


@pytest.mark.usefixtures("provider_digests")
def test_a_failing_ec2_call_answers_failed_and_fails_the_rehearsal() -> None:
    dispatcher, sent = stand_in(FakeEc2(errors={"revoke_security_group_egress": "InvalidGroup.NotFound"}))
    _, errored, _ = dispatcher(provider(), event())
    assert errored
    assert [body["Status"] for _, body in sent] == ["FAILED"]
    with pytest.raises(rehearse.RehearsalError, match=r"answered FAILED.*InvalidGroup\.NotFound"):
        dispatcher.raise_if_failed()


@pytest.mark.usefixtures("provider_digests")
def test_an_unknown_function_is_refused_without_any_call_or_answer() -> None:
    ec2 = FakeEc2()
    dispatcher, sent = stand_in(ec2)
    _, errored, _ = dispatcher(provider(function_name="SomethingElse", handler="index.handler"), event())
    assert errored
    assert (ec2.calls, sent) == ([], [])
    with pytest.raises(rehearse.RehearsalError, match=r"SomethingElse.*no stand-in"):
        dispatcher.raise_if_failed()


@pytest.mark.usefixtures("provider_digests")
@pytest.mark.parametrize(
    "payload",
    [
        {"key": "a plain Invoke call"},
        event() | {"ResourceType": "Custom::SomethingElse"},
    ],
)
def test_the_provider_invoked_with_anything_but_its_own_request_is_refused(payload: dict[str, Any]) -> None:
    ec2 = FakeEc2()
    dispatcher, sent = stand_in(ec2)
    assert dispatcher(provider(), payload)[1]
    assert (ec2.calls, sent) == ([], [])
    with pytest.raises(rehearse.RehearsalError, match="something other than"):
        dispatcher.raise_if_failed()


@pytest.mark.parametrize(
    "url",
    [
        f"http://host.docker.internal:{PORT}/cloudformation_us-east-1/cfnresponse",
        f"https://localhost:{PORT}/x",
        f"http://localhost:{PORT + 1}/x",
        "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",
    ],
)
def test_responses_go_only_to_this_rehearsals_server(url: str) -> None:
    with pytest.raises(rehearse.RehearsalError, match="refusing"):
        rehearse.check_response_url(url, PORT)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_responses_to_the_loopback_server_are_allowed(host: str) -> None:
    rehearse.check_response_url(f"http://{host}:{PORT}/cloudformation_us-east-1/cfnresponse?stack=x", PORT)


def test_skipped_types_are_judged_per_stack() -> None:
    skipped = {"AWS::S3::BucketPolicy", "AWS::EC2::SecurityGroupEgress", "AWS::Foo::Bar"}
    app_types = {"AWS::EC2::VPC", "AWS::EC2::SecurityGroupEgress", "AWS::Foo::Bar"}
    # A type the app stack does not have is not judged there; one it has and moto may not skip is.
    assert rehearse.unexpected_skips(skipped, app_types, rehearse.KNOWN_SKIPPED_APP) == ["AWS::Foo::Bar"]
    assert rehearse.unexpected_skips({"AWS::S3::BucketPolicy"}, None, rehearse.KNOWN_SKIPPED_BOOTSTRAP) == []
    assert rehearse.unexpected_skips(skipped, None, rehearse.KNOWN_SKIPPED_BOOTSTRAP) == [
        "AWS::EC2::SecurityGroupEgress",
        "AWS::Foo::Bar",
    ]


# --- the CLI's environment ----------------------------------------------------------------------------------

REAL_AWS = {
    "AWS_PROFILE": "prod-admin",
    "AWS_DEFAULT_PROFILE": "prod-admin",
    "AWS_ACCESS_KEY_ID": "AKIAREALREALREALREAL",
    "AWS_SECRET_ACCESS_KEY": "real-secret",
    "AWS_SESSION_TOKEN": "real-token",
    "AWS_SECURITY_TOKEN": "real-token",
    "AWS_ROLE_ARN": "arn:aws:iam::999999999999:role/deployer",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/creds",
    "AWS_CONFIG_FILE": "/home/me/.aws/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/home/me/.aws/credentials",
    "AWS_ENDPOINT_URL_S3": "https://s3.eu-central-1.amazonaws.com",
    "AWS_REGION": "eu-central-1",
    "AWS_CA_BUNDLE": "/etc/ssl/corp.pem",
    "CDK_DEFAULT_ACCOUNT": "999999999999",
    "CDK_DEPLOY_REGION": "eu-central-1",
    "CDK_HOME": "/home/me/.cdk",
    "HTTPS_PROXY": "http://corp-proxy:3128",
    "http_proxy": "http://corp-proxy:3128",
    "NO_PROXY": "*",
}


# A stage of the user's outside us-east-1: dev, copied to eu-west-1 (as one would in stacks/stages.py).
EU_REGION = "eu-west-1"


@pytest.fixture(scope="module")
def eu_stage() -> StageSettings:
    return dataclasses.replace(
        load_stage("dev"), name="eu", region=EU_REGION, client_azs=(f"{EU_REGION}a", f"{EU_REGION}b")
    )


@pytest.fixture
def cli_env(eu_stage: StageSettings) -> dict[str, str]:
    base = {"PATH": "/usr/bin", "HOME": "/home/me", "LANG": "C.UTF-8", **REAL_AWS}
    return rehearse.isolated_environment(
        base,
        endpoint_url=f"http://localhost:{PORT}",
        region=rehearse.target_of(eu_stage).region,
        cdk_home=Path("/tmp/r/cdk-home"),
        dead_proxy="http://127.0.0.1:9",
    )


def test_no_real_aws_or_cdk_setting_reaches_the_cli(cli_env: dict[str, str]) -> None:
    leaked = {name: cli_env[name] for name in cli_env if cli_env[name] in REAL_AWS.values()}
    assert leaked == {}
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        assert name not in cli_env
    assert not [name for name in cli_env if name.startswith("AWS_ENDPOINT_URL_")]
    assert not [name for name in cli_env if name.startswith("AWS_CONTAINER_")]


def test_the_cli_gets_fake_credentials_aimed_at_moto(cli_env: dict[str, str]) -> None:
    expected = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        # The stage's region, not the caller's (eu-central-1): an environment-agnostic stack goes there too.
        "AWS_REGION": EU_REGION,
        "AWS_DEFAULT_REGION": EU_REGION,
        "AWS_ENDPOINT_URL": f"http://localhost:{PORT}",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_HOME": "/tmp/r/cdk-home",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    assert {name: cli_env.get(name) for name in expected} == expected
    assert {name for name in cli_env if name.startswith("AWS_")} == {
        name for name in expected if name.startswith("AWS_")
    }


def test_only_localhost_is_reached_directly_the_rest_hits_a_dead_proxy(cli_env: dict[str, str]) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert cli_env[name] == "http://127.0.0.1:9"
    assert cli_env["NO_PROXY"] == cli_env["no_proxy"] == "localhost,127.0.0.1"


def test_the_pinned_cli_and_node_come_first_on_the_path(cli_env: dict[str, str]) -> None:
    assert cli_env["PATH"].split(":") == [str(rehearse.NODE_BIN), "/usr/bin"]
    assert cli_env["HOME"] == "/home/me"


def test_the_cli_writes_to_the_temporary_output_and_never_looks_anything_up(eu_stage: StageSettings) -> None:
    target = rehearse.target_of(eu_stage)
    (_, bootstrap_args), (_, deploy_args) = rehearse.cli_commands(target, Path("/tmp/r/cdk.out"))
    assert deploy_args[:4] == ["deploy", "RtbInference-eu", "--require-approval", "never"]
    for args in (bootstrap_args, deploy_args):
        assert args[args.index("--output") + 1] == "/tmp/r/cdk.out"
        assert {"--no-lookups", "--no-notices", "stage=eu"} <= set(args)


# --- where each stage is rehearsed --------------------------------------------------------------------------


def test_a_stage_outside_us_east_1_is_bootstrapped_in_its_own_region(eu_stage: StageSettings) -> None:
    """The bug of issue 10: bootstrapping us-east-1 left eu-west-1 without its version parameter."""
    target = rehearse.target_of(eu_stage)
    assert (target.account, target.region, target.stack) == (rehearse.ACCOUNT, EU_REGION, "RtbInference-eu")
    (_, bootstrap_args), _ = rehearse.cli_commands(target, Path("/tmp/r/cdk.out"))
    assert bootstrap_args[:2] == ["bootstrap", f"aws://{rehearse.ACCOUNT}/{EU_REGION}"]
    assert target.runtime_service == f"com.amazonaws.{EU_REGION}.sagemaker.runtime"
    assert target.s3_service == f"com.amazonaws.{EU_REGION}.s3"
    # SageMaker's images live in an account per region: the model must run eu-west-1's.
    assert target.image == f"141502667606.dkr.ecr.{EU_REGION}.amazonaws.com/sagemaker-xgboost:3.2-0"


def _ssm_in(region: str) -> Any:
    return boto3.client("ssm", region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.mark.usefixtures("fake_aws")
def test_the_version_parameter_is_required_in_the_stacks_region(eu_stage: StageSettings) -> None:
    target = rehearse.target_of(eu_stage)
    with mock_aws():
        name, value = rehearse.BOOTSTRAP_VERSION_PARAMETER, "30"
        _ssm_in("us-east-1").put_parameter(Name=name, Value=value, Type="String")
        with pytest.raises(rehearse.RehearsalError, match=rf"no {name} in aws://{rehearse.ACCOUNT}/{EU_REGION}"):
            rehearse.check_bootstrapped(_ssm_in(EU_REGION), target)
        _ssm_in(EU_REGION).put_parameter(Name=name, Value=value, Type="String")
        rehearse.check_bootstrapped(_ssm_in(EU_REGION), target)
    assert name == "/cdk-bootstrap/hnb659fds/version"


@pytest.mark.parametrize("region", ["us-east-1", EU_REGION, "ap-southeast-2"])
def test_custom_resource_answers_name_the_region_moto_files_them_under(region: str) -> None:
    """moto reads the region of an unsigned PUT from the User-Agent; without it every answer lands in us-east-1."""
    url = f"http://localhost:{PORT}/cloudformation_{region}/cfnresponse?stack=arn"
    (user_agent,) = [value for name, value in rehearse.response_opener(url).addheaders if name == "User-Agent"]
    match = BaseResponse.region_from_useragent_regex.search(user_agent)
    assert match is not None and match["region"] == region


def test_an_answer_to_anything_but_motos_response_path_is_refused() -> None:
    with pytest.raises(rehearse.RehearsalError, match="not moto's cfnresponse path"):
        rehearse.response_opener(f"http://localhost:{PORT}/somewhere-else")


def _refusal(settings: StageSettings) -> str | None:
    """Why the rehearsal refuses the stage, from its settings; None if it deploys it."""
    if settings.serving.compiled:
        return "compiles its model with SageMaker Neo"
    if settings.vpc_id is not None:
        return f"uses the existing VPC {settings.vpc_id}"
    if settings.account not in (None, rehearse.ACCOUNT):
        return f"deploys to account {settings.account}"
    return None


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_is_rehearsed_in_its_region_or_refused_with_the_reason(name: str) -> None:
    settings = load_stage(name)
    reason = _refusal(settings)
    if reason is not None:
        with pytest.raises(rehearse.RehearsalError, match=rf"^stage '{name}': .*{reason}"):
            rehearse.target_of(settings)
        return
    target = rehearse.target_of(settings)
    assert target.region == (settings.region or rehearse.DEFAULT_REGION)
    assert target.environment == f"aws://{rehearse.ACCOUNT}/{target.region}"


def test_an_environment_agnostic_stage_goes_to_the_default_or_the_given_region(eu_stage: StageSettings) -> None:
    agnostic = dataclasses.replace(eu_stage, region=None, client_azs=())
    assert rehearse.target_of(agnostic).region == rehearse.DEFAULT_REGION == "us-east-1"
    assert rehearse.target_of(agnostic).image.startswith("683313688378.dkr.ecr.us-east-1.")
    assert rehearse.target_of(agnostic, region=EU_REGION).region == EU_REGION
    assert rehearse.target_of(agnostic, region=EU_REGION).image.startswith(f"141502667606.dkr.ecr.{EU_REGION}.")
    with pytest.raises(rehearse.RehearsalError, match=r"--region xx-nowhere-1: SageMaker publishes no XGBoost"):
        rehearse.target_of(agnostic, region="xx-nowhere-1")


def test_region_is_refused_for_a_stage_that_names_its_own(eu_stage: StageSettings) -> None:
    assert rehearse.target_of(eu_stage, region=EU_REGION).region == EU_REGION
    with pytest.raises(rehearse.RehearsalError, match=r"deploys to eu-west-1: --region applies only"):
        rehearse.target_of(eu_stage, region="us-east-1")


def test_an_unknown_stage_fails_in_one_line() -> None:
    with pytest.raises(rehearse.RehearsalError) as failure:
        rehearse.load_target("no-such-stage")
    assert "\n" not in str(failure.value) and "not defined" in str(failure.value)


def _zip_of(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize("module", ["eni_cleanup", "zonal_dns"])
def test_the_kits_handler_runs_only_if_the_deployed_zip_is_this_checkouts_code(module: str) -> None:
    from devtools.rehearsal.base import REPO_ROOT
    from devtools.rehearsal.stand_ins import KIT_HANDLERS, kit_handler_mismatch
    from stacks.handler_code import handler_files

    assert (module, f"handlers.{module}.handler") in {(m, handler) for handler, (m, _) in KIT_HANDLERS.items()}
    files = {path: (REPO_ROOT / "stacks" / path).read_bytes() for path in handler_files(module)}
    assert f"handlers/{module}.py" in files
    assert kit_handler_mismatch(_zip_of(files), module) is None
    changed = {**files, f"handlers/{module}.py": files[f"handlers/{module}.py"] + b"\n# changed\n"}
    assert "not this checkout's" in str(kit_handler_mismatch(_zip_of(changed), module))
    assert "not a zip" in str(kit_handler_mismatch(b"plain bytes", module))
    other = "zonal_dns" if module == "eni_cleanup" else "eni_cleanup"
    assert "not this checkout's" in str(kit_handler_mismatch(_zip_of(files), other))


def test_moto_endpoints_get_the_dns_entries_aws_lists_and_the_kits_handler_reads_them() -> None:
    from devtools.rehearsal.moto_server import aws_shaped_dns_entries
    from stacks.handlers import zonal_dns

    endpoint = "vpce-0123456789abcdef0"
    entries = aws_shaped_dns_entries(
        "com.amazonaws.eu-west-1.sagemaker.runtime", endpoint, ["eu-west-1b", "eu-west-1a", "eu-west-1b"], True
    )
    names = [entry["dns_name"] for entry in entries]
    domain = "runtime.sagemaker.eu-west-1.vpce.amazonaws.com"
    suffix = names[0].split(".", 1)[0].removeprefix(f"{endpoint}-")
    assert names == [
        f"{endpoint}-{suffix}.{domain}",
        f"{endpoint}-{suffix}-eu-west-1a.{domain}",
        f"{endpoint}-{suffix}-eu-west-1b.{domain}",
        "runtime.sagemaker.eu-west-1.amazonaws.com",
    ]
    found = zonal_dns.zonal_names(names, endpoint, ["eu-west-1a", "eu-west-1b"])
    assert found == {"eu-west-1a": names[1], "eu-west-1b": names[2]}
    assert zonal_dns.regional_name(names, endpoint, found) == names[0]


def test_the_rehearsal_fails_when_the_zonal_output_does_not_name_each_azs_entry() -> None:
    from devtools.rehearsal.base import RehearsalError
    from devtools.rehearsal.verify import check_zonal_names

    names = {"us-east-1a": "vpce-1-s-us-east-1a.x", "us-east-1b": "vpce-1-s-us-east-1b.x"}
    runtime = {
        "VpcEndpointId": "vpce-1",
        "SubnetIds": ["s-a", "s-b"],
        "DnsEntries": [{"DnsName": n} for n in names.values()],
    }

    class Ec2:
        def describe_subnets(self, SubnetIds: list[str]) -> dict[str, Any]:  # noqa: N803 (boto3's keyword)
            return {"Subnets": [{"SubnetId": s, "AvailabilityZone": f"us-east-1{s[-1]}"} for s in SubnetIds]}

    def stack(published: dict[str, str]) -> dict[str, Any]:
        return {"Outputs": [{"OutputKey": "RuntimeZonalDnsNames", "OutputValue": json.dumps(published)}]}

    assert check_zonal_names(stack(names), runtime, Ec2()).startswith("us-east-1a, us-east-1b: ")
    swapped = {"us-east-1a": names["us-east-1b"], "us-east-1b": names["us-east-1a"]}
    with pytest.raises(RehearsalError):
        check_zonal_names(stack(swapped), runtime, Ec2())
    with pytest.raises(RehearsalError):
        check_zonal_names({"Outputs": []}, runtime, Ec2())


def test_the_rehearsal_fails_when_the_shards_were_not_created_in_their_chains_order() -> None:
    from devtools.rehearsal.base import RehearsalError
    from devtools.rehearsal.verify import check_endpoint_order, endpoint_chain

    def endpoint(*waits_for: str) -> dict[str, Any]:
        return {"Type": "AWS::SageMaker::Endpoint", "DependsOn": ["Policy", *waits_for]}

    # Listed last to first: the chain, not the listing, gives the order.
    template = {"Resources": {"Two": endpoint("One"), "One": endpoint("Zero"), "Zero": endpoint(), "Policy": {}}}
    chain = endpoint_chain(template)
    assert chain == ["Zero", "One", "Two"]
    physical = {key: f"arn:aws:sagemaker:us-east-1:{rehearse.ACCOUNT}:endpoint/e-{key.lower()}" for key in chain}
    created = ["other-stack-endpoint", "e-zero", "e-one", "e-two"]
    assert check_endpoint_order(chain, physical, created) == ["e-zero", "e-one", "e-two"]
    with pytest.raises(RehearsalError, match=r"created in the order \['Zero', 'Two', 'One'\], not the DependsOn"):
        check_endpoint_order(chain, physical, ["e-zero", "e-two", "e-one"])
    # Two shards that wait for the same one would update together: not a chain.
    template["Resources"]["Two"] = endpoint("Zero")
    with pytest.raises(RehearsalError, match="do not wait for each other in one DependsOn chain"):
        endpoint_chain(template)
