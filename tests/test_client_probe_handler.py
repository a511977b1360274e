"""stacks/handlers/client_probe.py offline: a burst against a local endpoint on loopback, every error counted,
the zonal check with a stubbed resolver, the EMF record CloudWatch reads, and the environment's one-line errors.
Time comes from an injected clock: the figures are exact, and nothing depends on how busy the machine is."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

import rtb_client
from devtools.bench_client import Reply, answers_for, local_endpoint, probabilities
from devtools.fake_endpoint import profile_model
from stacks.handlers import client_probe
from stacks.handlers.client_probe import ProbeConfig, load_config, run

from .conftest import Synthesized
from .local_tls import NAMES, endpoint, zonal

SAMPLE = "2,0,0.0,7.0,3.0,20.0,2"


def environment(url: str, **changes: str) -> dict[str, str]:
    return {
        "ENDPOINT_NAME": "RtbInference-prod-c5-xlarge",
        "AWS_REGION": "us-east-1",
        "PROFILE": "cpu",
        "PROBE_AZ": "us-east-1a",
        "ZONAL_CIDR": "127.0.0.0/8",
        "SAMPLE_ROW": SAMPLE,
        "OUTPUT_KIND": "probability",
        "OUTPUT_COLUMNS": "1",
        "BURST_SIZE": "10",
        "LATENCY_SLO_MS": "20",
        "METRIC_NAMESPACE": "RtbInference/ClientPath",
        "PROBE_ENDPOINT_URL": url,
        **changes,
    }


def steps(ms: float) -> Callable[[], float]:
    """A clock that moves ``ms`` milliseconds per reading: each call's round trip is exactly ``ms``."""
    ticks = itertools.count()
    return lambda: next(ticks) * ms / 1000


def same_az(_host: str) -> set[str]:
    return {"127.0.0.1"}


def other_az(_host: str) -> set[str]:
    return {"10.43.64.10"}


def every_az(_host: str) -> set[str]:
    """What private DNS answers for the regional name: every AZ's interface (this one's is 127.0.0.1 here)."""
    return {"127.0.0.1", "10.43.64.10", "10.43.128.10"}


class Recorder:
    """A signer that records what it signs and adds a fake Authorization header."""

    def __init__(self) -> None:
        self.signed: list[tuple[str, dict[str, str], bytes]] = []

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        self.signed.append((url, dict(headers), body))
        return {**headers, "Authorization": "AWS4-HMAC-SHA256 Credential=test"}


def probe(config: ProbeConfig, resolver: Callable[[str], set[str]] = same_az, ms: float = 5.0) -> dict[str, Any]:
    return run(config, resolver=resolver, signer=Recorder(), clock=steps(ms), wall_clock=lambda: 1_764_547_200.0)


def test_a_healthy_burst_on_one_connection(capsys: pytest.CaptureFixture[str]) -> None:
    signer = Recorder()
    with local_endpoint() as endpoint:
        config = load_config(environment(endpoint.url))
        record = run(config, resolver=same_az, signer=signer, clock=steps(4.0), wall_clock=lambda: 1.5)
    assert endpoint.seen.connections == 1  # kept alive, as a pooled client
    assert len(endpoint.seen.requests) == 10
    path, headers, body = endpoint.seen.requests[0]
    assert path == "/endpoints/RtbInference-prod-c5-xlarge/invocations"
    assert (headers["Content-Type"], headers["Accept"], headers["Authorization"]) == (
        "text/csv",
        "text/csv",
        "AWS4-HMAC-SHA256 Credential=test",
    )
    assert body == b"2.0,0.0,0.0,7.0,3.0,20.0,2.0\n"
    assert [url for url, _, _ in signer.signed] == [
        f"{endpoint.url}/endpoints/RtbInference-prod-c5-xlarge/invocations"
    ] * 10
    assert signer.signed[0][1]["Host"] == "127.0.0.1"
    assert record["ClientRoundTrip"] == [4.0] * 10
    assert (record["ProbeRequests"], record["ProbeErrors"], record["CrossAzAnswers"]) == (10, 0, 0)
    assert (record["p50_ms"], record["p99_ms"]) == (4.0, 4.0)
    assert record["_aws"]["Timestamp"] == 1500
    assert record["connected"] == "127.0.0.1"


def test_the_handler_prints_one_emf_line_cloudwatch_can_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with local_endpoint() as endpoint:
        for name, value in environment(endpoint.url, BURST_SIZE="3").items():
            monkeypatch.setenv(name, value)
        # Dummy credentials: the signer is the real botocore one, the local server does not check it.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        monkeypatch.setattr(client_probe, "resolve", same_az)
        returned = client_probe.handler({}, None)
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record == returned
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["EndpointName", "AvailabilityZone"]]
    for metric in directive["Metrics"]:
        assert metric["Name"] in record, metric
    for dimension in directive["Dimensions"][0]:
        assert isinstance(record[dimension], str)
    assert [m["Name"] for m in directive["Metrics"]] == [
        "ClientRoundTrip",
        "ProbeRequests",
        "ProbeErrors",
        "CrossAzAnswers",
    ]
    assert len(record["ClientRoundTrip"]) == 3
    _, headers, _ = endpoint.seen.requests[0]
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/sagemaker/aws4_request" in headers["Authorization"]


def test_server_errors_are_counted_exactly_and_never_raised() -> None:
    answers: Iterator[Reply] = itertools.cycle([Reply(status=500, body=b"{}")] + [probabilities(b"x\n")] * 3)
    with local_endpoint(lambda _body: next(answers)) as endpoint:
        record = probe(load_config(environment(endpoint.url, BURST_SIZE="8")))
    assert (record["ProbeRequests"], record["ProbeErrors"]) == (8, 2)
    assert len(record["ClientRoundTrip"]) == 6
    assert record["errors"][0].startswith("RequestError: HTTP 500")


@pytest.mark.parametrize("answer", [b"nan\n", b"1.7\n", b"-3\n", b"0.5\n0.5\n", b"yes\n"])
def test_an_answer_the_client_refuses_is_an_error(answer: bytes) -> None:
    with local_endpoint(lambda _body: Reply(body=answer)) as endpoint:
        record = probe(load_config(environment(endpoint.url, BURST_SIZE="2")))
    assert record["ProbeErrors"] == 2
    assert "ClientRoundTrip" not in record
    names = [metric["Name"] for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert "ClientRoundTrip" not in names  # never an empty array: the missing-data alarm notices instead


def test_the_gpu_codec_speaks_tritons_protocol() -> None:
    model = profile_model("gpu")
    with local_endpoint(answers_for("gpu", model)) as endpoint:
        record = probe(load_config(environment(endpoint.url, PROFILE="gpu", BURST_SIZE="2")))
    assert (record["ProbeErrors"], len(record["ClientRoundTrip"])) == (0, 2)
    _, headers, body = endpoint.seen.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["inputs"][0]["shape"] == [1, 7]


def test_a_dead_endpoint_is_errors_and_no_zonal_verdict() -> None:
    with local_endpoint() as endpoint:
        url = endpoint.url
    record = probe(load_config(environment(url, BURST_SIZE="3")))  # the server is gone: connection refused
    assert record["ProbeErrors"] == 3
    assert record["connected"] is None
    assert "CrossAzAnswers" not in record
    assert all(error.startswith("ConnectionRefusedError") for error in record["errors"])


@pytest.mark.parametrize(
    ("resolver", "cidr", "expected"),
    [
        (same_az, "127.0.0.0/8", 0),  # answer and connection inside this AZ's subnet
        (every_az, "127.0.0.0/8", 0),  # an answer with every AZ's interface, connected to this AZ's: correct
        (other_az, "127.0.0.0/8", 0),  # the answer is diagnosis only: the connection stayed in the AZ
        (same_az, "10.43.0.0/18", 1),  # connected outside this AZ's subnet
        (every_az, "10.43.0.0/18", 1),
    ],
)
def test_the_zonal_check_judges_the_connected_peer(
    resolver: Callable[[str], set[str]], cidr: str, expected: int
) -> None:
    with local_endpoint() as endpoint:
        record = probe(load_config(environment(endpoint.url, ZONAL_CIDR=cidr, BURST_SIZE="1")), resolver)
    assert record["CrossAzAnswers"] == expected


def test_the_burst_stops_in_time_to_publish_before_lambdas_timeout() -> None:
    left = iter([30.0, 20.0, 4.0])  # seconds left before each call: the third would risk the cut-off
    with local_endpoint() as endpoint:
        config = load_config(environment(endpoint.url, BURST_SIZE="5"))
        record = run(config, resolver=same_az, signer=Recorder(), clock=steps(1.0), seconds_left=lambda: next(left))
    assert len(endpoint.seen.requests) == 2
    assert (record["ProbeRequests"], record["ProbeErrors"], len(record["ClientRoundTrip"])) == (5, 3, 2)
    assert record["errors"] == ["stopped before Lambda's timeout: 3 calls not sent"]


def test_percentiles_are_observed_values() -> None:
    assert client_probe.nearest_rank([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert client_probe.nearest_rank([float(v) for v in range(1, 101)], 0.99) == 99.0
    assert client_probe.nearest_rank([], 0.99) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"PROFILE": "tpu"}, "PROFILE='tpu' is invalid; allowed: one of ['cpu', 'gpu', 'inferentia']"),
        ({"BURST_SIZE": "0"}, "BURST_SIZE='0' is invalid; allowed: a whole number from 1 to 100"),
        ({"BURST_SIZE": "101"}, "BURST_SIZE='101' is invalid; allowed: a whole number from 1 to 100"),
        ({"ZONAL_CIDR": "us-east-1a"}, "ZONAL_CIDR='us-east-1a' is invalid; allowed: a network such as"),
        ({"SAMPLE_ROW": "2,zero,3"}, "SAMPLE_ROW='2,zero,3' is invalid; allowed: comma-separated numbers"),
        ({"SAMPLE_ROW": "1e39"}, "SAMPLE_ROW or OUTPUT_COLUMNS is invalid: row 0 value 0 (f0) is 1e+39"),
        ({"OUTPUT_KIND": "label"}, "OUTPUT_KIND='label' is invalid"),
        ({"LATENCY_SLO_MS": "-1"}, "LATENCY_SLO_MS='-1' is invalid; allowed: a positive number of milliseconds"),
        ({"ENDPOINT_NAME": ""}, "ENDPOINT_NAME is not set"),
    ],
)
def test_a_misconfigured_function_says_which_variable_in_one_line(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        load_config(environment("http://127.0.0.1:9", **changes))
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_without_a_local_url_it_calls_its_azs_zonal_name_chosen_by_the_client_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []
    choose = rtb_client.runtime_endpoint_url

    def spy(*args: Any, **kwargs: Any) -> str:
        calls.append((*args, kwargs))
        return choose(*args, **kwargs)

    monkeypatch.setattr(rtb_client, "runtime_endpoint_url", spy)
    published = json.dumps(dict(reversed(NAMES.items())))
    env = environment("", PROBE_AZ="us-east-1b", ZONAL_DNS_NAMES=published)
    del env["PROBE_ENDPOINT_URL"]
    config = load_config(env)
    # The ad servers' own function, with the probe's AZ given: the probe's path is theirs.
    assert calls == [("us-east-1", published, {"az": "us-east-1b", "discover": False})]
    assert config.endpoint_url == f"https://{zonal('us-east-1b')}"
    assert config.host == zonal("us-east-1b")
    assert config.fallback is None


def test_an_az_without_a_zonal_name_probes_the_regional_name_and_says_so_in_every_run() -> None:
    env = environment("", PROBE_AZ="us-east-1d", ZONAL_DNS_NAMES=json.dumps(NAMES))
    del env["PROBE_ENDPOINT_URL"]
    config = load_config(env)
    assert config.endpoint_url == "https://runtime.sagemaker.us-east-1.amazonaws.com"
    assert config.fallback is not None and "us-east-1d" in config.fallback
    record = run(config, resolver=same_az, signer=Recorder(), connector=refuse, clock=steps(1.0))
    assert record["errors"][0] == config.fallback


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("not json", "ZONAL_DNS_NAMES='not json' is invalid"),
        (json.dumps({"us-east-1a": "runtime.sagemaker.us-east-1.amazonaws.com"}), "ZONAL_DNS_NAMES="),
    ],
)
def test_bad_zonal_names_are_refused_in_one_line(names: str, message: str) -> None:
    env = environment("", ZONAL_DNS_NAMES=names)
    del env["PROBE_ENDPOINT_URL"]
    with pytest.raises(ValueError) as raised:
        load_config(env)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def refuse(_config: ProbeConfig) -> Any:
    raise ConnectionRefusedError("refused")


# --- the zonal path end to end: TLS verified for the AZ's name, the verdict, and the alarm it feeds ------


def prod_cross_az_alarm(synth_stage: Callable[[str], Synthesized], az: str) -> dict[str, Any]:
    """The shipped prod stage's cross-AZ alarm for ``az``, as the template gives it to CloudWatch."""
    stage = synth_stage("prod")
    alarms: list[dict[str, Any]] = [
        resource["Properties"]
        for resource in stage.of_type("AWS::CloudWatch::Alarm").values()
        if resource["Properties"].get("MetricName") == "CrossAzAnswers"
        and {"Name": "AvailabilityZone", "Value": az} in resource["Properties"]["Dimensions"]
    ]
    (alarm,) = alarms
    return alarm


def alarm_fires(alarm: dict[str, Any], records: list[dict[str, Any]]) -> bool:
    """CloudWatch's verdict on one period holding ``records``' values, for a 1-of-1 alarm on a plain statistic."""
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (1, 1)
    values = [record[alarm["MetricName"]] for record in records if alarm["MetricName"] in record]
    if not values:
        return bool(alarm["TreatMissingData"] == "breaching")
    aggregate: dict[str, Callable[[list[float]], float]] = {"Maximum": max, "Sum": sum, "Minimum": min}
    statistic = aggregate[alarm["Statistic"]]([float(value) for value in values])
    compare: dict[str, Callable[[float, float], bool]] = {
        "GreaterThanThreshold": float.__gt__,
        "GreaterThanOrEqualToThreshold": float.__ge__,
    }
    return compare[alarm["ComparisonOperator"]](statistic, float(alarm["Threshold"]))


@pytest.mark.usefixtures("offline_aws")
@pytest.mark.parametrize(
    ("cidr", "fires"),
    [("127.0.0.0/8", False), ("10.43.0.0/18", True)],
    ids=["connected to its AZ's interface", "connected to another AZ's interface"],
)
def test_the_probe_on_its_zonal_name_over_verified_tls_and_the_cross_az_alarm(
    ca: trustme.CA,
    ca_file: str,
    resolve: Callable[[str, int], None],
    monkeypatch: pytest.MonkeyPatch,
    synth_stage: Callable[[str], Synthesized],
    cidr: str,
    fires: bool,
) -> None:
    """Private DNS answers every AZ's address (every_az); the probe connects to its AZ's zonal name, TLS verified
    for that name, and the prod template's cross-AZ alarm stays quiet when the peer is this AZ's interface and
    fires when it is not."""
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # http.client's default context: the trustme CA, nothing else
    env = environment("", PROBE_AZ="us-east-1b", ZONAL_DNS_NAMES=json.dumps(NAMES), ZONAL_CIDR=cidr, BURST_SIZE="3")
    del env["PROBE_ENDPOINT_URL"]
    with endpoint(ca, zonal("us-east-1b"), b"0.5\n") as local:
        resolve(zonal("us-east-1b"), local.port)
        config = load_config(env)
        record = run(config, resolver=every_az, signer=Recorder(), clock=steps(2.0))
    assert local.seen.server_names == [zonal("us-east-1b")]  # one kept-alive connection, SNI the zonal name
    assert [headers["host"] for _, _, headers, _ in local.seen.requests] == [zonal("us-east-1b")] * 3
    assert (record["ProbeErrors"], record["dns_answer"]) == (0, sorted(every_az("")))
    assert record["CrossAzAnswers"] == int(fires)
    assert alarm_fires(prod_cross_az_alarm(synth_stage, "us-east-1b"), [record]) is fires


@pytest.mark.usefixtures("offline_aws")
def test_a_certificate_for_another_azs_name_fails_every_call(
    ca: trustme.CA, ca_file: str, resolve: Callable[[str, int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    env = environment("", PROBE_AZ="us-east-1b", ZONAL_DNS_NAMES=json.dumps(NAMES), BURST_SIZE="2")
    del env["PROBE_ENDPOINT_URL"]
    with endpoint(ca, zonal("us-east-1a"), b"0.5\n") as local:
        resolve(zonal("us-east-1b"), local.port)
        record = run(load_config(env), resolver=every_az, signer=Recorder(), clock=steps(2.0))
    assert local.seen.requests == []
    assert record["ProbeErrors"] == 2
    assert all("SSLCertVerificationError" in error for error in record["errors"])
    assert "CrossAzAnswers" not in record  # no connection: nothing to judge
