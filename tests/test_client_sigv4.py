"""rtb_client.sigv4 signs InvokeEndpoint exactly as botocore does: the same Authorization on thousands of seeded
random requests (bodies empty, text and binary; every endpoint-name character; regional, China, zonal vpce and
loopback hosts with ports; Regions; with and without session tokens), against botocore's SigV4Auth and against
boto3's whole request pipeline, with the clock frozen."""

from __future__ import annotations

import dataclasses
import datetime
import random
import string
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.auth
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials
from botocore.serialize import create_serializer

from rtb_client import sigv4
from rtb_client.fast import REQUEST_HEADERS

SEED = 20261208
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1", "il-central-1")
NAME_CHARACTERS = string.ascii_letters + string.digits  # the service model's pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*
CONTENT_TYPES = ("text/csv", "application/json", "application/jsonlines", "application/x-npy", "  text/csv ;  x=1 ")
# Header parameters with values of their own allowed characters (printable ASCII; SageMaker's patterns).
PRINTABLE = "".join(chr(code) for code in range(0x20, 0x7F))


def _valid_name(rng: random.Random) -> str:
    """A name of the service model's pattern, up to its 63 characters: alphanumerics, hyphens between them."""
    name = rng.choice(NAME_CHARACTERS)
    while len(name) < rng.randint(1, 63):
        name += "-" * rng.choice((0, 0, 1, 2)) + rng.choice(NAME_CHARACTERS)
    return name[:63].rstrip("-")


def _any_name(rng: random.Random) -> str:
    """A name SageMaker would refuse but the client must still quote as botocore does: any printable character,
    dot segments, a slash, a percent sign, non-ASCII letters."""
    pool = PRINTABLE + "éß中/%~"
    special = rng.choice(("", ".", "..", "a/../b", "%2F", "~x", " "))
    return special + "".join(rng.choice(pool) for _ in range(rng.randint(1, 20)))


def _host(rng: random.Random, region: str) -> str:
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    az = region + rng.choice("abc")
    vpce = "".join(rng.choice("0123456789abcdef") for _ in range(17))
    return rng.choice(
        (
            f"runtime.sagemaker.{region}.{domain}",
            f"vpce-{vpce}-{rng.choice(('29p5708s', 'x1y2z3'))}-{az}.runtime.sagemaker.{region}.vpce.{domain}",
            f"vpce-{vpce}.runtime.sagemaker.{region}.vpce.{domain}",
            f"RUNTIME.SageMaker.{region}.{domain}",  # a host is signed in lower case
            "127.0.0.1",
            "localhost",
            "[::1]",
        )
    )


@dataclass(frozen=True)
class Case:
    scheme: str
    netloc: str
    region: str
    name: str
    headers: dict[str, str]
    body: bytes
    access_key: str
    secret_key: str
    token: str | None
    epoch: int

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{sigv4.invocations_path(self.name)}"

    def host(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        assert parts.hostname is not None
        return sigv4.host_header(parts.scheme, parts.hostname, parts.port)


def _case(rng: random.Random, *, valid_names: bool = True) -> Case:
    region = rng.choice(REGIONS)
    scheme = rng.choice(("https", "https", "http"))
    host = _host(rng, region)
    port = rng.choice((None, None, 443, 80, 8080, rng.randint(1, 65535)))
    headers: dict[str, str] = {}
    if rng.random() < 0.8:
        headers["Content-Type"] = rng.choice(CONTENT_TYPES)
    if rng.random() < 0.7:
        headers["Accept"] = rng.choice(CONTENT_TYPES)
    for parameter, (header, least) in REQUEST_HEADERS.items():
        if parameter not in ("ContentType", "Accept") and rng.random() < 0.15:
            headers[header] = "".join(rng.choice(PRINTABLE) for _ in range(rng.randint(max(least, 1), 40))).strip()
            headers[header] = headers[header] or "x"
    if rng.random() < 0.1:  # never signed, by either signer
        headers["User-Agent"] = "ad-server/1.0"
        headers["X-Amzn-Trace-Id"] = "Root=1-5759e988-bd862e3fe1be46a994272793"
    body = rng.choice(
        (
            b"",
            rng.randbytes(rng.randint(1, 2048)),
            ",".join(repr(rng.uniform(-1e6, 1e6)) for _ in range(rng.randint(1, 40))).encode() + b"\n",
        )
    )
    secret_alphabet = string.ascii_letters + string.digits + "/+"
    return Case(
        scheme=scheme,
        netloc=host if port is None else f"{host}:{port}",
        region=region,
        name=_valid_name(rng) if valid_names or rng.random() < 0.5 else _any_name(rng),
        headers=headers,
        body=body,
        access_key=rng.choice(("AKIA", "ASIA")) + "".join(rng.choice(string.ascii_uppercase) for _ in range(16)),
        secret_key="".join(rng.choice(secret_alphabet) for _ in range(40)),
        token=None if rng.random() < 0.4 else "".join(rng.choice(secret_alphabet + "=") for _ in range(356)),
        epoch=rng.randint(1_577_836_800, 2_082_758_399),  # 2020 to 2035
    )


def _cases(count: int, seed: int, *, valid_names: bool = True) -> Iterator[Case]:
    rng = random.Random(seed)
    for _ in range(count):
        yield _case(rng, valid_names=valid_names)


def _ours(case: Case) -> dict[str, str]:
    return sigv4.sign(
        method="POST",
        host=case.host(),
        path=urllib.parse.urlsplit(case.url).path,
        headers=case.headers,
        body=case.body,
        access_key=case.access_key,
        secret_key=case.secret_key,
        token=case.token,
        region=case.region,
        timestamp=sigv4.amz_date(case.epoch),
    )


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set ``frozen_clock.epoch``: botocore's signer reads that moment as now."""

    class Clock:
        epoch = 0

        def now(self, remove_tzinfo: bool = True) -> datetime.datetime:
            moment = datetime.datetime.fromtimestamp(self.epoch, datetime.UTC)
            return moment.replace(tzinfo=None) if remove_tzinfo else moment

    clock = Clock()
    monkeypatch.setattr(botocore.auth, "get_current_datetime", clock.now)
    return clock


def _botocores(case: Case, clock: Any) -> dict[str, str]:
    clock.epoch = case.epoch
    request = AWSRequest(method="POST", url=case.url, data=case.body, headers=dict(case.headers))
    SigV4Auth(Credentials(case.access_key, case.secret_key, case.token), "sagemaker", case.region).add_auth(request)
    return dict(request.headers.items())


def test_thousands_of_random_requests_are_signed_as_botocores_sigv4auth_signs_them(frozen_clock: Any) -> None:
    cases = list(_cases(2000, SEED, valid_names=False))
    for case in cases:
        ours, theirs = _ours(case), _botocores(case, frozen_clock)
        assert ours["Authorization"] == theirs["Authorization"], case
        assert ours["X-Amz-Date"] == theirs["X-Amz-Date"]
        assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token") == case.token
    # The seeded draw covers what the test claims to cover.
    drawn = {
        "tokens": sum(case.token is not None for case in cases),
        "no token": sum(case.token is None for case in cases),
        "empty bodies": sum(case.body == b"" for case in cases),
        "binary bodies": sum(b"\x00" in case.body or b"\xff" in case.body for case in cases),
        "names to quote": sum(
            sigv4.invocations_path(case.name) != f"/endpoints/{case.name}/invocations" for case in cases
        ),
        "zonal hosts": sum("-vpce-" in f"-{case.netloc}" and case.region + "a" in case.netloc for case in cases),
        "ports": sum(":" in case.host().rsplit("]", 1)[-1] for case in cases),
        "unsigned headers": sum("User-Agent" in case.headers for case in cases),
        "regions": len({case.region for case in cases}),
    }
    assert min(drawn.values()) >= len(REGIONS), drawn


def test_the_endpoint_name_is_quoted_as_botocores_rest_json_serializer_quotes_it() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime").operation_model("InvokeEndpoint")
    serializer = create_serializer("rest-json", include_validation=False)
    rng = random.Random(SEED + 1)
    names = [_valid_name(rng) for _ in range(500)] + [_any_name(rng) for _ in range(500)]
    for name in names:
        request = serializer.serialize_to_request({"EndpointName": name, "Body": b""}, model)
        assert sigv4.invocations_path(name) == request["url_path"], name
    assert sigv4.invocations_path("a/b c") == "/endpoints/a%2Fb%20c/invocations"
    # Signed twice encoded, as AWS asks of every service but S3.
    assert sigv4.canonical_path(sigv4.invocations_path("a/b")) == "/endpoints/a%252Fb/invocations"


class _Captured:
    """boto3's prepared request, caught before it is sent (a fake 200 answers instead)."""

    def __init__(self) -> None:
        self.request: Any = None

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        self.request = request
        return AWSResponse(request.url, 200, {}, _EmptyRaw())


class _EmptyRaw:
    def stream(self, *_args: Any, **_kwargs: Any) -> Iterator[bytes]:
        return iter([b""])


_PARAMETER_OF = {header: parameter for parameter, (header, _) in REQUEST_HEADERS.items()}


def test_random_requests_are_signed_as_boto3s_own_client_signs_them(frozen_clock: Any) -> None:
    core = botocore.session.get_session()
    clients = 50  # one client per credentials, Region and URL; four requests on each
    checked = 0
    for index, drawn in enumerate(_cases(clients * 4, SEED + 2)):
        if index % 4 == 0:
            first = drawn
            session = boto3.Session(
                botocore_session=core,
                aws_access_key_id=first.access_key,
                aws_secret_access_key=first.secret_key,
                aws_session_token=first.token,
                region_name=first.region,
            )
            client = session.client("sagemaker-runtime", endpoint_url=f"{first.scheme}://{first.netloc}")
            captured = _Captured()
            client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", captured)
        # What boto3 sends of the parameters is what the fast client sends and signs: the same request.
        headers = {name: value for name, value in drawn.headers.items() if name in _PARAMETER_OF}
        case = dataclasses.replace(
            drawn,
            scheme=first.scheme,
            netloc=first.netloc,
            region=first.region,
            access_key=first.access_key,
            secret_key=first.secret_key,
            token=first.token,
            headers=headers,
        )
        frozen_clock.epoch = case.epoch
        parameters = {_PARAMETER_OF[name]: value for name, value in headers.items()}
        client.invoke_endpoint(EndpointName=case.name, Body=case.body, **parameters)
        sent = {
            name: value.decode() if isinstance(value, bytes) else value
            for name, value in captured.request.headers.items()
        }
        ours = _ours(case)
        assert urllib.parse.urlsplit(captured.request.url).path == urllib.parse.urlsplit(case.url).path
        assert (captured.request.body or b"") == case.body
        assert sent["Authorization"] == ours["Authorization"], case
        assert sent.get("X-Amz-Security-Token") == ours.get("X-Amz-Security-Token")
        checked += 1
        if index % 4 == 3:
            client.close()
    assert checked == clients * 4


def test_the_days_signing_key_is_derived_once_per_secret_date_region_and_service() -> None:
    sigv4.signing_key.cache_clear()
    first = sigv4.signing_key("secret", "20261208", "us-east-1", "sagemaker")
    assert sigv4.signing_key("secret", "20261208", "us-east-1", "sagemaker") is first
    assert sigv4.signing_key.cache_info().hits == 1
    others = {
        sigv4.signing_key("other", "20261208", "us-east-1", "sagemaker"),
        sigv4.signing_key("secret", "20261209", "us-east-1", "sagemaker"),
        sigv4.signing_key("secret", "20261208", "eu-west-1", "sagemaker"),
        sigv4.signing_key("secret", "20261208", "us-east-1", "s3"),
    }
    assert first not in others and len(others) == 4
    assert sigv4.signing_key.cache_info().misses == 5


@pytest.mark.parametrize(
    ("scheme", "hostname", "port", "host"),
    [
        ("https", "Runtime.SageMaker.us-east-1.amazonaws.com", None, "runtime.sagemaker.us-east-1.amazonaws.com"),
        ("https", "example.com", 443, "example.com"),
        ("http", "127.0.0.1", 80, "127.0.0.1"),
        ("http", "127.0.0.1", 8080, "127.0.0.1:8080"),
        ("https", "::1", 8443, "[::1]:8443"),
    ],
)
def test_the_signed_host_is_the_urls_lower_case_name_with_a_port_only_when_not_the_default(
    scheme: str, hostname: str, port: int | None, host: str
) -> None:
    assert sigv4.host_header(scheme, hostname, port) == host


def test_the_session_token_is_sent_and_signed_only_when_there_is_one() -> None:
    common: dict[str, Any] = {
        "method": "POST",
        "host": "h",
        "path": "/endpoints/e/invocations",
        "headers": {"Content-Type": "text/csv"},
        "body": b"1\n",
        "access_key": "AKIDEXAMPLE",
        "secret_key": "s",
        "region": "us-east-1",
        "timestamp": "20261208T000000Z",
    }
    with_token = sigv4.sign(token="TOKEN", **common)
    without = sigv4.sign(token=None, **common)
    assert with_token["X-Amz-Security-Token"] == "TOKEN"
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in with_token["Authorization"]
    assert "X-Amz-Security-Token" not in without
    assert "SignedHeaders=content-type;host;x-amz-date," in without["Authorization"]
    assert with_token["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261208/us-east-1/sagemaker/"
    )
