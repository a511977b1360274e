"""The kit's client for the traffic-filter endpoint: rows in, one prediction per row out, for every profile.

Ad servers should keep one client per process: it pools and keeps alive its HTTPS connections to the
runtime VPC endpoint, and its timeouts and retries are sized for a 20 ms budget, not the SDK's 60 s.

Every shape comes from the model's manifest (``ModelSchema.from_manifest``): how many features a row has,
and what the model answers per row (a probability, a value, or ``columns`` class probabilities).
Each serving profile's container takes its own request format (tests/fixtures/client/README.md names the
sources): ``cpu``, the built-in XGBoost container, text/csv; ``gpu``, Triton Inference Server with the FIL
backend, the KServe v2 JSON protocol; ``inferentia``, the Neo PyTorch container, a JSON array per row.
Numbers are sent exactly (``repr(float(x))``, the shortest text that reads back as the same float) and
answers are checked strictly: a prediction that does not fit the schema is a RequestError, never a guess.

To stay in its Availability Zone, a client calls the runtime VPC endpoint's zonal DNS name for its own AZ
(``zonal_runtime_client``, or ``runtime_endpoint_url`` with ``runtime_client(endpoint_url=...)``): the default
private DNS name answers with every AZ's endpoint interface.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import numbers
import os
import re
import urllib.parse
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3

CONTENT_TYPE = "text/csv"
PROFILES = ("cpu", "gpu", "inferentia")
# The names in the gpu profile's Triton model configuration (config.pbtxt).
TRITON_INPUT = "input__0"
TRITON_OUTPUT = "output__0"
# Every profile's container reads features as float32 (XGBoost's DMatrix, Triton's FP32, the traced model).
FLOAT32_MAX = 3.4028234663852886e38
# Class probabilities are float32 softmax outputs: their sum is 1 to about 1e-7 per class.
SUM_TOLERANCE = 1e-4

# What a model answers per row, by XGBoost objective (the manifest's `objective`; the contract of issue 15).
OUTPUT_KINDS = ("probability", "value", "class_probabilities")
OBJECTIVE_KINDS = {
    "binary:logistic": "probability",
    "reg:logistic": "probability",
    "reg:squarederror": "value",
    "reg:absoluteerror": "value",
    "reg:pseudohubererror": "value",
    "multi:softprob": "class_probabilities",
}

# One prediction: a float for one-column outputs, a tuple of `columns` floats for class probabilities.
Prediction = float | tuple[float, ...]


class RequestError(ValueError):
    """A row the model cannot score correctly, or an answer that does not fit the request; the message says which."""


def _names(features: Sequence[str]) -> str:
    shown = ", ".join(features[:10])
    return shown if len(features) <= 10 else f"{shown}, ... ({len(features) - 10} more)"


@dataclass(frozen=True)
class ModelSchema:
    """The shape of a model's rows and answers: its features in column order, its output kind and columns."""

    features: tuple[str, ...]
    kind: str
    columns: int

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("features=() is invalid: allowed: one or more feature names")
        bad = [name for name in self.features if not isinstance(name, str) or not name.strip()]
        if bad:
            raise ValueError(f"features holds {bad[0]!r}; allowed: non-empty strings")
        duplicates = sorted({name for name in self.features if self.features.count(name) > 1})
        if duplicates:
            raise ValueError(f"features repeats {', '.join(duplicates)}; allowed: unique names")
        if self.kind not in OUTPUT_KINDS:
            raise ValueError(f"kind={self.kind!r} is invalid: allowed: one of {list(OUTPUT_KINDS)}")
        if isinstance(self.columns, bool) or not isinstance(self.columns, int):
            raise ValueError(f"columns={self.columns!r} is invalid: allowed: a whole number")
        if self.kind == "class_probabilities" and self.columns < 2:
            raise ValueError(f"columns={self.columns} is invalid for class_probabilities: allowed: 2 or more")
        if self.kind != "class_probabilities" and self.columns != 1:
            raise ValueError(f"columns={self.columns} is invalid for {self.kind}: allowed: 1")

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> ModelSchema:
        """The schema a model manifest describes (``features``, ``objective``, ``output``, ``num_class``).

        A manifest written before ``output`` existed (or whose ``output`` only describes a tensor, without
        ``kind`` and ``columns``) is read as probability, 1 column, only if its objective is binary:logistic."""
        if not isinstance(manifest, Mapping):
            raise ValueError("the manifest is not a JSON object")
        features = manifest.get("features")
        if not isinstance(features, list) or not features:
            raise ValueError(f"the manifest's features is {str(features)[:80]}; allowed: a non-empty list of names")
        objective = manifest.get("objective")
        if objective not in OBJECTIVE_KINDS:
            raise ValueError(f"the manifest's objective is {objective!r}; allowed: one of {sorted(OBJECTIVE_KINDS)}")
        output = manifest.get("output")
        if output is not None and not isinstance(output, Mapping):
            raise ValueError(f"the manifest's output is {str(output)[:80]}; allowed: an object with kind and columns")
        if output is None or ("kind" not in output and "columns" not in output):
            if objective != "binary:logistic":
                raise ValueError(
                    f"the manifest has no output kind and columns; allowed without them: objective binary:logistic "
                    f"only, not {objective}"
                )
            return cls(tuple(features), "probability", 1)
        kind, columns = output.get("kind"), output.get("columns")
        if kind != OBJECTIVE_KINDS[objective]:
            raise ValueError(
                f"the manifest's output kind is {kind!r}; objective {objective} answers {OBJECTIVE_KINDS[objective]!r}"
            )
        if objective == "multi:softprob" and manifest.get("num_class") != columns:
            raise ValueError(
                f"the manifest's output columns is {columns!r} but its num_class is {manifest.get('num_class')!r}; "
                "allowed: equal"
            )
        if isinstance(columns, bool) or not isinstance(columns, int):
            raise ValueError(f"the manifest's output columns is {columns!r}; allowed: a whole number")
        return cls(tuple(features), str(kind), columns)

    def row_problem(self, row: Sequence[Any]) -> str | None:
        """What is wrong with one row, worded to follow "row N" (None if the model can score it exactly)."""
        if isinstance(row, str | bytes) or not isinstance(row, Sequence):
            return f"is {str(row)[:40]!r}; allowed: a sequence of {len(self.features)} numbers"
        if len(row) != len(self.features):
            return f"has {len(row)} values; the model takes {len(self.features)}: {_names(self.features)}"
        for position, value in enumerate(row):
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(float(value))
                or abs(float(value)) > FLOAT32_MAX
            ):
                return (
                    f"value {position} ({self.features[position]}) is {value!r}; allowed: finite numbers within "
                    f"float32's range (|x| <= {FLOAT32_MAX!r})"
                )
        return None

    def check_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Raise RequestError for the first row the model cannot score exactly. XGBoost scores a short row
        as if values were missing, so the count is checked here rather than trusted to the container."""
        if not rows:
            raise RequestError("no rows to score")
        for index, row in enumerate(rows):
            problem = self.row_problem(row)
            if problem is not None:
                raise RequestError(f"row {index} {problem}")


@dataclass(frozen=True)
class Codec:
    """How one profile's container takes rows and answers: headers, rows per request, body in and out."""

    profile: str
    content_type: str
    accept: str
    # Triton refuses a batch over the model's max_batch_size; the Neo model is compiled for one row.
    max_rows_per_request: int
    encode: Callable[[Sequence[Sequence[float]]], bytes]
    # (body, rows expected, schema) -> one checked prediction per row.
    decode: Callable[[bytes, int, ModelSchema], list[Prediction]]


def runtime_client(
    session: boto3.Session | None = None,
    *,
    region: str | None = None,
    pool_size: int = 64,
    connect_timeout: float = 0.5,
    read_timeout: float = 1.0,
    max_attempts: int = 2,
    endpoint_url: str | None = None,
    verify: str | bool | None = None,
) -> Any:
    """A SageMaker Runtime client with a sized connection pool, tight timeouts and bounded retries.

    ``endpoint_url`` (e.g. ``runtime_endpoint_url(...)``, a zonal name) and ``verify`` (a CA bundle file, or
    False) go to boto3's client as they are; left None, boto3 chooses as it always does."""
    # Imported here: the schema and codecs need only the standard library (the fake endpoint uses them).
    import boto3
    from botocore.config import Config

    config = Config(
        max_pool_connections=pool_size,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
    )
    # Only what was given: a session wrapper may fix its own endpoint_url (scripts/invoke.py's EndpointSession).
    given = {name: value for name, value in (("endpoint_url", endpoint_url), ("verify", verify)) if value is not None}
    return (session or boto3.Session()).client("sagemaker-runtime", region_name=region, config=config, **given)


# --- the zonal endpoint: calls that stay in the client's Availability Zone ---------------------------------

logger = logging.getLogger(__name__)

# EC2's instance metadata service, IMDSv2: a PUT for a session token (TTL 1 s to 6 h), then GETs that carry it.
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
IMDS_URL = "http://169.254.169.254"
IMDS_TOKEN_TTL_SECONDS = 60
# ECS sets this variable in each container; `<its value>/task` answers the task's metadata as JSON.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4-response.html
ECS_METADATA_VARIABLE = "ECS_CONTAINER_METADATA_URI_V4"
# Each metadata request's connect and read timeout: both services are link-local and answer in milliseconds;
# where neither exists, discovery gives up within a fraction of a second per request.
DISCOVERY_TIMEOUT = 0.25

# An AZ name as IMDS and ECS print one: us-east-1a, cn-north-1b, us-west-2-lax-1a (a Local Zone).
_AZ = re.compile(r"[a-z]{2,4}(?:-[a-z0-9]+)+")
_REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-\d+")


class ZonalFallbackWarning(RuntimeWarning):
    """The client uses the regional runtime name, not its AZ's zonal one: some of its calls will cross AZs."""


def _fetch(method: str, url: str, headers: Mapping[str, str], timeout: float, limit: int) -> bytes | None:
    """The body of a 200 answer of at most ``limit`` bytes, else None. http.client, not urllib: a proxy named
    in the environment (HTTP_PROXY) must never be sent a link-local metadata request."""
    connection = None
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return None
        # The port always given: http.client would read "fd00:ec2::254" (IMDS over IPv6) as host:port.
        connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=dict(headers))
        response = connection.getresponse()
        body = response.read(limit + 1)
        return body if response.status == 200 and len(body) <= limit else None
    except (OSError, http.client.HTTPException, ValueError):  # refused, timed out, malformed, a bad port
        return None
    finally:
        if connection is not None:
            connection.close()


def _az(value: Any) -> str | None:
    text = value.decode(errors="replace").strip() if isinstance(value, bytes) else value
    return text if isinstance(text, str) and len(text) <= 64 and _AZ.fullmatch(text) else None


def _ecs_availability_zone(metadata_uri: str, timeout: float) -> str | None:
    # AvailabilityZone is in the answer for Fargate tasks only (platform 1.4+ on Linux, 1.0.0 on Windows): a
    # task on EC2 container instances gets None here and asks the instance (IMDS) instead.
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4-response.html
    body = _fetch("GET", metadata_uri.rstrip("/") + "/task", {}, timeout, 1 << 20)
    try:
        task = json.loads(body) if body is not None else None
    except ValueError:
        return None
    return _az(task.get("AvailabilityZone")) if isinstance(task, dict) else None


def _imds_availability_zone(imds_url: str, timeout: float) -> str | None:
    # IMDSv2 only: a GET without a token is refused on instances that require tokens. In a container the PUT's
    # answer takes one more hop: with the instance's hop limit at 1 it never arrives, the request times out and
    # this gives None ("In a container environment, consider ... increasing the hop limit to 2").
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
    base = imds_url.rstrip("/")
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": str(IMDS_TOKEN_TTL_SECONDS)}
    token = _fetch("PUT", f"{base}/latest/api/token", ttl, timeout, 4096)
    if not token:
        return None
    # placement/availability-zone: "The Availability Zone in which the instance launched."
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-categories.html
    answer = _fetch(
        "GET",
        f"{base}/latest/meta-data/placement/availability-zone",
        {"X-aws-ec2-metadata-token": token.decode(errors="replace").strip()},
        timeout,
        256,
    )
    return _az(answer) if answer is not None else None


def availability_zone(
    *,
    environ: Mapping[str, str] | None = None,
    imds_url: str = IMDS_URL,
    timeout: float = DISCOVERY_TIMEOUT,
) -> str | None:
    """This process's Availability Zone name (e.g. us-east-1a), or None if it cannot be found: from ECS task
    metadata v4 when ``ECS_CONTAINER_METADATA_URI_V4`` is set (Fargate), else (or if that has none) from EC2
    instance metadata (IMDSv2). ``timeout`` bounds each request; a failure gives None, never an exception."""
    environ = os.environ if environ is None else environ
    metadata_uri = environ.get(ECS_METADATA_VARIABLE)
    if metadata_uri:
        found = _ecs_availability_zone(metadata_uri, timeout)
        if found is not None:
            return found
    return _imds_availability_zone(imds_url, timeout)


def _domain(region: str) -> str:
    # China's partition ends in .amazonaws.com.cn, as botocore's own endpoint for a cn- Region does.
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def regional_runtime_url(region: str) -> str:
    """SageMaker Runtime's default name in ``region``, which the endpoint's private DNS resolves to its
    interfaces in every AZ: ``https://runtime.sagemaker.<region>.amazonaws.com`` (``.com.cn`` in China)."""
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ValueError(f"region={str(region)[:40]!r} is invalid: allowed: a Region name such as us-east-1")
    return f"https://runtime.sagemaker.{region}.{_domain(region)}"


def _zonal_dns_names(value: Mapping[str, str] | str, region: str) -> dict[str, str]:
    """{az: zonal name} from a mapping or the JSON text of the stack output, every entry checked."""
    parsed: Any = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ValueError(
                f"zonal_dns_names is not JSON: {value[:80]!r}; allowed: a JSON object of AZ to zonal DNS name "
                "(the stack output RuntimeZonalDnsNames)"
            ) from None
    if not isinstance(parsed, Mapping):
        raise ValueError(f"zonal_dns_names is {str(parsed)[:80]!r}; allowed: a mapping of AZ to zonal DNS name")
    domain = _domain(region)
    names = {}
    for az, name in parsed.items():
        if _az(az) != az:
            raise ValueError(f"zonal_dns_names has the key {str(az)[:40]!r}; allowed: AZ names such as {region}a")
        # A zonal name (PrivateLink guide, "DNS hostnames"): vpce-<id>-<suffix>-<az>.<service>.<region>.vpce.<domain>;
        # the endpoint's regional name lacks `-<az>`. SageMaker's guide calls the vpce names with
        # --endpoint-url https://..., so TLS (a certificate for the name) and SigV4 hold there.
        # https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html
        # https://docs.aws.amazon.com/sagemaker/latest/dg/interface-vpc-endpoint.html
        zonal = re.compile(
            rf"vpce-[0-9a-f]+-[0-9a-z]+-{re.escape(az)}\.runtime\.sagemaker\.{re.escape(region)}"
            rf"\.vpce\.{re.escape(domain)}"
        )
        if not isinstance(name, str) or not zonal.fullmatch(name):
            raise ValueError(
                f"zonal_dns_names[{az!r}] is {str(name)[:120]!r}; allowed: the runtime interface endpoint's zonal "
                f"DNS name for {az}, vpce-<id>-<suffix>-{az}.runtime.sagemaker.{region}.vpce.{domain}"
            )
        names[az] = name
    return names


def _endpoint_url(
    region: str, zonal_dns_names: Mapping[str, str] | str, az: str | None, discover: bool, stacklevel: int
) -> str:
    regional = regional_runtime_url(region)
    names = _zonal_dns_names(zonal_dns_names, region)
    if az is not None and _az(az) != az:
        raise ValueError(f"az={str(az)[:40]!r} is invalid: allowed: an AZ name such as {region}a, or None")
    if az is None and discover:
        az = availability_zone()
    if az is not None and az in names:
        return f"https://{names[az]}"
    if az is None:
        told = "not given, and neither ECS task metadata nor EC2 instance metadata told it" if discover else "not given"
        reason = f"this client's Availability Zone is unknown ({told})"
    else:
        reason = f"there is no zonal name for {az} (the names cover {', '.join(sorted(names)) or 'no AZ'})"
    # Private DNS: the default name "resolves to the private IP addresses of the endpoint network interfaces in
    # your VPC", one per AZ, so a connection lands on another AZ's interface about (N-1)/N of the time.
    # https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html
    n = str(len(names)) if len(names) > 1 else "N"
    message = (
        f"rtb_client: {reason}; using the regional name {regional}, whose private DNS answers with every AZ's "
        f"endpoint interface: about {n}-1 in {n} connections cross Availability Zones (more latency per call, "
        "cross-AZ data charges)"
    )
    warnings.warn(message, ZonalFallbackWarning, stacklevel=stacklevel)
    logger.warning(message)
    return regional


def runtime_endpoint_url(
    region: str, zonal_dns_names: Mapping[str, str] | str, *, az: str | None = None, discover: bool = True
) -> str:
    """``https://<zonal name of this AZ>`` from ``zonal_dns_names`` ({az: name}, or the JSON text of the stack
    output RuntimeZonalDnsNames). ``az`` unset: discovered (``availability_zone()``) unless ``discover`` is
    False. No name for the AZ: the regional name, with a ZonalFallbackWarning and a log record. A name that is
    not the runtime endpoint's zonal name for its AZ in ``region`` is a ValueError."""
    return _endpoint_url(region, zonal_dns_names, az, discover, stacklevel=3)


def zonal_runtime_client(
    region: str,
    zonal_dns_names: Mapping[str, str] | str,
    *,
    az: str | None = None,
    session: boto3.Session | None = None,
    **options: Any,
) -> Any:
    """``runtime_client`` on this AZ's zonal name (``runtime_endpoint_url``, which may warn and fall back to
    the regional one); ``options`` are runtime_client's (pool_size, timeouts, verify, ...)."""
    url = _endpoint_url(region, zonal_dns_names, az, True, stacklevel=3)
    return runtime_client(session, region=region, endpoint_url=url, **options)


def check_rows(rows: Sequence[Sequence[Any]], schema: ModelSchema) -> None:
    """As many finite float32-range numbers per row as the schema has features (``ModelSchema.check_rows``)."""
    schema.check_rows(rows)


def number_text(value: float) -> str:
    """The exact text of a number: the shortest that reads back as the same float (never %g's 6 digits)."""
    return repr(float(value))


def _csv(rows: Sequence[Sequence[float]]) -> bytes:
    return "".join(",".join(number_text(value) for value in row) + "\n" for row in rows).encode()


def encode_rows(rows: Sequence[Sequence[float]], schema: ModelSchema) -> bytes:
    """The cpu profile's request: one CSV line per row, no header; rows checked first."""
    schema.check_rows(rows)
    return _csv(rows)


def _checked(values: list[list[float]], expected: int, schema: ModelSchema) -> list[Prediction]:
    """Each row's `columns` numbers, checked against the schema's output kind, as the client returns them."""
    if len(values) != expected:
        raise RequestError(f"expected {expected} predictions, got {len(values)}")
    predictions: list[Prediction] = []
    for index, row in enumerate(values):
        if len(row) != schema.columns:
            raise RequestError(f"prediction {index} has {len(row)} values; the model answers {schema.columns}")
        for value in row:
            if not math.isfinite(value):
                raise RequestError(f"prediction {index} is {value!r}; allowed: finite numbers")
            if schema.kind != "value" and not 0.0 <= value <= 1.0:
                raise RequestError(f"prediction {index} is {value!r}; allowed: probabilities in [0, 1]")
        if schema.kind == "class_probabilities":
            if abs(math.fsum(row) - 1.0) > SUM_TOLERANCE:
                raise RequestError(
                    f"prediction {index}'s class probabilities sum to {math.fsum(row)!r}; allowed: 1 within "
                    f"{SUM_TOLERANCE:g}"
                )
            predictions.append(tuple(row))
        else:
            predictions.append(row[0])
    return predictions


# A number as Python, NumPy or JSON print one; nan and inf are read so the check can name them.
_NUMBER = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE)


def _number(text: str, what: str) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise RequestError(f"{what} holds {text[:40]!r}, not a number")
    return float(text)


def decode_predictions(body: bytes, expected: int, schema: ModelSchema) -> list[Prediction]:
    """The XGBoost container's text/csv answer: one number per row (newline- or comma-separated) for one
    column; one Python list per line, ``[0.1, 0.2, 0.7]``, for class probabilities (its serve.py prints
    ``str`` of each row of the prediction array)."""
    text = body.decode(errors="replace").strip()
    if schema.columns == 1:
        parts = [part for part in text.replace("\n", ",").split(",") if part.strip()]
        return _checked([[_number(part, "the answer")] for part in parts], expected, schema)
    rows = []
    for number, line in enumerate(part.strip() for part in text.splitlines() if part.strip()):
        if not (line.startswith("[") and line.endswith("]")):
            raise RequestError(f"answer line {number} is {line[:80]!r}; expected a list of {schema.columns} numbers")
        rows.append([_number(part, f"answer line {number}") for part in line[1:-1].split(",")])
    return _checked(rows, expected, schema)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        raise RequestError(f"the answer is not JSON: {body[:80]!r}") from None


def _numbers(values: Any, what: str) -> list[float]:
    """A JSON array of numbers, nested to any depth, flattened in row-major order."""
    if isinstance(values, list):
        return [number for value in values for number in _numbers(value, what)]
    if isinstance(values, bool) or not isinstance(values, int | float):
        raise RequestError(f"{what} holds {values!r}, not a number")
    return [float(values)]


def _triton_request(rows: Sequence[Sequence[float]]) -> bytes:
    # KServe v2 tensor data may be flat or nested; flat, row-major, is what Triton's own client sends.
    # json.dumps writes a float as repr does: exact.
    tensor = {
        "name": TRITON_INPUT,
        "shape": [len(rows), len(rows[0]) if rows else 0],
        "datatype": "FP32",
        "data": [float(value) for row in rows for value in row],
    }
    return json.dumps({"inputs": [tensor], "outputs": [{"name": TRITON_OUTPUT}]}).encode()


def _triton_predictions(body: bytes, expected: int, schema: ModelSchema) -> list[Prediction]:
    """output__0 of the FIL backend: [rows, 2] per-class probabilities of a binary classifier (P(class 1)
    is column 1), [rows, 1] for a value or a regression probability, [rows, k] for k class probabilities."""
    answer = _json(body)
    if not isinstance(answer, dict):
        raise RequestError(f"expected a KServe v2 inference response object, got {str(answer)[:80]}")
    if "error" in answer:
        raise RequestError(f"Triton answered an error: {str(answer['error'])[:200]}")
    outputs = answer.get("outputs")
    found = [out for out in outputs if isinstance(out, dict)] if isinstance(outputs, list) else []
    tensor = next((out for out in found if out.get("name") == TRITON_OUTPUT), None)
    if tensor is None:
        raise RequestError(f"the answer has no output {TRITON_OUTPUT}; outputs: {[out.get('name') for out in found]}")
    shape = tensor.get("shape")
    allowed = [[expected, 2], [expected, 1]] if schema.kind == "probability" else [[expected, schema.columns]]
    if shape not in allowed:
        raise RequestError(f"{TRITON_OUTPUT} has shape {shape}; expected {' or '.join(map(str, allowed))}")
    width = shape[1]
    values = _numbers(tensor.get("data"), TRITON_OUTPUT)
    if len(values) != expected * width:
        raise RequestError(f"{TRITON_OUTPUT} of shape {shape} holds {len(values)} values")
    rows = [values[start : start + width] for start in range(0, len(values), width)]
    if schema.kind == "probability" and width == 2:
        # Both columns are probabilities of one binary classifier: check them as such, then keep P(class 1).
        _checked(rows, expected, ModelSchema(schema.features, "class_probabilities", 2))
        rows = [[row[1]] for row in rows]
    return _checked(rows, expected, schema)


def _neo_request(rows: Sequence[Sequence[float]]) -> bytes:
    return json.dumps([[float(value) for value in row] for row in rows]).encode()


def _neo_predictions(body: bytes, expected: int, schema: ModelSchema) -> list[Prediction]:
    """The traced model's output tensor as a JSON array: [rows] or [rows, 1] for one column, [rows, k] for
    k class probabilities (one row per request: [p], [[p]] or [[p1, ..., pk]])."""
    answer = _json(body)
    if not isinstance(answer, list):
        raise RequestError(f"expected a JSON array of predictions, got {str(answer)[:80]}")
    if len(answer) != expected:
        raise RequestError(f"expected {expected} predictions, got {len(answer)}: {str(answer)[:80]}")
    rows = []
    for index, item in enumerate(answer):
        flat_list = isinstance(item, list) and not any(isinstance(value, list) for value in item)
        if flat_list or (schema.columns == 1 and not isinstance(item, list)):
            rows.append(_numbers(item, f"prediction {index}"))
        else:
            expected_form = "a number or [number]" if schema.columns == 1 else f"a list of {schema.columns} numbers"
            raise RequestError(f"prediction {index} is {str(item)[:80]}; expected {expected_form}")
    return _checked(rows, expected, schema)


_CODECS = {
    # 10,000 CSV rows stay far below the 6 MB request limit.
    "cpu": Codec("cpu", CONTENT_TYPE, CONTENT_TYPE, 10_000, _csv, decode_predictions),
    # At most the Triton model configuration's max_batch_size (4096, scripts/build_triton_artifact.py).
    "gpu": Codec("gpu", "application/json", "application/json", 1_000, _triton_request, _triton_predictions),
    # Compiled for an input of shape [1, number of features].
    "inferentia": Codec("inferentia", "application/json", "application/json", 1, _neo_request, _neo_predictions),
}


def codec_for(profile: str) -> Codec:
    """The request and answer format of a serving profile."""
    try:
        return _CODECS[profile]
    except KeyError:
        raise ValueError(f"profile={profile!r} is invalid: allowed: one of {list(PROFILES)}") from None


def predict(
    client: Any, endpoint_name: str, rows: Sequence[Sequence[float]], schema: ModelSchema, profile: str = "cpu"
) -> list[Prediction]:
    """One checked prediction per row from the endpoint (a float, or a tuple of class probabilities):
    as many requests as the profile needs, in order."""
    codec = codec_for(profile)
    schema.check_rows(rows)
    predictions: list[Prediction] = []
    for start in range(0, len(rows), codec.max_rows_per_request):
        chunk = rows[start : start + codec.max_rows_per_request]
        response = client.invoke_endpoint(
            EndpointName=endpoint_name, ContentType=codec.content_type, Accept=codec.accept, Body=codec.encode(chunk)
        )
        predictions += codec.decode(response["Body"].read(), len(chunk), schema)
    return predictions


def stack_output(cloudformation: Any, stack_name: str, key: str) -> str:
    """One output of a deployed stack, e.g. EndpointName."""
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise LookupError(f"stack {stack_name} has no output {key}")
