"""The fast path: InvokeEndpoint over a keep-alive pool of standard-library HTTP(S) connections, signed by
``sigv4``, answering and failing as boto3's sagemaker-runtime client does (the same dict, the same botocore
exceptions), for about a fifth of boto3's client CPU per call (devtools/bench_client.py measures it).

Retries follow AWS's standard retry mode as botocore 1.44 implements it, with one addition: ModelNotReadyException
is retried like throttling. https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
"""

from __future__ import annotations

import http.client
import io
import json
import math
import random
import select
import socket
import ssl
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .sigv4 import amz_date, host_header, invocations_path, sign

if TYPE_CHECKING:
    from botocore.config import Config

OPERATION = "InvokeEndpoint"
# InvokeEndpoint's input members in the service model's order (botocore's sagemaker-runtime 2017-05-13): the
# name and body, then each header parameter as (header, minimum length botocore checks). tests/test_client_fast.py
# holds these tables to botocore's model, so a member added there shows up as a failing test here.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html
REQUEST_HEADERS: dict[str, tuple[str, int]] = {
    "ContentType": ("Content-Type", 0),
    "Accept": ("Accept", 0),
    "CustomAttributes": ("X-Amzn-SageMaker-Custom-Attributes", 0),
    "TargetModel": ("X-Amzn-SageMaker-Target-Model", 1),
    "TargetVariant": ("X-Amzn-SageMaker-Target-Variant", 0),
    "TargetContainerHostname": ("X-Amzn-SageMaker-Target-Container-Hostname", 0),
    "InferenceId": ("X-Amzn-SageMaker-Inference-Id", 1),
    "EnableExplanations": ("X-Amzn-SageMaker-Enable-Explanations", 1),
    "InferenceComponentName": ("X-Amzn-SageMaker-Inference-Component", 0),
    "SessionId": ("X-Amzn-SageMaker-Session-Id", 0),
    "PrefixAwareId": ("X-Amzn-SageMaker-Prefix-Aware-Id", 1),
}
PARAMETERS = ("EndpointName", "Body", *REQUEST_HEADERS)
REQUIRED = ("EndpointName", "Body")
# The answer's header members, as boto3 names them in its dict (lower-case header names).
RESPONSE_HEADERS = {
    "ContentType": "content-type",
    "InvokedProductionVariant": "x-amzn-invoked-production-variant",
    "CustomAttributes": "x-amzn-sagemaker-custom-attributes",
    "NewSessionId": "x-amzn-sagemaker-new-session-id",
    "ClosedSessionId": "x-amzn-sagemaker-closed-session-id",
}
# The service's modeled errors and the body members botocore copies to the top of the error response.
MODELED_ERRORS = {
    "InternalDependencyException": ("Message",),
    "InternalFailure": ("Message",),
    "InternalStreamFailure": ("Message",),
    "ModelError": ("Message", "OriginalStatusCode", "OriginalMessage", "LogStreamArn"),
    "ModelNotReadyException": ("Message",),
    "ModelStreamError": ("Message", "ErrorCode"),
    "ServiceUnavailable": ("Message",),
    "ValidationError": ("Message",),
}
_INTEGER_MEMBERS = frozenset({"OriginalStatusCode"})

# --- retries: AWS's standard mode (botocore 1.44's botocore/retries/standard.py), numbers in the README ---------
# Throttling codes (botocore's list; SageMaker answers throttling as ThrottlingException, HTTP 400:
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
# "Either a serverless endpoint variant's resources are still being provisioned, or a multi-model endpoint is still
# downloading or loading the target model. Wait and try your request again." botocore does not retry it (a modeled
# 429); this client waits as for throttling, then tries again within max_attempts.
# https://docs.aws.amazon.com/botocore/latest/reference/services/sagemaker-runtime/client/exceptions/ModelNotReadyException.html
MODEL_NOT_READY = "ModelNotReadyException"
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"})
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
# Delay before retry i (1-based): random(0, 1) * min(base * 2 ** (i - 1), MAX_BACKOFF), base 1 s for throttling
# and ModelNotReady, 50 ms for other retryable failures; an x-amz-retry-after answer (ms) raises it, at most 5 s.
THROTTLING_BASE_SECONDS = 1.0
TRANSIENT_BASE_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 20.0
RETRY_AFTER_MAX_EXTRA_SECONDS = 5.0
# The retry quota, one per client: 500 tokens; a retry costs 14 (5 after throttling); a success gives back 1, or
# what its retry took. Empty, failures are answered at once: no retry storm from a fleet during an outage.
QUOTA_CAPACITY = 500
RETRY_COST = 14
THROTTLING_RETRY_COST = 5
NO_RETRY_REFUND = 1
# RefreshableCredentials.get_frozen_credentials costs about 9 us (a lock and two datetimes), a quarter of a
# signature: the frozen keys are reused for a second. botocore refreshes 15 minutes (at the latest 10) before
# expiry, so a second-old copy is never an expired one.
CREDENTIALS_RECHECK_SECONDS = 1.0

_THROTTLING, _TRANSIENT = "throttling", "transient"


@dataclass(frozen=True)
class ClientMeta:
    """What boto3's ``client.meta`` tells of a client: its URL, Region and botocore Config."""

    endpoint_url: str
    region_name: str
    config: Config


def _positive(name: str, value: Any, whole: bool, allowed: str) -> None:
    number = isinstance(value, int) if whole else isinstance(value, int | float)
    if not number or isinstance(value, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def check_options(pool_size: Any, connect_timeout: Any, read_timeout: Any, max_attempts: Any) -> None:
    """One-line ValueErrors naming the option, its value and what is allowed."""
    _positive("pool_size", pool_size, True, "a whole number of connections, at least 1")
    for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
        _positive(name, value, False, "a positive number of seconds")
    _positive("max_attempts", max_attempts, True, "a whole number of attempts, at least 1 (1: no retry)")


def client_config(pool_size: int, connect_timeout: float, read_timeout: float, max_attempts: int) -> Config:
    """The botocore Config of the kit's client: a sized pool, tight timeouts, standard retries."""
    from botocore.config import Config

    return Config(
        max_pool_connections=pool_size,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
    )


def _configured_ca_bundle(session: Any) -> str | None:
    # boto3 keeps its botocore session in ``_session`` (a wrapper may hold a boto3 session there too): the
    # ca_bundle setting (AWS_CA_BUNDLE, the config file) is a botocore session's, as boto3 reads it.
    for _ in range(3):
        getter = getattr(session, "get_config_variable", None)
        if callable(getter):
            value = getter("ca_bundle")
            return value if isinstance(value, str) and value else None
        session = getattr(session, "_session", None)
        if session is None:
            return None
    return None


def tls_context(verify: str | bool | None, session: Any = None) -> ssl.SSLContext:
    """Verified TLS: ``verify`` a CA bundle file; None or True the session's ca_bundle setting, else botocore's
    default bundle (certifi's, as boto3 uses); False no verification at all (local testing only)."""
    if verify is False:
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        return unverified
    if verify is not None and not isinstance(verify, str | bool):
        raise ValueError(f"verify={verify!r} is invalid; allowed: a CA bundle file, True or None, or False")
    bundle = verify if isinstance(verify, str) else _configured_ca_bundle(session)
    if bundle is None:
        from botocore.httpsession import get_cert_path

        bundle = get_cert_path(True)
    try:
        return ssl.create_default_context(cafile=bundle)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ValueError(f"verify={bundle!r} cannot be read as a CA bundle ({reason}); allowed: a PEM file") from None


class _OneWrite:
    """http.client writes a request's head and its body with two sends: held here and sent as one, one
    segment on the wire and one system call fewer (about a tenth of the client's CPU per call on loopback)."""

    held: list[bytes] | None = None

    def send(self, data: Any) -> None:
        if self.held is None:
            super().send(data)  # type: ignore[misc]
        else:
            self.held.append(bytes(data))

    def request_at_once(self, path: str, body: bytes, headers: Mapping[str, str]) -> None:
        held: list[bytes] = []
        self.held = held
        try:
            self.request("POST", path, body=body, headers=headers)  # type: ignore[attr-defined]
        finally:
            self.held = None
        self.send(b"".join(held))


class _Connection(_OneWrite, http.client.HTTPConnection):
    pass


class _TlsConnection(_OneWrite, http.client.HTTPSConnection):
    pass


def _readable(sock: socket.socket) -> bool:
    """An idle keep-alive connection with something to read has been closed (or spoken to) by the server."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


class _Pool:
    """Idle kept-alive connections, newest first. A caller takes one or makes one; at most ``size`` are kept:
    as urllib3 (boto3's pool) does, a burst past it gets connections of its own, closed after their call."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._idle: list[_Connection | _TlsConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> _Connection | _TlsConnection | None:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return None
            if connection.sock is not None and not _readable(connection.sock):
                return connection
            connection.close()  # the server closed it while it idled: not worth a failed call

    def give_back(self, connection: _Connection | _TlsConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._size:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for connection in idle:
            connection.close()


def _headers_of(response: http.client.HTTPResponse) -> dict[str, str]:
    # Lower-case names, repeated headers joined with ", " (botocore's HTTPHeaders dict, from urllib3's).
    headers: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _json_object(data: bytes) -> dict[str, Any]:
    if not data:
        return {}
    text = data.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"message": text}
    return parsed if isinstance(parsed, dict) else {"message": text}


def _short_code(code: str) -> str:
    # "aws.protocols#ThrottlingException:http://internal..." -> "ThrottlingException"
    return code.split(":", 1)[0].rsplit("#", 1)[-1]


def error_response(status: int, headers: Mapping[str, str], data: bytes) -> dict[str, Any]:
    """The parsed error as botocore parses SageMaker Runtime's rest-json errors: Error.Code from x-amzn-ErrorType
    (else the body's code or __type, else the status), Error.Message from the body, RequestId, and a modeled
    error's body members (ModelError's OriginalStatusCode, ...) at the top. An empty or HTML 5XX answer is a
    generic error: the status as code, its reason as message."""
    stripped = data.strip()
    if status >= 500 and (not stripped or stripped.startswith(b"<html>")):
        generic = {"Code": str(status), "Message": http.client.responses.get(status, "")}
        return {"Error": generic, "ResponseMetadata": {}}
    body = _json_object(data)
    code: Any = body.get("__type", str(status))
    if isinstance(code, str):
        code = code.split(":", 1)[0]
        code = code.rsplit("#", 1)[1] if "#" in code else code
    metadata = {"RequestId": headers["x-amzn-requestid"]} if "x-amzn-requestid" in headers else {}
    parsed: dict[str, Any] = {
        "Error": {"Message": body.get("message", body.get("Message", "")), "Code": code},
        "ResponseMetadata": metadata,
    }
    override: Any = headers.get("x-amzn-errortype")
    if override is None and ("code" in body or "Code" in body):
        override = body.get("code", body.get("Code", ""))
    if override is not None:
        parsed["Error"]["Code"] = _short_code(override) if isinstance(override, str) else override
    for member in MODELED_ERRORS.get(parsed["Error"]["Code"], ()):
        value = body.get(member)
        if value is not None:
            parsed[member] = int(value) if member in _INTEGER_MEMBERS else value
    return parsed


def _retry_kind(status: int, code: Any) -> str | None:
    if code in THROTTLING_CODES or code == MODEL_NOT_READY or (status == 429 and code not in MODELED_ERRORS):
        return _THROTTLING
    if code in TRANSIENT_CODES or status in TRANSIENT_STATUS:
        return _TRANSIENT
    return None


class FastRuntimeClient:
    """SageMaker Runtime's ``invoke_endpoint`` for ad servers: the keyword arguments and answer of boto3's, over
    ``pool_size`` kept-alive connections (thread-safe), signed with the session's credentials (refreshed in time).

    ``session``: a boto3 or botocore session (None: a new botocore session) for credentials, Region, endpoint URL
    and CA bundle, resolved as boto3 resolves them. ``verify``: a CA bundle file, or False (local testing only).
    ``max_attempts`` counts every attempt. Retried: 5XX 500/502/503/504 and connection failures and timeouts
    (after random(0, 1) x 50 ms, doubling per retry), throttling and ModelNotReadyException (random(0, 1) x 1 s,
    doubling, at most 20 s, at least an x-amz-retry-after). ``backoff=False``: the client never sleeps: failures
    are retried at once, throttling and ModelNotReady are raised at once. Errors are botocore's: ClientError
    (``client.exceptions.ModelError``, ...), ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError.
    ``sleep``, ``jitter`` and ``clock`` stand in for time.sleep, random.random and time.monotonic in tests."""

    def __init__(
        self,
        session: Any = None,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        verify: str | bool | None = None,
        pool_size: int = 64,
        connect_timeout: float = 0.5,
        read_timeout: float = 1.0,
        max_attempts: int = 2,
        backoff: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_options(pool_size, connect_timeout, read_timeout, max_attempts)
        if not isinstance(backoff, bool):
            raise ValueError(f"backoff={backoff!r} is invalid; allowed: True or False")
        import botocore.session
        from botocore import exceptions as errors
        from botocore.response import StreamingBody
        from botocore.retries.quota import RetryQuota

        self._errors, self._streaming_body = errors, StreamingBody
        session = botocore.session.get_session() if session is None else session
        given = {
            name: value for name, value in (("endpoint_url", endpoint_url), ("verify", verify)) if value is not None
        }
        make = getattr(session, "client", None) or session.create_client
        # boto3's own client, built and closed at once (it never connects): the endpoint URL, Region and the
        # exception classes come out exactly as the boto3 transport would have them, from the same session.
        config = client_config(pool_size, connect_timeout, read_timeout, max_attempts)
        reference = make("sagemaker-runtime", region_name=region, config=config, **given)
        try:
            self.meta = ClientMeta(reference.meta.endpoint_url, reference.meta.region_name, reference.meta.config)
            self.exceptions = reference.exceptions
        finally:
            reference.close()
        self._credentials = session.get_credentials()
        self._frozen: Any = None
        self._frozen_until = -math.inf
        self._date: tuple[int, str] = (-1, "")

        parts = urllib.parse.urlsplit(self.meta.endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint_url={self.meta.endpoint_url!r} is invalid; allowed: an http(s) URL")
        self._https = parts.scheme == "https"
        self._hostname, self._port = parts.hostname, parts.port
        self._host = host_header(parts.scheme, parts.hostname, parts.port)
        self._base_path = parts.path.rstrip("/")
        self._base_url = f"{parts.scheme}://{parts.netloc}"
        self._tls = tls_context(verify, session) if self._https else None
        self._pool = _Pool(pool_size)
        # A client dropped without close() (a script's, a test's) closes its idle connections as it goes.
        weakref.finalize(self, self._pool.close)
        self._connect_timeout, self._read_timeout = float(connect_timeout), float(read_timeout)
        self._max_attempts, self._backoff = max_attempts, backoff
        self._sleep, self._jitter, self._clock = sleep, jitter, clock
        self._quota = RetryQuota(QUOTA_CAPACITY)
        self._paths: dict[str, str] = {}

    # --- the call ----------------------------------------------------------------------------------------------

    def invoke_endpoint(self, *args: Any, **params: Any) -> dict[str, Any]:
        """boto3's ``invoke_endpoint``: EndpointName, Body (bytes, str or a file), ContentType, Accept, and the
        other header parameters of the service model; answers {Body, ContentType, InvokedProductionVariant, ...,
        ResponseMetadata}. Bad parameters raise botocore's ParamValidationError with botocore's report."""
        if args:
            raise TypeError("invoke_endpoint() only accepts keyword arguments.")
        name, body, headers = self._request(params)
        path = self._paths.get(name)
        if path is None:
            if len(self._paths) > 1024:
                self._paths.clear()
            path = self._paths[name] = self._base_path + invocations_path(name)
        return self._call(path, headers, body)

    def _request(self, params: Mapping[str, Any]) -> tuple[str, bytes, dict[str, str]]:
        problems = [f'Missing required parameter in input: "{name}"' for name in REQUIRED if name not in params]
        problems += [
            f'Unknown parameter in input: "{name}", must be one of: {", ".join(PARAMETERS)}'
            for name in params
            if name not in PARAMETERS
        ]
        headers: dict[str, str] = {}
        body = b""
        for name, value in params.items():
            if name == "Body":
                if isinstance(value, bytes | bytearray | memoryview):
                    body = bytes(value)
                elif isinstance(value, str):
                    body = value.encode()
                elif callable(getattr(value, "read", None)):
                    read = value.read()
                    body = read.encode() if isinstance(read, str) else bytes(read)
                else:
                    problems.append(
                        f"Invalid type for parameter Body, value: {value!r}, type: {type(value)}, valid types: "
                        "<class 'bytes'>, <class 'bytearray'>, file-like object"
                    )
            elif name == "EndpointName" or name in REQUEST_HEADERS:
                if not isinstance(value, str):
                    problems.append(
                        f"Invalid type for parameter {name}, value: {value!r}, type: {type(value)}, valid types: "
                        "<class 'str'>"
                    )
                elif name in REQUEST_HEADERS:
                    header, least = REQUEST_HEADERS[name]
                    if len(value) < least:
                        problems.append(
                            f"Invalid length for parameter {name}, value: {len(value)}, valid min length: {least}"
                        )
                    headers[header] = value
        if problems:
            raise self._errors.ParamValidationError(report="\n".join(problems))
        return params["EndpointName"], body, headers

    def _call(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        url = self._base_url + path
        attempt, cost = 1, 0
        while True:
            signed = self._signed(path, headers, body)
            # Unsigned, as botocore adds it after signing: AWS's retry header, the attempt and the most there are.
            signed["amz-sdk-request"] = f"attempt={attempt}; max={self._max_attempts}"
            try:
                status, answer, data = self._send(path, signed, body, url)
            except (self._errors.ConnectionError, self._errors.HTTPClientError):
                if attempt >= self._max_attempts or not self._quota.acquire(RETRY_COST):
                    raise
                cost = RETRY_COST
                self._wait(_TRANSIENT, attempt, None)
                attempt += 1
                continue
            metadata: dict[str, Any] = {}
            if 200 <= status < 300:
                self._quota.release(cost or NO_RETRY_REFUND)
                parsed = self._answer(status, answer, data)
            else:
                parsed = error_response(status, answer, data)
                parsed["ResponseMetadata"].update(HTTPStatusCode=status, HTTPHeaders=answer)
            if attempt >= self._max_attempts:
                metadata["MaxAttemptsReached"] = True  # botocore marks the last allowed attempt, whatever its end
            elif status >= 300:
                kind = _retry_kind(status, parsed["Error"]["Code"])
                if kind is not None and (self._backoff or kind == _TRANSIENT):
                    cost = THROTTLING_RETRY_COST if kind == _THROTTLING else RETRY_COST
                    if self._quota.acquire(cost):
                        self._wait(kind, attempt, answer.get("x-amz-retry-after"))
                        attempt += 1
                        continue
                    metadata["RetryQuotaReached"] = True
            parsed["ResponseMetadata"].update(metadata, RetryAttempts=attempt - 1)
            if status < 300:
                return parsed
            raise self.exceptions.from_code(parsed["Error"]["Code"])(parsed, OPERATION)

    def _answer(self, status: int, headers: dict[str, str], data: bytes) -> dict[str, Any]:
        metadata = {"RequestId": headers["x-amzn-requestid"]} if "x-amzn-requestid" in headers else {}
        parsed: dict[str, Any] = {"ResponseMetadata": {**metadata, "HTTPStatusCode": status, "HTTPHeaders": headers}}
        for member, header in RESPONSE_HEADERS.items():
            if header in headers:
                parsed[member] = headers[header]
        parsed["Body"] = self._streaming_body(io.BytesIO(data), len(data))
        return parsed

    def _wait(self, kind: str, attempt: int, retry_after: str | None) -> None:
        if not self._backoff:
            return
        base = THROTTLING_BASE_SECONDS if kind == _THROTTLING else TRANSIENT_BASE_SECONDS
        delay = self._jitter() * min(base * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, min(int(retry_after) / 1000, delay + RETRY_AFTER_MAX_EXTRA_SECONDS))
        self._sleep(delay)

    # --- signing ---------------------------------------------------------------------------------------------

    def _current_credentials(self) -> Any:
        now = self._clock()
        if now >= self._frozen_until or self._frozen is None:
            if self._credentials is None:
                raise self._errors.NoCredentialsError()
            self._frozen = self._credentials.get_frozen_credentials()
            self._frozen_until = now + CREDENTIALS_RECHECK_SECONDS
        return self._frozen

    def _signed(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        credentials = self._current_credentials()
        second = int(time.time())
        date = self._date
        if date[0] != second:
            date = self._date = (second, amz_date(second))
        return sign(
            method="POST",
            host=self._host,
            path=path,
            headers=headers,
            body=body,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            token=credentials.token,
            region=self.meta.region_name,
            timestamp=date[1],
        )

    # --- the wire --------------------------------------------------------------------------------------------

    def _connect(self, url: str) -> _Connection | _TlsConnection:
        errors = self._errors
        connection: _Connection | _TlsConnection
        if self._tls is not None:
            connection = _TlsConnection(self._hostname, self._port, timeout=self._connect_timeout, context=self._tls)
        else:
            connection = _Connection(self._hostname, self._port, timeout=self._connect_timeout)
        try:
            connection.connect()  # TCP and the TLS handshake, both within the connect timeout
        except TimeoutError:
            connection.close()
            raise errors.ConnectTimeoutError(
                endpoint_url=url,
                error=f"Connection to {self._hostname} timed out. (connect timeout={self._connect_timeout})",
            ) from None
        except ssl.SSLError as error:
            connection.close()
            raise errors.SSLError(endpoint_url=url, error=error) from None
        except OSError as error:
            connection.close()
            raise errors.EndpointConnectionError(endpoint_url=url, error=error) from None
        sock = connection.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.settimeout(self._read_timeout)
        return connection

    def _send(self, path: str, headers: dict[str, str], body: bytes, url: str) -> tuple[int, dict[str, str], bytes]:
        connection = self._pool.take() or self._connect(url)
        errors, reusable = self._errors, False
        try:
            connection.request_at_once(path, body, headers)
            response = connection.getresponse()
            data = response.read()
            reusable = not response.will_close
            return response.status, _headers_of(response), data
        except TimeoutError:
            raise errors.ReadTimeoutError(
                endpoint_url=url, error=f"Read timed out. (read timeout={self._read_timeout})"
            ) from None
        except ssl.SSLError as error:
            raise errors.SSLError(endpoint_url=url, error=error) from None
        except (OSError, http.client.HTTPException) as error:  # reset, closed, or a malformed answer
            raise errors.ConnectionClosedError(endpoint_url=url, error=error) from None
        finally:
            if reusable:
                self._pool.give_back(connection)
            else:
                connection.close()

    def close(self) -> None:
        """Close the kept-alive connections (boto3's ``client.close()``); connections in use close when done."""
        self._pool.close()
