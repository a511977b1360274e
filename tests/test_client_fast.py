"""rtb_client's fast path (FastRuntimeClient) against local servers that check every request's SigV4 signature
with botocore from the credentials they know: signed calls from many threads, a wrong secret refused, kept-alive
connections, TLS verified for the endpoint's name, boto3's answers and exceptions for the same server answers,
timeouts, credentials refreshed before they expire, and the documented retry backoff. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import random
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import botocore.session
import pytest
import trustme
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    SSLError,
)

from devtools.fake_endpoint import FakeEndpoint
from rtb_client import PROFILES, FastRuntimeClient, ModelSchema, predict, runtime_client
from rtb_client import fast as fast_module

from .local_tls import NAMES, REGION

KEYS = {"AKIDFASTTEST": ("fast-test-secret", "FastTestSessionToken=="), "AKIDNOTOKEN": ("no-token-secret", None)}
# Past any stall of a busy machine, where a test is about answers, not time.
PATIENT: dict[str, Any] = {"connect_timeout": 30.0, "read_timeout": 30.0}
SCHEMA = ModelSchema(("a", "b", "c"), "probability", 1)


def _session(access_key: str = "AKIDFASTTEST", secret: str | None = None) -> boto3.Session:
    known_secret, token = KEYS[access_key]
    return boto3.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret or known_secret,
        aws_session_token=token,
        region_name=REGION,
    )


# --- the checking server -------------------------------------------------------------------------------------

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<names>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def signature_problem(scheme: str, path: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """None when botocore, given the known credentials, computes the request's own signature; else what is wrong.
    Every header a signature must cover (host, x-amz-*, x-amzn-*, content-type, accept) must be signed."""
    match = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
    if match is None:
        return "IncompleteSignature"
    if match["key"] not in KEYS:
        return "UnrecognizedClientException"
    secret, token = KEYS[match["key"]]
    names = match["names"].split(";")
    covered = {"host", "x-amz-date", "content-type", "accept"} | {
        name for name in headers if name.startswith(("x-amz-", "x-amzn-")) and name != "x-amzn-trace-id"
    }
    if not {name for name in covered if name in headers or name in ("host", "x-amz-date")} <= set(names):
        return "IncompleteSignature"
    if headers.get("x-amz-security-token") != token or headers.get("x-amz-date", "")[:8] != match["date"]:
        return "InvalidSignatureException"
    if (match["service"], match["region"]) != ("sagemaker", REGION):
        return "InvalidSignatureException"
    request = AWSRequest(
        method="POST", url=f"{scheme}://{headers['host']}{path}", data=body, headers={n: headers[n] for n in names}
    )
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(match["key"], secret, token), "sagemaker", REGION)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return None if hmac.compare_digest(expected, match["signature"]) else "InvalidSignatureException"


def _signed_by(received: Received, part: str = "key") -> str:
    """The access key (or the signed header names) of a request's Authorization."""
    match = _AUTHORIZATION.fullmatch(received.headers["authorization"])
    assert match is not None
    return match[part]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"0.5\n"
    headers: Mapping[str, str] = field(default_factory=dict)
    hold: float = 0.0  # seconds before answering (ends early when the server stops)
    close: bool = False  # close the connection after answering, without saying so (an idle timeout)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    problem: str | None


def _echo(received: Received) -> Answer:
    """A 200 whose body names the request: sha256 of the path and body, so a mixed-up answer shows."""
    digest = hashlib.sha256(received.path.encode() + received.body).hexdigest()
    headers = {"Content-Type": "text/csv", "x-Amzn-Invoked-Production-Variant": "AllTraffic"}
    return Answer(body=digest.encode(), headers={**headers, "x-amzn-RequestId": digest[:36]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Callable[[Received], Answer], tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer, self.tls = answer, tls
        self.received: list[Received] = []
        self.connections = 0
        self.closed = threading.Semaphore(0)
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except OSError:
            return  # a client that refused the certificate
        with wrapped:
            super().finish_request(wrapped, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.closed.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a read timeout) is expected here, not worth a traceback."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 10.0
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        scheme = "https" if self.server.tls is not None else "http"
        received = Received(self.path, headers, body, signature_problem(scheme, self.path, headers, body))
        with self.server.lock:
            self.server.received.append(received)
        if received.problem is not None:
            message = "The request signature we calculated does not match the signature you provided."
            answer = Answer(403, json.dumps({"message": message}).encode(), {"x-amzn-ErrorType": received.problem})
        else:
            answer = self.server.answer(received)
        if answer.hold and self.server.stopping.wait(answer.hold):
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)
        self.close_connection = self.close_connection or answer.close

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def checking_server(
    answer: Callable[[Received], Answer] = _echo, tls: ssl.SSLContext | None = None
) -> Iterator[_Server]:
    server = _Server(answer, tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _fast(server: _Server, session: Any = None, **options: Any) -> Any:
    return runtime_client(session or _session(), endpoint_url=_url(server), **{**PATIENT, **options})


# --- the request and answer, as botocore's service model has them ------------------------------------------


def test_the_parameters_answers_and_errors_are_botocores_service_model() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    operation = model.operation_model("InvokeEndpoint")
    inputs = operation.input_shape.members
    assert tuple(inputs) == fast_module.PARAMETERS
    assert tuple(operation.input_shape.required_members) == fast_module.REQUIRED
    headers = {
        name: (shape.serialization["name"], shape.metadata.get("min", 0))
        for name, shape in inputs.items()
        if shape.serialization.get("location") == "header"
    }
    assert headers == fast_module.REQUEST_HEADERS  # the same names, headers, minimum lengths and order
    assert list(headers) == list(fast_module.REQUEST_HEADERS)
    outputs = operation.output_shape.members
    assert {
        name: shape.serialization["name"].lower()
        for name, shape in outputs.items()
        if shape.serialization.get("location") == "header"
    } == fast_module.RESPONSE_HEADERS
    assert {shape.name: tuple(shape.members) for shape in model.error_shapes} == fast_module.MODELED_ERRORS
    assert operation.http == {"method": "POST", "requestUri": "/endpoints/{EndpointName}/invocations"}


def test_the_default_client_is_the_fast_one_and_boto3s_is_one_argument_away() -> None:
    fast = runtime_client(_session(), pool_size=8, read_timeout=0.25)
    assert isinstance(fast, FastRuntimeClient)
    assert (fast.meta.region_name, fast.meta.endpoint_url) == (
        REGION,
        f"https://runtime.sagemaker.{REGION}.amazonaws.com",
    )
    assert (fast.meta.config.max_pool_connections, fast.meta.config.read_timeout) == (8, 0.25)
    reference = runtime_client(_session(), transport="boto3")
    assert (
        not isinstance(reference, FastRuntimeClient)
        and reference.meta.service_model.service_name == "sagemaker-runtime"
    )
    fast.close()
    reference.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"transport": "http"}, "transport='http' is invalid; allowed: one of ['fast', 'boto3']"),
        ({"pool_size": 0}, "pool_size=0 is invalid; allowed: a whole number of connections, at least 1"),
        ({"read_timeout": -1.0}, "read_timeout=-1.0 is invalid; allowed: a positive number of seconds"),
        ({"connect_timeout": float("nan")}, "connect_timeout=nan is invalid; allowed: a positive number of seconds"),
        ({"max_attempts": 0}, "max_attempts=0 is invalid; allowed: a whole number of attempts, at least 1"),
        ({"backoff": "no"}, "backoff='no' is invalid; allowed: True or False"),
        ({"backoff": False, "transport": "boto3"}, "backoff=False needs transport='fast'"),
        ({"endpoint_url": "ftp://x"}, "endpoint_url='ftp://x' is invalid; allowed: an http(s) URL"),
        ({"verify": "/nonexistent/ca.pem"}, "verify='/nonexistent/ca.pem' cannot be read as a CA bundle"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        runtime_client(_session(), **options)
    assert "\n" not in str(raised.value)


# --- signed calls, kept-alive connections -----------------------------------------------------------------


def test_calls_from_many_threads_are_all_signed_as_botocore_signs_them_and_get_their_own_answers() -> None:
    rng = random.Random(23)
    calls = [
        (
            rng.choice(("ep", "RtbInference-dev-InferenceEndpointA45980A1-ABC123", "a--b9")),
            rng.randbytes(rng.randint(0, 600)),
        )
        for _ in range(160)
    ]
    with checking_server() as server:
        client = _fast(server, pool_size=4)

        def call(request: tuple[str, bytes]) -> tuple[bytes, dict[str, Any]]:
            name, body = request
            answer = client.invoke_endpoint(
                EndpointName=name, Body=body, ContentType="application/x-npy", Accept="text/csv"
            )
            return answer["Body"].read(), answer

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(call, calls))
        client.close()
    assert [problem for received in server.received if (problem := received.problem)] == []
    assert len(server.received) == len(calls)
    for (name, body), (data, answer) in zip(calls, answers, strict=True):
        assert data == hashlib.sha256(f"/endpoints/{name}/invocations".encode() + body).hexdigest().encode()
        assert (answer["ContentType"], answer["InvokedProductionVariant"]) == ("text/csv", "AllTraffic")
        assert answer["ResponseMetadata"]["RequestId"] == data[:36].decode()
    assert 1 <= server.connections <= 4  # at most one per caller, kept for the next calls


def test_a_wrong_secret_is_refused_and_surfaces_as_boto3s_client_error() -> None:
    with checking_server() as server:
        errors = []
        for transport in ("fast", "boto3"):
            client = _fast(server, _session(secret="not-the-secret"), transport=transport)
            with pytest.raises(ClientError) as raised:
                client.invoke_endpoint(EndpointName="ep", Body=b"1,2,3\n")
            errors.append(raised.value)
            client.close()
    assert [received.problem for received in server.received] == ["InvalidSignatureException"] * 2
    fast_error, boto3_error = errors
    assert (
        str(fast_error)
        == str(boto3_error)
        == (
            "An error occurred (InvalidSignatureException) when calling the InvokeEndpoint operation: "
            "The request signature we calculated does not match the signature you provided."
        )
    )
    assert fast_error.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_sequential_calls_share_one_kept_alive_connection() -> None:
    with checking_server() as server:
        client = _fast(server)
        for _ in range(20):
            client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        client.close()
    assert (server.connections, len(server.received)) == (1, 20)


def test_a_connection_the_server_closed_while_idle_is_replaced_before_the_next_call() -> None:
    with checking_server(lambda received: Answer(close=True)) as server:
        client = _fast(server, max_attempts=1)  # a failed call could not hide behind a retry
        client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        assert server.closed.acquire(timeout=30)  # the server has closed its end, as an idle timeout does
        answer = client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        client.close()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 0
    assert (server.connections, len(server.received)) == (2, 2)


def test_every_header_parameter_is_sent_and_signed_as_boto3_sends_it() -> None:
    parameters = {
        name: "x-1"
        if name in ("TargetVariant", "TargetContainerHostname", "InferenceComponentName", "SessionId")
        else f"{name} value"
        for name in fast_module.REQUEST_HEADERS
    }
    with checking_server() as server:
        for transport in ("fast", "boto3"):
            client = _fast(server, transport=transport)
            client.invoke_endpoint(EndpointName="ep", Body=b"1\n", **parameters)
            client.close()
    fast_request, boto3_request = server.received
    assert fast_request.problem is None and boto3_request.problem is None

    assert _signed_by(fast_request, "names") == _signed_by(boto3_request, "names")
    for name, (header, _) in fast_module.REQUEST_HEADERS.items():
        assert fast_request.headers[header.lower()] == boto3_request.headers[header.lower()] == parameters[name]


# --- TLS ----------------------------------------------------------------------------------------------------


def _tls(ca: trustme.CA, certified_for: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(certified_for).configure_cert(context)
    return context


@pytest.mark.usefixtures("offline_aws")
def test_https_to_the_zonal_name_is_verified_for_that_name_and_signed(
    ca: trustme.CA, ca_file: str, resolve: Callable[[str, int], None]
) -> None:
    name = NAMES["us-east-1b"]
    with checking_server(lambda _received: Answer(body=b"0.25\n"), tls=_tls(ca, name)) as server:
        resolve(name, server.server_address[1])
        client = runtime_client(_session(), endpoint_url=f"https://{name}", verify=ca_file, **PATIENT)
        assert isinstance(client, FastRuntimeClient)
        assert predict(client, "ep", [[1.0, 2.0, 3.0]], SCHEMA, profile="cpu") == [0.25]
        client.close()
    ((received,),) = [server.received]
    assert (received.problem, received.headers["host"]) == (None, name)


@pytest.mark.usefixtures("offline_aws")
def test_a_certificate_for_another_name_is_refused_as_boto3_refuses_it(
    ca: trustme.CA, ca_file: str, resolve: Callable[[str, int], None]
) -> None:
    name = NAMES["us-east-1b"]
    with checking_server(tls=_tls(ca, NAMES["us-east-1a"])) as server:
        resolve(name, server.server_address[1])
        # The fast client's message is OpenSSL's, which names the name asked for; urllib3's names both.
        for transport, message in (
            ("fast", f"Hostname mismatch, certificate is not valid for '{name}'"),
            ("boto3", f"hostname '{name}' doesn't match '{NAMES['us-east-1a']}'"),
        ):
            client = runtime_client(
                _session(), endpoint_url=f"https://{name}", verify=ca_file, max_attempts=1, transport=transport
            )
            with pytest.raises(SSLError, match=re.escape(message)):
                client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
            client.close()
    assert server.received == []


@pytest.mark.usefixtures("offline_aws")
def test_verify_false_skips_verification_for_local_testing(resolve: Callable[[str, int], None]) -> None:
    name = NAMES["us-east-1b"]
    with checking_server(tls=_tls(trustme.CA(), "elsewhere.example")) as server:
        resolve(name, server.server_address[1])
        client = runtime_client(_session(), endpoint_url=f"https://{name}", verify=False, **PATIENT)
        assert client.invoke_endpoint(EndpointName="ep", Body=b"1\n")["ResponseMetadata"]["HTTPStatusCode"] == 200
        client.close()


# --- boto3's answers and exceptions for the same server answers ----------------------------------------------


def _without_dates(response: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(response["ResponseMetadata"])
    metadata["HTTPHeaders"] = {k: v for k, v in metadata["HTTPHeaders"].items() if k not in ("date", "server")}
    return {**{k: v for k, v in response.items() if k != "Body"}, "ResponseMetadata": metadata}


def _json(message: str, **extra: Any) -> bytes:
    return json.dumps({"message": message, **extra}).encode()


ERROR_ANSWERS = {
    "model error": Answer(
        424,
        json.dumps(
            {
                "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
                "LogStreamArn": "arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/ep",
                "Message": 'Received client error (415) from primary with message "unsupported".',
                "OriginalMessage": "unsupported",
                "OriginalStatusCode": 415,
            }
        ).encode(),
        {
            "x-amzn-ErrorType": "ModelError:http://internal.amazon.com/coral/com.amazon.sagemaker/",
            "x-amzn-RequestId": "r-1",
        },
    ),
    "validation": Answer(
        400, _json("Endpoint ep of account 000000000000 not found."), {"x-amzn-ErrorType": "ValidationError:x"}
    ),
    "throttling": Answer(400, _json("Rate exceeded"), {"x-amzn-ErrorType": "ThrottlingException"}),
    "model not ready": Answer(429, _json("Model is loading"), {"x-amzn-ErrorType": "ModelNotReadyException"}),
    "unavailable": Answer(503, _json("try later"), {"x-amzn-ErrorType": "ServiceUnavailable"}),
    "internal failure": Answer(500, _json("oops"), {"x-amzn-ErrorType": "InternalFailure"}),
    "internal dependency": Answer(530, _json("dependency"), {"x-amzn-ErrorType": "InternalDependencyException"}),
    "empty 503": Answer(503, b""),
    "html 502": Answer(502, b"<html><body>Bad Gateway</body></html>"),
    "type in the body": Answer(
        400, json.dumps({"__type": "com.amazon.coral#ValidationError", "Message": "m"}).encode()
    ),
    "code in the body": Answer(404, json.dumps({"code": "UnknownOperationException"}).encode()),
    "not json": Answer(400, b"plain words"),
    "unmodeled 429": Answer(429, b""),
}


@pytest.mark.parametrize("case", list(ERROR_ANSWERS))
def test_an_error_answer_raises_what_boto3_raises_for_it(case: str) -> None:
    raised = []
    with checking_server(lambda _received: ERROR_ANSWERS[case]) as server:
        session = _session()  # one session: boto3's modeled exception classes are the same objects for both
        for transport in ("fast", "boto3"):
            client = _fast(server, session, transport=transport, max_attempts=1)
            with pytest.raises(ClientError) as error:
                client.invoke_endpoint(EndpointName="ep", Body=b"1\n", ContentType="text/csv")
            raised.append(error.value)
            client.close()
    fast_error, boto3_error = raised
    assert type(fast_error) is type(boto3_error)
    assert str(fast_error) == str(boto3_error)
    assert {k: v for k, v in fast_error.response.items() if k != "ResponseMetadata"} == {
        k: v for k, v in boto3_error.response.items() if k != "ResponseMetadata"
    }
    assert _without_dates(fast_error.response) == _without_dates(boto3_error.response)


def test_the_model_errors_fields_come_as_boto3_gives_them() -> None:
    with checking_server(lambda _received: ERROR_ANSWERS["model error"]) as server:
        client = _fast(server)
        with pytest.raises(client.exceptions.ModelError) as raised:
            client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        client.close()
    response = raised.value.response
    assert (response["Error"]["Code"], response["OriginalStatusCode"], response["OriginalMessage"]) == (
        "ModelError",
        415,
        "unsupported",
    )
    assert len(server.received) == 1  # 424 is the model's answer: never retried


@pytest.mark.parametrize("case", ["unavailable", "internal failure", "html 502"])
def test_a_5xx_is_retried_once_as_boto3_retries_it(case: str) -> None:
    raised = []
    with checking_server(lambda _received: ERROR_ANSWERS[case]) as server:
        session = _session()
        for transport in ("fast", "boto3"):
            client = _fast(server, session, transport=transport)
            with pytest.raises(ClientError) as error:
                client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
            raised.append(error.value)
            client.close()
    assert str(raised[0]) == str(raised[1])
    assert "(reached max retries: 1)" in str(raised[0])
    assert _without_dates(raised[0].response) == _without_dates(raised[1].response)
    attempts = [received.headers["amz-sdk-request"] for received in server.received]
    assert [re.findall(r"attempt=\d+; max=\d+", a) for a in attempts] == [
        ["attempt=1; max=2"],
        ["attempt=2; max=2"],
    ] * 2


def test_a_successful_answer_is_shaped_as_boto3s() -> None:
    def answer(received: Received) -> Answer:
        extra = {"X-Amzn-SageMaker-Custom-Attributes": "c=1", "X-Amzn-SageMaker-New-Session-Id": "s-1"}
        return Answer(body=b"\x00\x01binary", headers={**_echo(received).headers, **extra})

    answers = []
    with checking_server(answer) as server:
        session = _session()
        for transport in ("fast", "boto3"):
            client = _fast(server, session, transport=transport)
            response = client.invoke_endpoint(EndpointName="ep", Body=b"1\n", Accept="text/csv")
            answers.append((response["Body"].read(), _without_dates(response), type(response["Body"])))
            client.close()
    assert answers[0] == answers[1]
    assert answers[0][1]["CustomAttributes"] == "c=1" and answers[0][0] == b"\x00\x01binary"


@pytest.mark.parametrize(
    "parameters",
    [
        {"EndpointName": "ep"},
        {"Body": b""},
        {"EndpointName": "ep", "Body": b"", "Foo": 1},
        {"EndpointName": "ep", "Body": 1},
        {"EndpointName": 1, "Body": b"", "ContentType": 2},
        {"EndpointName": "ep", "Body": b"", "TargetModel": ""},
    ],
)
def test_bad_parameters_are_refused_before_sending_with_boto3s_report(parameters: dict[str, Any]) -> None:
    reports = []
    for transport in ("fast", "boto3"):
        client = runtime_client(_session(), endpoint_url="http://127.0.0.1:9", transport=transport)
        with pytest.raises(ParamValidationError) as raised:
            client.invoke_endpoint(**parameters)
        reports.append(str(raised.value))
        client.close()
    assert reports[0] == reports[1]


def test_positional_arguments_are_refused_as_boto3_refuses_them() -> None:
    client = runtime_client(_session(), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(TypeError, match=r"^invoke_endpoint\(\) only accepts keyword arguments\.$"):
        client.invoke_endpoint("ep")


def test_no_credentials_is_botocores_no_credentials_error() -> None:
    class Anonymous:
        def client(self, *args: Any, **kwargs: Any) -> Any:
            return _session().client(*args, **kwargs)

        def get_credentials(self) -> None:
            return None

    client = FastRuntimeClient(Anonymous(), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(NoCredentialsError):
        client.invoke_endpoint(EndpointName="ep", Body=b"")


# --- timeouts and unreachable endpoints ---------------------------------------------------------------------


def test_a_read_timeout_is_boto3s_read_timeout_error_after_read_timeout() -> None:
    with checking_server(lambda _received: Answer(hold=120.0)) as server:
        client = _fast(server, read_timeout=0.2, max_attempts=1)
        with pytest.raises(ReadTimeoutError) as raised:
            client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        client.close()
    assert "(read timeout=0.2)" in str(raised.value.kwargs["error"])
    assert str(raised.value) == f'Read timeout on endpoint URL: "{_url(server)}/endpoints/ep/invocations"'
    assert len(server.received) == 1


def test_a_connect_timeout_is_boto3s_connect_timeout_error() -> None:
    # A listener that never accepts: once its queue is full the kernel drops new SYNs, so connect() hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:  # without waiting: those past the queue stay unanswered, as the client will
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            client = runtime_client(
                _session(), endpoint_url=f"http://127.0.0.1:{port}", connect_timeout=0.2, max_attempts=1
            )
            with pytest.raises(
                ConnectTimeoutError, match=re.escape(f"http://127.0.0.1:{port}/endpoints/ep/invocations")
            ):
                client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
            client.close()
        finally:
            for filler in fillers:
                filler.close()


def test_nothing_listening_is_boto3s_endpoint_connection_error_after_the_retry() -> None:
    with checking_server() as server:
        url = _url(server)
    for transport in ("fast", "boto3"):
        client = runtime_client(_session(), endpoint_url=url, transport=transport)
        with pytest.raises(EndpointConnectionError) as raised:
            client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        assert str(raised.value) == f'Could not connect to the endpoint URL: "{url}/endpoints/ep/invocations"'
        client.close()


# --- credentials refreshed before they expire ---------------------------------------------------------------


def test_credentials_about_to_expire_are_refreshed_and_the_next_signature_uses_the_new_keys() -> None:
    now = [datetime.datetime(2026, 12, 8, 9, 0, tzinfo=datetime.UTC)]
    issued: list[str] = []

    def refresh() -> dict[str, str]:
        key = "AKIDNOTOKEN" if not issued else "AKIDFASTTEST"
        issued.append(key)
        secret, token = KEYS[key]
        expiry = now[0] + datetime.timedelta(minutes=30)
        return {"access_key": key, "secret_key": secret, "token": token or "", "expiry_time": expiry.isoformat()}

    first = refresh()
    credentials = RefreshableCredentials(
        first["access_key"],
        first["secret_key"],
        None,
        now[0] + datetime.timedelta(minutes=30),
        refresh,
        "test",
        time_fetcher=lambda: now[0],
    )

    class Refreshing:
        def client(self, *args: Any, **kwargs: Any) -> Any:
            return _session().client(*args, **kwargs)

        def get_credentials(self) -> RefreshableCredentials:
            return credentials

    clock = [0.0]
    with checking_server() as server:
        client = FastRuntimeClient(Refreshing(), endpoint_url=_url(server), clock=lambda: clock[0], **PATIENT)
        client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        now[0] += datetime.timedelta(minutes=25)  # 5 minutes left: inside botocore's mandatory refresh window
        clock[0] += fast_module.CREDENTIALS_RECHECK_SECONDS
        client.invoke_endpoint(EndpointName="ep", Body=b"2\n")
        client.close()
    assert issued == ["AKIDNOTOKEN", "AKIDFASTTEST"]
    assert [received.problem for received in server.received] == [None, None]
    assert [_signed_by(received) for received in server.received] == ["AKIDNOTOKEN", "AKIDFASTTEST"]
    assert "x-amz-security-token" not in server.received[0].headers
    assert server.received[1].headers["x-amz-security-token"] == KEYS["AKIDFASTTEST"][1]


# --- backoff ----------------------------------------------------------------------------------------------


def _failing(first: Answer, times: int) -> Callable[[Received], Answer]:
    count = [0]

    def answer(received: Received) -> Answer:
        count[0] += 1
        return first if count[0] <= times else _echo(received)

    return answer


@pytest.mark.parametrize(
    ("case", "jitter", "delays"),
    [
        ("throttling", 1.0, [1.0, 2.0]),  # 1 s, doubling
        ("model not ready", 0.5, [0.5, 1.0]),
        ("unavailable", 1.0, [0.05, 0.1]),  # 50 ms, doubling
        ("internal failure", 0.25, [0.0125, 0.025]),
    ],
)
def test_retries_wait_the_documented_backoff(case: str, jitter: float, delays: list[float]) -> None:
    slept: list[float] = []
    with checking_server(_failing(ERROR_ANSWERS[case], 2)) as server:
        client = FastRuntimeClient(
            _session(), endpoint_url=_url(server), max_attempts=3, sleep=slept.append, jitter=lambda: jitter, **PATIENT
        )
        answer = client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        client.close()
    assert slept == pytest.approx(delays)
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2 and len(server.received) == 3


def test_the_backoff_stops_growing_at_20_seconds_and_honours_x_amz_retry_after() -> None:
    slept: list[float] = []
    throttled = Answer(
        400, _json("slow down"), {"x-amzn-ErrorType": "ThrottlingException", "x-amz-retry-after": "1500"}
    )
    with checking_server(_failing(throttled, 7)) as server:
        client = FastRuntimeClient(
            _session(), endpoint_url=_url(server), max_attempts=8, sleep=slept.append, jitter=lambda: 0.1, **PATIENT
        )
        client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        client.close()
    # 0.1 x (1, 2, 4, 8, 16, 20, 20) s, each raised to the server's 1.5 s (at most 5 s more than computed).
    assert slept == pytest.approx([1.5, 1.5, 1.5, 1.5, 1.6, 2.0, 2.0])


@pytest.mark.parametrize("case", ["throttling", "model not ready"])
def test_backoff_false_never_sleeps_and_answers_throttling_at_once(case: str) -> None:
    slept: list[float] = []
    with checking_server(lambda _received: ERROR_ANSWERS[case]) as server:
        client = FastRuntimeClient(_session(), endpoint_url=_url(server), backoff=False, sleep=slept.append, **PATIENT)
        with pytest.raises(ClientError) as raised:
            client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
        client.close()
    assert (len(server.received), slept, raised.value.response["ResponseMetadata"]["RetryAttempts"]) == (1, [], 0)


def test_backoff_false_retries_a_5xx_at_once() -> None:
    slept: list[float] = []
    with checking_server(_failing(ERROR_ANSWERS["unavailable"], 1)) as server:
        client = FastRuntimeClient(_session(), endpoint_url=_url(server), backoff=False, sleep=slept.append, **PATIENT)
        assert client.invoke_endpoint(EndpointName="ep", Body=b"1\n")["ResponseMetadata"]["RetryAttempts"] == 1
        client.close()
    assert (len(server.received), slept) == (2, [])


def test_an_empty_retry_quota_stops_retries_until_calls_succeed_again() -> None:
    with checking_server(lambda _received: ERROR_ANSWERS["unavailable"]) as server:
        client = FastRuntimeClient(_session(), endpoint_url=_url(server), sleep=lambda _s: None, **PATIENT)
        retried = 0
        for _ in range(40):
            with pytest.raises(ClientError) as raised:
                client.invoke_endpoint(EndpointName="ep", Body=b"1\n")
            retried += raised.value.response["ResponseMetadata"]["RetryAttempts"]
        client.close()
    # 500 tokens, 14 per retry of a 5XX: 35 retries, then each call is answered after its one attempt.
    assert retried == fast_module.QUOTA_CAPACITY // fast_module.RETRY_COST == 35
    assert raised.value.response["ResponseMetadata"]["RetryQuotaReached"] is True
    assert len(server.received) == 40 + 35


# --- predict through either transport ----------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_predict_gives_the_same_answers_through_both_transports(profile: str) -> None:
    with FakeEndpoint(workers=2, service_time=0.001, profile=profile) as endpoint:
        rows = [
            [float(v) for v in range(len(endpoint.model.schema.features))],
            [0.5] * len(endpoint.model.schema.features),
        ]
        answers = []
        for transport in ("fast", "boto3"):
            client = runtime_client(_session(), endpoint_url=endpoint.url, transport=transport, **PATIENT)
            answers.append(predict(client, "ep", rows, endpoint.model.schema, profile=profile))
            client.close()
    assert answers[0] == answers[1]
    assert len(answers[0]) == len(rows)
