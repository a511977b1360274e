"""Invoke the stage's endpoint with one or many rows and show the predictions and client-side latency.

    python scripts/invoke.py --stage dev "2,0,0.0,7.0,3.0,20.0,2"
    python scripts/invoke.py --stage dev --file rows.csv --repeat 100
    cat rows.csv | python scripts/invoke.py --endpoint-name NAME --region us-east-1 -
    python scripts/invoke.py --endpoint-name NAME --endpoint-url http://127.0.0.1:8080 ROW   # a local endpoint
    python scripts/invoke.py --stage dev --endpoint-url http://127.0.0.1:8080 ROW   # the stage's model, served locally
    python scripts/invoke.py --endpoint-name NAME --rows -1.5,2,0,7,3,20,2       # a row that starts with a minus
    python scripts/invoke.py --endpoint-name NAME --profile inferentia --file rows.csv      # a Neo/inf1 endpoint
    python scripts/invoke.py --endpoint-name NAME --manifest my-model-manifest.json ROW      # another model

The endpoint comes from the deployed stack's EndpointName output (--stage) or --endpoint-name. Every call
goes through one pooled client from client/rtb_client, the one ad servers should copy, so --repeat
shows the latency of a kept-alive connection, not of a new TLS handshake per call. The request format is
the serving profile's: the stage's with --stage, else --profile (default cpu); a profile that takes fewer
rows per request (inferentia: one) gets several requests per call, and a call's latency covers them all.

A row is as many comma-separated numbers as the model manifest's features, in their order; a file or
stdin holds one row per line. An empty field (or nan) is a missing value, scored as XGBoost scores it by
the cpu and gpu profiles and refused for inferentia (docs/profiles.md). A row may start with a negative
number: give it as ROW or as --rows (also --rows=-1.5,...), or after "--". The manifest is the stage's
artifact's with --stage, else --manifest, else the profile's packaged artifact's (model_artifacts/); it also
says what the model answers per row: a probability, a value, or one probability per class. Bad input gets
one line on stderr: exit 2 for a usage problem (unknown stage, malformed or empty input, a row that does not
fit the manifest), 1 when the call fails (stack or endpoint not deployed, network, service errors).

With a loopback --endpoint-url (a local endpoint, e.g. python -m scripts.fake_endpoint) no AWS configuration
is needed: with --stage, the stage gives the profile and the manifest, and the endpoint is called
fake-endpoint instead of being looked up in the stack.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cliutil import OneLineParser, UsageError, aws_session, is_loopback_url, one_line, positive_int  # noqa: E402
from modelpack.model_manifest import packaged_manifest_path, read_manifest, schema_of  # noqa: E402
from rtb_client import (  # noqa: E402
    PROFILES,
    ModelSchema,
    Prediction,
    RequestError,
    codec_for,
    number_text,
    predict,
    runtime_client,
    stack_output,
)

PROG = "invoke"
STDIN = "-"
ARGUMENT = "the row"  # how messages name a row given on the command line
# The endpoint name a loopback --endpoint-url gets with --stage (as scripts/smoke_test.py names it): the stack
# that knows the real name is not asked, so a local endpoint needs no AWS configuration.
LOCAL_ENDPOINT = "fake-endpoint"
# An argument that starts with a minus and then a digit, a point, a comma or nan: a row of numbers, never an
# option (argparse takes only "-5" or "-1.5" alone for a negative number).
_ROW_WITH_MINUS = re.compile(r"-(?:\d|\.\d|,|nan\b|inf\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Call:
    """One InvokeEndpoint call as the client saw it."""

    predictions: list[Prediction]
    seconds: float


def parse_rows(text: str, source: str) -> list[tuple[str, list[float]]]:
    """(where, row) for each non-blank line: numbers only, so a typo is reported before any AWS lookup."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = source if source == ARGUMENT else f"{source} line {number}"
        rows.append((where, [_number(part.strip(), where) for part in line.split(",")]))
    if not rows:
        raise UsageError(f"no rows to score: {source} is empty")
    return rows


def fit_rows(parsed: Sequence[tuple[str, list[float]]], schema: ModelSchema, profile: str = "cpu") -> list[list[float]]:
    """The rows, each checked against the model's schema with its line named. The count is checked here
    because XGBoost would score a short row as if the missing values were unknown instead of refusing it; a
    missing value passes where the profile scores it as XGBoost does."""
    for where, row in parsed:
        problem = schema.row_problem(row, profile)
        if problem is not None:
            raise UsageError(f"{where} {problem}")
    return [row for _, row in parsed]


def _number(text: str, where: str) -> float:
    """A field as a float: an empty field (or nan) is a missing value, NaN, as the XGBoost container reads it."""
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: {text!r} is not a number") from None
    if math.isinf(value):
        raise UsageError(f"{where}: {text!r} is not a finite number")
    return value


def _row_text(row: Sequence[float]) -> str:
    """The row as the cpu profile sends it: exact numbers, an empty field for a missing value."""
    return ",".join("" if math.isnan(value) else number_text(value) for value in row)


def read_input(row: str | None, file: str | None, stdin: TextIO, rows: str | None = None) -> tuple[str, str]:
    """(text, name of its source) from exactly one of: a ROW argument (or --rows), '-' for stdin, --file PATH."""
    if [row, file, rows].count(None) != 2:
        raise UsageError("give the rows one way: a ROW argument (or --rows ROW), - to read stdin, or --file PATH")
    row = row if rows is None else rows
    if row == STDIN:
        return stdin.read(), "stdin"
    if row is not None:
        return row, ARGUMENT
    path = Path(str(file))
    try:
        return path.read_text(), str(path)
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read --file {path}: {getattr(error, 'strerror', None) or error}") from None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: a value that was actually observed, never an interpolation."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def format_report(
    endpoint: str, rows: Sequence[Sequence[float]], calls: Sequence[Call], *, profile: str = "cpu"
) -> list[str]:
    """Predictions of the first call (every call sends the same request), then the latency of each."""
    heading = f"endpoint {endpoint}: {len(rows)} row(s) per call, {len(calls)} call(s)"
    if profile != "cpu":
        per_request = codec_for(profile).max_rows_per_request
        requests = math.ceil(len(rows) / per_request)
        heading += f", profile {profile}: {requests} request(s) per call of at most {per_request} row(s)"
    lines = [heading]
    for row, prediction in zip(rows, calls[0].predictions, strict=True):
        shown = repr(prediction) if isinstance(prediction, float) else str(list(prediction))
        lines.append(f"{_row_text(row)} -> {shown}")
    latencies = [call.seconds * 1000 for call in calls]
    lines += [f"call {index}: {ms:.2f} ms" for index, ms in enumerate(latencies, start=1)]
    if len(calls) > 1:
        lines.append(
            f"client-side latency over {len(calls)} calls: p50 {percentile(latencies, 50):.2f} ms, "
            f"p99 {percentile(latencies, 99):.2f} ms, max {max(latencies):.2f} ms"
        )
    return lines


def invoke(
    runtime: Any,
    endpoint: str,
    rows: Sequence[Sequence[float]],
    repeat: int,
    schema: ModelSchema,
    *,
    profile: str = "cpu",
) -> list[Call]:
    """The same request ``repeat`` times, one after another, on one client (so one kept-alive connection)."""
    calls = []
    for _ in range(repeat):
        start = time.perf_counter()
        predictions = predict(runtime, endpoint, rows, schema, profile=profile)
        calls.append(Call(predictions=predictions, seconds=time.perf_counter() - start))
    return calls


def endpoint_of_stage(cloudformation: Any, stage: str, stack_name: str, region: str | None) -> str:
    """The EndpointName output, with a message that says what to do when the stack is not there."""
    try:
        return stack_output(cloudformation, stack_name, "EndpointName")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationError":
            raise
        where = f" in {region}" if region else ""
        raise LookupError(
            f"stack {stack_name} is not deployed{where} ({error.response['Error'].get('Message', '')}); "
            f"deploy it (make deploy STAGE={stage}) or pass --endpoint-name"
        ) from None


def rows_as_values(argv: Sequence[str]) -> list[str]:
    """``argv`` with each row that starts with a minus (``-1.5,2,...``) given as ``--rows=-1.5,2,...``, so
    argparse does not take it for an option, whether it came as ROW or after --rows. After "--" nothing changes."""
    out: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[index:])
        # Another option's value (--repeat -1) stays its own, and so does a second row (argparse names it).
        value_of = out[-1] if out and out[-1].startswith("-") and "=" not in out[-1] else None
        first = not any(given.startswith("--rows=") for given in out)
        if _ROW_WITH_MINUS.match(arg) and value_of in (None, "--rows") and first:
            if value_of == "--rows":
                out.pop()
            out.append(f"--rows={arg}")
        else:
            out.append(arg)
    return out


class EndpointSession:
    """A boto3 session whose clients all talk to ``endpoint_url`` (a local endpoint). runtime_client builds
    its client from a session, so the kit's pool, timeouts and retries stay exactly as ad servers get them."""

    def __init__(self, session: Any, endpoint_url: str) -> None:
        self._session = session
        self._endpoint_url = endpoint_url

    def client(self, service_name: str, **kwargs: Any) -> Any:
        return self._session.client(service_name, endpoint_url=self._endpoint_url, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # The rest is the wrapped session's: the fast transport reads its credentials and settings.
        if name == "_session":  # not set yet (a copy in the making): no recursion
            raise AttributeError(name)
        return getattr(self._session, name)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stage", help="read the endpoint name from the stage's deployed stack")
    target.add_argument("--endpoint-name", help="the SageMaker endpoint to call")
    parser.add_argument("--endpoint-url", help="e.g. http://127.0.0.1:8080 for a local endpoint")
    parser.add_argument("--region", help="default: the stage's region, else the AWS config")
    parser.add_argument(
        "row",
        nargs="?",
        help="one row: as many values as the manifest's features, e.g. 2,0,0.0,7.0,3.0,20.0,2; or - to read stdin",
    )
    parser.add_argument(
        "--rows",
        metavar="ROW",
        help="the same as ROW; one that starts with a negative number works either way (--rows -1.5,2,...)",
    )
    parser.add_argument("--file", help="a file of rows, one per line")
    parser.add_argument("--repeat", type=positive_int, default=1, help="send the same request N times")
    parser.add_argument(
        "--profile", choices=PROFILES, help="the serving profile's request format (default: the stage's, else cpu)"
    )
    parser.add_argument(
        "--manifest",
        help="the model manifest that gives the rows' features and the answers' shape (default: the stage's "
        "artifact's, else the profile's packaged artifact's); not with --stage",
    )
    return parser


def stage_region(stage: str) -> tuple[str, str | None, str, ModelSchema]:
    """(stack name, region, serving profile, model schema from its artifact's manifest) of a defined stage;
    UsageError for an unknown or invalid one."""
    # Imported here: calls by endpoint name and the benchmark never read the stages.
    from stacks.settings import SettingsError
    from stacks.stages import STAGES, load_stage

    if stage not in STAGES:
        raise UsageError(f"no stage {stage!r}; allowed: one of {sorted(STAGES)} (stacks/stages.py)")
    try:
        settings = load_stage(stage)
    except SettingsError as error:
        raise UsageError(one_line(error)) from None
    try:
        schema = schema_of(settings.artifact.manifest, settings.artifact_file)
    except ValueError as error:
        raise UsageError(one_line(error)) from None
    return settings.stack_name, settings.region, settings.profile, schema


def manifest_schema(manifest: str | None, profile: str) -> ModelSchema:
    """The schema of --manifest, else of the profile's packaged artifact's manifest; UsageError if unreadable."""
    path = Path(manifest) if manifest is not None else packaged_manifest_path(profile)
    try:
        return schema_of(read_manifest(path), path)
    except ValueError as error:
        raise UsageError(one_line(error)) from None


def resolve_profile(stage: str | None, stage_profile: str | None, flag: str | None) -> str:
    """The stage's profile, else --profile, else cpu; a --profile that contradicts the stage is a usage error."""
    if stage_profile is None:
        return flag or "cpu"
    if flag is not None and flag != stage_profile:
        raise UsageError(f"--profile {flag} contradicts stage {stage}, whose profile is {stage_profile}")
    return stage_profile


def runtime_message(error: Exception) -> str:
    """One line. Service errors and the kit's own already say what failed; other botocore errors (a
    timeout, no connection, no credentials) read better with their class name."""
    text = one_line(error)
    return text if isinstance(error, ClientError | LookupError | RequestError) else f"{type(error).__name__}: {text}"


def main(argv: list[str] | None = None, stdin: TextIO | None = None, session: Any = None) -> int:
    """``session`` replaces the default boto3 session (tests pass one with stubbed clients)."""
    try:
        args = build_parser().parse_args(rows_as_values(sys.argv[1:] if argv is None else argv))
        # Input first: a typo in a row should not wait for, or be hidden by, AWS configuration errors.
        parsed = parse_rows(*read_input(args.row, args.file, stdin or sys.stdin, args.rows))
        if args.stage and args.manifest:
            raise UsageError("--manifest with --stage: the stage's artifact's manifest describes its endpoint")
        stack_name, stage_default_region, stage_profile, stage_schema = (
            stage_region(args.stage) if args.stage else ("", None, None, None)
        )
        profile = resolve_profile(args.stage, stage_profile, args.profile)
        schema = stage_schema or manifest_schema(args.manifest, profile)
        rows = fit_rows(parsed, schema, profile)
        region = args.region or stage_default_region
        if args.endpoint_url:
            # A loopback URL needs no AWS configuration (cliutil/__init__.py); the stack lookup still does.
            runtime_session: Any = EndpointSession(session or aws_session(region, args.endpoint_url), args.endpoint_url)
        else:
            runtime_session = session or aws_session(region)
        # A session that only builds clients (the tests' stubbed ones) gets boto3's: Stubber stubs boto3 clients.
        transport = "fast" if hasattr(runtime_session, "get_credentials") else "boto3"
        runtime = runtime_client(runtime_session, region=region, transport=transport)
        if args.endpoint_name:
            endpoint = args.endpoint_name
        elif args.endpoint_url and is_loopback_url(args.endpoint_url):
            endpoint = LOCAL_ENDPOINT
        else:
            endpoint = endpoint_of_stage(
                (session or aws_session(region)).client("cloudformation"), args.stage, stack_name, region
            )
        calls = invoke(runtime, endpoint, rows, args.repeat, schema, profile=profile)
        lines = format_report(endpoint, rows, calls, profile=profile)
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # one line for people and CI logs, whatever broke at runtime
        print(f"{PROG}: {runtime_message(error)}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
