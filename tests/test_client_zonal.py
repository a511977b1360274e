"""The client's zonal path (issue 21): it finds its AZ (ECS task metadata v4, else IMDSv2), calls its AZ's zonal
vpce name over verified TLS, refuses names that are not zonal runtime names, and says so when it falls back to
the regional name (ZonalFallbackWarning and a log record). All against local servers: nothing leaves 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import socket
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
import trustme
from botocore.exceptions import SSLError

import rtb_client
from rtb_client import (
    ECS_METADATA_VARIABLE,
    ModelSchema,
    ZonalFallbackWarning,
    availability_zone,
    predict,
    regional_runtime_url,
    runtime_client,
    runtime_endpoint_url,
    zonal_runtime_client,
)

from .local_tls import AZS, NAMES, REGION, Route, endpoint, serving, zonal

# Three features named as no model of the kit names them: the client assumes nothing of the sample model.
SCHEMA = ModelSchema(("a", "b", "c"), "probability", 1)
# Past any stall of a busy machine: these tests are about where calls go, not how fast.
PATIENT: dict[str, Any] = {"connect_timeout": 30.0, "read_timeout": 30.0}


# --- TLS to the zonal name ------------------------------------------------------------------------------


@pytest.mark.usefixtures("offline_aws")
def test_predict_reaches_the_zonal_name_over_verified_tls_with_that_name_as_host_and_sni(
    ca: trustme.CA, ca_file: str, resolve: Callable[[str, int], None]
) -> None:
    name = NAMES["us-east-1b"]
    url = runtime_endpoint_url(REGION, NAMES, az="us-east-1b")
    assert url == f"https://{name}"
    with endpoint(ca, certified_for=name, answer=b"0.25\n") as local:
        resolve(name, local.port)
        client = runtime_client(region=REGION, endpoint_url=url, verify=ca_file, **PATIENT)
        try:
            assert predict(client, "ep", [[1.0, 2.0, 3.0]], SCHEMA) == [0.25]
        finally:
            client.close()
    ((method, path, headers, body),) = local.seen.requests
    assert (method, path, body) == ("POST", "/endpoints/ep/invocations", b"1.0,2.0,3.0\n")
    assert headers["host"] == name
    assert local.seen.server_names == [name]
    # Signed for SageMaker in the Region with the fake static credentials: the vpce name changes only the host.
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDZONALTEST/")
    assert f"/{REGION}/sagemaker/aws4_request" in headers["authorization"]


@pytest.mark.parametrize(
    "certified_for",
    [NAMES["us-east-1a"], zonal("us-east-1b", region="us-west-2")],
    ids=["another-az", "another-region"],
)
@pytest.mark.usefixtures("offline_aws")
def test_a_certificate_for_another_zonal_name_is_refused_by_tls_verification(
    certified_for: str, ca: trustme.CA, ca_file: str, resolve: Callable[[str, int], None]
) -> None:
    name = NAMES["us-east-1b"]
    with endpoint(ca, certified_for=certified_for, answer=b"0.25\n") as local:
        resolve(name, local.port)
        client = runtime_client(
            region=REGION, endpoint_url=f"https://{name}", verify=ca_file, max_attempts=1, **PATIENT
        )
        try:
            # The same CA signed it: only the name differs, and the error says the name is not the certificate's.
            with pytest.raises(SSLError, match=re.escape(f"certificate is not valid for '{name}'")):
                predict(client, "ep", [[1.0, 2.0, 3.0]], SCHEMA)
        finally:
            client.close()
    assert local.seen.server_names == [name]
    assert local.seen.requests == []  # nothing was sent over the refused connection


@pytest.mark.usefixtures("offline_aws")
def test_a_certificate_for_the_right_name_from_another_ca_is_refused(
    ca_file: str, resolve: Callable[[str, int], None]
) -> None:
    name = NAMES["us-east-1b"]
    with endpoint(trustme.CA(), certified_for=name, answer=b"0.25\n") as local:
        resolve(name, local.port)
        client = runtime_client(
            region=REGION, endpoint_url=f"https://{name}", verify=ca_file, max_attempts=1, **PATIENT
        )
        try:
            with pytest.raises(SSLError, match="certificate verify failed"):
                predict(client, "ep", [[1.0, 2.0, 3.0]], SCHEMA)
        finally:
            client.close()
    assert local.seen.requests == []
    assert len(local.seen.handshake_failures) == 1  # the client broke off the handshake


# --- availability_zone: ECS task metadata v4, else IMDSv2 -------------------------------------------------

TOKEN = "AQAEAFakeImdsSessionToken=="


def imds(az: str = "us-east-1b") -> Route:
    """IMDS as on an instance that requires IMDSv2: a GET without the session token is 401 Unauthorized."""

    def route(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        if method == "PUT" and path == "/latest/api/token":
            ttl = headers.get("x-aws-ec2-metadata-token-ttl-seconds", "")
            return (200, TOKEN.encode()) if ttl.isdigit() and 1 <= int(ttl) <= 21600 else (400, b"")
        if method == "GET" and path.startswith("/latest/meta-data/"):
            if headers.get("x-aws-ec2-metadata-token") != TOKEN:
                return 401, b""
            if path == "/latest/meta-data/placement/availability-zone":
                return 200, az.encode()
        return 404, b""

    return route


def ecs_task(task: dict[str, Any] | bytes) -> Route:
    body = task if isinstance(task, bytes) else json.dumps(task).encode()
    return lambda method, path, _headers: (200, body) if (method, path) == ("GET", "/v4/abc-123/task") else (404, b"")


FARGATE_TASK = {"Cluster": "default", "LaunchType": "FARGATE", "AvailabilityZone": "us-east-1c"}
EC2_TASK = {"Cluster": "default", "LaunchType": "EC2"}  # ECS on EC2 instances: no AvailabilityZone


def test_imdsv2_gives_the_instances_az_with_a_session_token() -> None:
    with serving(imds()) as server:
        assert availability_zone(environ={}, imds_url=server.url, timeout=30.0) == "us-east-1b"
        # The stand-in is strict as IMDSv2-only instances are: no token, no metadata.
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30.0)
        connection.request("GET", "/latest/meta-data/placement/availability-zone")
        assert connection.getresponse().status == 401
        connection.close()
    (put, get, _) = server.seen.requests
    assert (put[0], put[1]) == ("PUT", "/latest/api/token")
    assert "x-aws-ec2-metadata-token" not in put[2]
    assert (get[0], get[1], get[2]["x-aws-ec2-metadata-token"]) == (
        "GET",
        "/latest/meta-data/placement/availability-zone",
        TOKEN,
    )


def test_ecs_task_metadata_is_asked_first_when_its_variable_is_set() -> None:
    with serving(ecs_task(FARGATE_TASK)) as ecs, serving(imds()) as instance:
        environ = {ECS_METADATA_VARIABLE: f"{ecs.url}/v4/abc-123"}
        assert availability_zone(environ=environ, imds_url=instance.url, timeout=30.0) == "us-east-1c"
    assert [(method, path) for method, path, _, _ in ecs.seen.requests] == [("GET", "/v4/abc-123/task")]
    assert instance.seen.requests == []


def test_a_task_on_ec2_instances_without_az_in_its_metadata_asks_the_instance() -> None:
    with serving(ecs_task(EC2_TASK)) as ecs, serving(imds("us-east-1a")) as instance:
        environ = {ECS_METADATA_VARIABLE: f"{ecs.url}/v4/abc-123"}
        assert availability_zone(environ=environ, imds_url=instance.url, timeout=30.0) == "us-east-1a"
    assert len(ecs.seen.requests) == 1
    assert [method for method, _, _, _ in instance.seen.requests] == ["PUT", "GET"]


@contextmanager
def silent() -> Iterator[str]:
    """A server that accepts connections (the kernel completes them into the listen backlog) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@contextmanager
def refused() -> Iterator[str]:
    """A port bound but never listening: every connection to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


def test_a_metadata_server_that_never_answers_gives_none() -> None:
    # The default timeout: discovery must give up by itself (how long it takes is not asserted).
    with silent() as ecs, silent() as instance:
        assert availability_zone(environ={}, imds_url=instance) is None
        assert availability_zone(environ={ECS_METADATA_VARIABLE: f"{ecs}/v4/abc-123"}, imds_url=instance) is None


def test_a_refused_metadata_port_gives_none() -> None:
    with refused() as ecs, refused() as instance:
        assert availability_zone(environ={}, imds_url=instance, timeout=30.0) is None
        environ = {ECS_METADATA_VARIABLE: f"{ecs}/v4/abc-123"}
        assert availability_zone(environ=environ, imds_url=instance, timeout=30.0) is None


def _imds_answering(status: int, az_text: bytes) -> Route:
    strict = imds()

    def route(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        if path == "/latest/meta-data/placement/availability-zone":
            return status, az_text
        return strict(method, path, headers)

    return route


@pytest.mark.parametrize(
    ("route", "ecs_route"),
    [
        (_imds_answering(200, b"<html>captive portal</html>"), None),
        (_imds_answering(500, b"us-east-1b"), None),
        (lambda _m, _p, _h: (403, b""), None),  # no token for us
        (lambda _m, _p, _h: (404, b""), ecs_task(b"not json")),
        (lambda _m, _p, _h: (404, b""), ecs_task({"AvailabilityZone": ["us-east-1a"]})),
    ],
    ids=["not-an-az", "server-error", "token-refused", "ecs-not-json", "ecs-az-not-a-name"],
)
def test_answers_that_are_not_an_az_name_give_none(route: Route, ecs_route: Route | None) -> None:
    with serving(route) as instance, serving(ecs_route or route) as ecs:
        environ = {ECS_METADATA_VARIABLE: f"{ecs.url}/v4/abc-123"} if ecs_route else {}
        assert availability_zone(environ=environ, imds_url=instance.url, timeout=30.0) is None
    assert instance.seen.requests or ecs.seen.requests  # it did ask


# --- runtime_endpoint_url: its AZ's zonal name, else the regional name with a warning ---------------------


def _shuffled(seed: int) -> dict[str, str]:
    items = list(NAMES.items())
    random.Random(seed).shuffle(items)
    return dict(items)


@pytest.mark.parametrize("seed", range(3))
def test_each_az_gets_its_own_zonal_name_from_a_mapping_or_the_stack_outputs_json(seed: int) -> None:
    mapping = _shuffled(seed)
    for az in AZS:
        assert runtime_endpoint_url(REGION, mapping, az=az) == f"https://{NAMES[az]}"
        assert runtime_endpoint_url(REGION, json.dumps(mapping), az=az) == f"https://{NAMES[az]}"


def test_the_az_is_discovered_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []

    def discovered() -> str:
        asked.append(True)
        return "us-east-1c"

    monkeypatch.setattr(rtb_client.zonal, "availability_zone", discovered)
    assert runtime_endpoint_url(REGION, NAMES) == f"https://{NAMES['us-east-1c']}"
    assert runtime_endpoint_url(REGION, NAMES, az="us-east-1a") == f"https://{NAMES['us-east-1a']}"
    assert asked == [True]  # once: a given AZ is not rediscovered


def test_the_zonal_path_warns_and_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with warnings.catch_warnings(), caplog.at_level(logging.DEBUG, logger=rtb_client.logger.name):
        warnings.simplefilter("error")
        assert runtime_endpoint_url(REGION, NAMES, az="us-east-1a").startswith("https://vpce-")
    assert caplog.records == []


def test_an_az_without_a_zonal_name_falls_back_to_the_regional_name_with_a_warning_and_a_log_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger=rtb_client.logger.name),
        pytest.warns(ZonalFallbackWarning, match="no zonal name for us-east-1d") as caught,
    ):
        assert (
            runtime_endpoint_url(REGION, NAMES, az="us-east-1d") == "https://runtime.sagemaker.us-east-1.amazonaws.com"
        )
    (warning,) = caught
    message = str(warning.message)
    assert "the names cover us-east-1a, us-east-1b, us-east-1c" in message
    assert "about 3-1 in 3 connections cross Availability Zones" in message
    assert warning.filename == __file__  # attributed to the caller's line, where a filter can name it
    assert "\n" not in message
    ((logger, level, logged),) = caplog.record_tuples
    assert (logger, level, logged) == (rtb_client.logger.name, logging.WARNING, message)


@pytest.mark.parametrize(
    ("discover", "reason"),
    [
        (True, "unknown (not given, and neither ECS task metadata nor EC2 instance metadata told it)"),
        (False, "unknown (not given)"),
    ],
)
def test_an_unknown_az_falls_back_to_the_regional_name_with_a_warning(
    discover: bool, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rtb_client.zonal, "availability_zone", lambda: None)
    with pytest.warns(ZonalFallbackWarning, match=re.escape(f"Availability Zone is {reason}")):
        assert runtime_endpoint_url(REGION, NAMES, discover=discover) == regional_runtime_url(REGION)


def test_the_fallback_warning_is_a_runtime_warning_a_caller_can_silence() -> None:
    assert issubclass(ZonalFallbackWarning, RuntimeWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=ZonalFallbackWarning)
        runtime_endpoint_url(REGION, {}, az="us-east-1a")
    assert caught == []


BAD = "vpce-0fe5b17a0707d6abc-29p5708s"


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        ({"us-east-1a": f"{BAD}.runtime.sagemaker.us-east-1.vpce.amazonaws.com"}, "zonal_dns_names['us-east-1a']"),
        ({"us-east-1a": NAMES["us-east-1b"]}, "zonal_dns_names['us-east-1a']"),
        ({"us-east-1a": zonal("us-east-1a", region="us-west-2")}, "zonal_dns_names['us-east-1a']"),
        ({"us-east-1a": NAMES["us-east-1a"].replace(".runtime.", ".api.")}, "zonal_dns_names['us-east-1a']"),
        ({"us-east-1a": "runtime.sagemaker.us-east-1.amazonaws.com"}, "zonal_dns_names['us-east-1a']"),
        ({"us-east-1a": f"https://{NAMES['us-east-1a']}"}, "zonal_dns_names['us-east-1a']"),
        ({"us-east-1a": f"{NAMES['us-east-1a']}."}, "zonal_dns_names['us-east-1a']"),
        ({"us-east-1a": zonal("us-east-1a", domain="amazonaws.com.cn")}, "zonal_dns_names['us-east-1a']"),
        ({"us-east-1a": f"{NAMES['us-east-1a']}\nX-Injected: 1"}, "zonal_dns_names['us-east-1a']"),
        ({"us-east-1a": 42}, "zonal_dns_names['us-east-1a'] is '42'"),
        ({"east": NAMES["us-east-1a"]}, "zonal_dns_names has the key 'east'"),
        ("[1, 2]", "zonal_dns_names is '[1, 2]'"),
        ('{"us-east-1a": ', "zonal_dns_names is not JSON"),
    ],
    ids=[
        "regional-vpce-name", "another-azs-name", "another-region", "another-service", "private-dns-name",
        "a-url", "trailing-dot", "china-suffix", "newline", "not-a-string", "key-not-an-az", "json-not-an-object",
        "not-json",
    ],
)  # fmt: skip
def test_a_name_that_is_not_the_runtime_endpoints_zonal_name_for_its_az_is_refused_in_one_line(
    names: Any, problem: str
) -> None:
    with pytest.raises(ValueError, match="zonal_dns_names") as refused_:
        runtime_endpoint_url(REGION, names, az="us-east-1a", discover=False)
    message = str(refused_.value)
    assert message.startswith(problem)
    assert "\n" not in message


def test_a_bad_region_or_az_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^region='us_east_1' is invalid: allowed: a Region name such as us-east-1$"):
        runtime_endpoint_url("us_east_1", NAMES, az="us-east-1a")
    with pytest.raises(
        ValueError, match=r"^az='US-EAST-1A' is invalid: allowed: an AZ name such as us-east-1a, or None$"
    ):
        runtime_endpoint_url(REGION, NAMES, az="US-EAST-1A")


def test_china_regions_use_the_com_cn_suffixes() -> None:
    region = "cn-north-1"
    names = {az: zonal(az, region=region, domain="amazonaws.com.cn") for az in ("cn-north-1a", "cn-north-1b")}
    assert runtime_endpoint_url(region, names, az="cn-north-1b") == f"https://{names['cn-north-1b']}"
    with pytest.raises(ValueError, match=r"allowed: .*\.runtime\.sagemaker\.cn-north-1\.vpce\.amazonaws\.com\.cn$"):
        runtime_endpoint_url(region, {"cn-north-1a": zonal("cn-north-1a", region=region)}, az="cn-north-1a")
    with pytest.warns(ZonalFallbackWarning, match=r"https://runtime\.sagemaker\.cn-north-1\.amazonaws\.com\.cn,"):
        assert (
            runtime_endpoint_url(region, names, az="cn-north-1c")
            == "https://runtime.sagemaker.cn-north-1.amazonaws.com.cn"
        )


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "us-gov-west-1", "cn-north-1", "cn-northwest-1"])
def test_the_regional_fallback_is_the_name_boto3_itself_would_call(region: str) -> None:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    assert regional_runtime_url(region) == session.client("sagemaker-runtime", region_name=region).meta.endpoint_url


# --- runtime_client and zonal_runtime_client ----------------------------------------------------------------


def _session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


def test_runtime_client_takes_an_endpoint_url_and_keeps_its_defaults_without_one() -> None:
    url = f"https://{NAMES['us-east-1a']}"
    zonal_client = runtime_client(_session(), region=REGION, endpoint_url=url, pool_size=8)
    assert zonal_client.meta.endpoint_url == url
    assert zonal_client.meta.config.max_pool_connections == 8
    assert runtime_client(_session(), region=REGION).meta.endpoint_url == regional_runtime_url(REGION)


def test_zonal_runtime_client_builds_the_client_on_its_azs_name(monkeypatch: pytest.MonkeyPatch) -> None:
    client = zonal_runtime_client(REGION, json.dumps(NAMES), az="us-east-1c", session=_session(), read_timeout=0.2)
    assert client.meta.endpoint_url == f"https://{NAMES['us-east-1c']}"
    assert (client.meta.region_name, client.meta.config.read_timeout) == (REGION, 0.2)
    monkeypatch.setattr(rtb_client.zonal, "availability_zone", lambda: None)
    with pytest.warns(ZonalFallbackWarning) as caught:
        fallback = zonal_runtime_client(REGION, NAMES, session=_session())
    assert fallback.meta.endpoint_url == regional_runtime_url(REGION)
    assert caught[0].filename == __file__
