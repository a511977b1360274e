"""scripts/capacity_plan.py: the sizing arithmetic on known numbers (1M RPS on ml.c5.xlarge: shards, quotas with the
rollout's surge, bandwidth per AZ, client cores), its edges, the price table, bad input."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from capacity import capacity_plan as cp
from capacity import network, quotas, sizing
from stacks import catalog
from stacks.stages import STAGES

KIT_TYPES = (
    "ml.c5.large",
    "ml.c5.xlarge",
    "ml.c5.2xlarge",
    "ml.c5.4xlarge",
    "ml.c5.9xlarge",
    "ml.c6i.xlarge",
    "ml.c6i.2xlarge",
    "ml.m5.xlarge",
    "ml.g4dn.xlarge",
    "ml.g4dn.2xlarge",
    "ml.inf1.xlarge",
    "ml.inf1.2xlarge",
)


def _inputs(**overrides: Any) -> cp.Inputs:
    values: dict[str, Any] = {
        "peak_rps": 1_000_000,
        "max_rps_per_instance": 1000,
        "safety": 0.5,
        "instance_type": "ml.c5.xlarge",
    }
    return cp.Inputs(**{**values, **overrides})


# --- arithmetic ---


def test_one_million_rps_at_1000_max_rps_and_safety_half() -> None:
    assert cp.plan(_inputs()) == cp.Plan(
        min_instances=600,  # 30% of peak / 500
        expected_instances=2000,  # 1e6 / (1000 x 0.5)
        max_instances=2500,  # 2000 x 1.25
        rps_per_instance_at_target=500,
        invocations_per_instance_target=30_000,  # 1000 x 0.5 x 60, the README's default
    )


@pytest.mark.parametrize(
    ("rps", "max_rps", "safety", "expected"),
    [
        (1000, 1000, 0.5, 2),  # exactly two instances' worth: not three
        (1001, 1000, 0.5, 3),  # a request more needs one more
        (700, 1, 0.7, 1000),  # 700 / 0.7 is 1000.0000000000001 in floats: 1000 instances, not 1001
        (30, 100, 0.1, 3),  # 100 x 0.1 is 10.000000000000002: 30 / that is just under 3, still 3
        (1, 1000, 0.5, 1),  # below one instance's load: one instance
    ],
)
def test_instances_round_up_to_whole_instances(rps: float, max_rps: float, safety: float, expected: int) -> None:
    assert cp.instances_for(rps, max_rps, safety) == expected


def test_a_peak_below_one_instance_still_gets_the_ha_minimum() -> None:
    result = cp.plan(_inputs(peak_rps=100))
    assert (result.min_instances, result.expected_instances, result.max_instances) == (2, 2, 3)


def test_the_ha_minimum_is_configurable_and_bounds_min_and_expected() -> None:
    result = cp.plan(_inputs(peak_rps=100, min_ha=3))
    assert (result.min_instances, result.expected_instances, result.max_instances) == (3, 3, 4)


def test_trough_and_headroom_move_min_and_max_only() -> None:
    result = cp.plan(_inputs(peak_rps=10_000, trough_fraction=0.5, headroom=2.0))
    assert (result.min_instances, result.expected_instances, result.max_instances) == (10, 20, 40)
    flat = cp.plan(_inputs(peak_rps=10_000, trough_fraction=1.0, headroom=1.0))
    assert (flat.min_instances, flat.expected_instances, flat.max_instances) == (20, 20, 20)


def test_headroom_rounds_up_without_float_noise() -> None:
    # 100 x 1.1 is 110.00000000000001 in floats: the max is 110, not 111.
    assert cp.plan(_inputs(peak_rps=50_000, headroom=1.1)).max_instances == 110
    assert cp.plan(_inputs(peak_rps=50_000, headroom=1.101)).max_instances == 111


def test_a_zero_trough_falls_back_to_the_ha_minimum() -> None:
    assert cp.plan(_inputs(trough_fraction=0.0)).min_instances == 2


def test_costs_are_count_times_price_and_730_hours_a_month() -> None:
    assert cp.hourly_cost(2000, 0.204) == pytest.approx(408.0)
    assert cp.monthly_cost(2000, 0.204) == pytest.approx(297_840.0)
    assert cp.monthly_cost(2, 0.204) == pytest.approx(297.84)


# --- the price table ---


def test_the_price_table_names_its_source_region_and_date() -> None:
    table = cp.load_prices()
    assert table["region"] == "us-east-1"
    assert table["currency"] == "USD"
    assert table["source"]["url"] == "https://aws.amazon.com/sagemaker/pricing/"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table["source"]["read_on"])


def test_every_price_is_positive_with_its_own_source_and_date() -> None:
    prices = cp.load_prices()["prices"]
    assert prices, "the table lists at least one price"
    for instance_type, entry in prices.items():
        assert entry["usd_per_hour"] > 0, instance_type
        assert entry["source"].startswith("https://"), instance_type
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry["read_on"]), instance_type


def test_every_kit_type_is_priced_or_listed_as_missing_and_all_are_real_types() -> None:
    table = cp.load_prices()
    priced, missing = set(table["prices"]), set(table["missing"])
    assert not priced & missing
    assert priced | missing == set(KIT_TYPES)
    assert priced | missing <= set(catalog.hosting_instance_types())


# --- the command ---


def _plan(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert cp.main([*argv, "--json"]) == 0
    figures: dict[str, Any] = json.loads(capsys.readouterr().out)
    return figures


def _line(out: str, label: str) -> str:
    (line,) = [line for line in out.splitlines() if line.startswith(f"  {label}  ")]
    return line


def test_plan_output_for_a_priced_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(["--peak-rps", "1000000", "--max-rps-per-instance", "1000", "--instance-type", "ml.c5.xlarge"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("capacity plan: 1,000,000 requests/s at peak on ml.c5.xlarge\n")
    assert re.search(r"SageMakerVariantInvocationsPerInstance\s+30,000 per minute\s+1,000 x 0.5 x 60", out)
    assert re.search(r"fleet, min / expected / max\s+600 / 2,000 / 2,500 instances", out)
    assert re.search(r"per month, fleet at expected all month\s+\$297,840.00 USD\s+2,000 instances x \$0.204", out)
    assert "price per instance-hour" in out and "confirm the current us-east-1 price" in out
    assert (
        "AutoscalingSettings(min_capacity=120, max_capacity=500, max_rps_per_instance=1000, safety_factor=0.5)" in out
    )


def test_every_figure_line_is_aligned_and_names_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(["--peak-rps", "1000000", "--max-rps-per-instance", "1000"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.startswith("  ") and "AutoscalingSettings" not in line]
    assert len(lines) > 15
    # One column where every line's source starts, after two spaces: the figures are aligned and none lacks one.
    width = min(len(line) for line in lines)
    columns = [p for p in range(3, width) if all(line[p - 2 : p] == "  " and line[p] != " " for line in lines)]
    assert len(columns) == 1, columns


def test_plan_output_for_an_unpriced_type_says_so_instead_of_guessing(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(["--peak-rps", "5000", "--max-rps-per-instance", "800", "--instance-type", "ml.g4dn.xlarge"]) == 0
    out = capsys.readouterr().out
    assert "ml.g4dn.xlarge in sagemaker_prices.json: no AWS-published real-time inference price found" in out
    assert "$" not in out


def test_stage_settings_are_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(["--peak-rps", "2000", "--stage", "prod"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("capacity plan: 2,000 requests/s at peak on ml.c5.xlarge\n")
    assert "stage prod has no measurement on ml.c5.xlarge in stacks/data/measurements.json" in out
    assert re.search(r"instances per shard, expected\s+4 ", out)
    assert "over 3 client AZs (stage prod's client_azs)" in out


def test_arguments_override_the_stage(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--peak-rps", "2000", "--stage", "dev", "--max-rps-per-instance", "250", "--safety", "0.8"]
    figures = _plan(capsys, *argv)["figures"]
    assert figures["max_rps_per_instance"]["value"] == 250
    assert figures["rps_per_instance_at_target"]["value"] == 200
    assert figures["rps_per_instance_at_target"]["source"] == "MAX_RPS x safety 0.8 (--safety)"


# --- a million requests per second ---

MILLION = ["--peak-rps", "1000000", "--max-rps-per-instance", "1000", "--instance-type", "ml.c5.xlarge"]


def test_a_million_rps_on_c5_xlarge_blue_green_takes_5_shards_within_the_bound(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = _plan(capsys, *MILLION, "--strategy", "blue_green")
    figures = {key: item["value"] for key, item in result["figures"].items()}
    # 2,000 instances at 500 RPS; blue/green doubles a shard during its update, so max x 2 <= 1,000: max <= 500,
    # expected <= 400: 1e6 / 400 / 500 = 5 shards of 200,000 RPS each.
    assert (figures["shards"], figures["per_shard_min"], figures["per_shard_expected"], figures["per_shard_max"]) == (
        5, 120, 400, 500,
    )  # fmt: skip
    assert figures["surge"] == 500
    assert figures["per_shard_bound"] == 1000
    # Every shard at its max plus one shard's second fleet.
    assert figures["quota_instance_type"] == figures["quota_account_wide"] == 5 * 500 + 500
    assert result["quota_requests"] == [
        {"service_code": "sagemaker", "quota_name": "ml.c5.xlarge for endpoint usage", "desired_value": 3000},
        {
            "service_code": "sagemaker",
            "quota_name": "Number of instances across active endpoints",
            "desired_value": 3000,
        },
    ]
    assert figures["client_cores_fast"] == 250  # 1e6 / 4,000
    assert figures["client_cores_boto3"] == 1667  # ceil(1e6 / 600)
    # (1,800 + 23) + (400 + 20) bytes a call, 8 bits, over 2 AZs.
    assert figures["request_bytes"] == 1823 and figures["response_bytes"] == 420
    assert figures["gbps_per_az"] == pytest.approx(1e6 * 2243 * 8 / 1e9 / 2, abs=0.01)
    assert figures["monthly_cost_expected"] == pytest.approx(2000 * 0.204 * 730)


def test_a_million_rps_rolling_needs_fewer_shards_and_a_batch_of_surge(capsys: pytest.CaptureFixture[str]) -> None:
    figures = _plan(capsys, *MILLION, "--strategy", "rolling", "--rolling-batch-percent", "10")["figures"]
    values = {key: item["value"] for key, item in figures.items()}
    # max + ceil(10% of max) <= 1,000 holds at max 834 (+84 = 918): three shards of 333,333 RPS, 667 expected.
    assert (values["shards"], values["per_shard_expected"], values["per_shard_max"], values["surge"]) == (
        3,
        667,
        834,
        84,
    )
    assert values["quota_instance_type"] == 3 * 834 + 84
    assert "the larger of a rolling batch and a rollback batch, 10% of the shard's max" in figures["surge"]["source"]


def test_the_planned_shards_are_settings_the_stage_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    settings = STAGES["scale"]()
    result = _plan(capsys, "--stage", "scale", "--peak-rps", "1000000")
    values = {key: item["value"] for key, item in result["figures"].items()}
    scaling = dataclasses.replace(
        settings.autoscaling, min_capacity=values["per_shard_min"], max_capacity=values["per_shard_max"]
    )
    planned = dataclasses.replace(
        settings, shards=values["shards"], autoscaling=scaling, initial_instance_count=values["per_shard_min"]
    )  # raises SettingsError if the plan broke a bound
    assert (planned.shards, planned.autoscaling.max_capacity) == (4, 625)
    assert result["settings_per_shard"].endswith(
        'rollout=RolloutSettings(strategy="rolling", rolling_batch_percent=20)'
    )


def test_given_shards_that_break_the_bound_are_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main([*MILLION, "--shards", "2"]) == 2
    assert capsys.readouterr() == (
        "",
        "capacity_plan: --shards 2: a shard's max 1,250 plus its blue_green surge 1,250 is 2,500, over the bound of "
        "1,000 per shard; allowed: 5 or more shards, or --max-instances-per-shard\n",
    )


def test_given_shards_and_a_larger_bound_are_planned(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*MILLION, "--shards", "2", "--max-instances-per-shard", "2500", "--in-use-elsewhere", "40"]
    values = {key: item["value"] for key, item in _plan(capsys, *argv)["figures"].items()}
    assert (values["shards"], values["per_shard_max"], values["surge"]) == (2, 1250, 1250)
    assert values["quota_instance_type"] == 2 * 1250 + 1250 + 40


def test_rows_with_batching_set_the_request_rate_and_the_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--peak-rows-per-second", "4000000", "--rows-per-request", "8", "--max-rps-per-instance", "400"]
    figures = _plan(capsys, *argv)["figures"]
    assert figures["peak_rps"]["value"] == 500_000
    assert "MAX_RPS must be measured with 8-row requests" in figures["peak_rps"]["source"]
    assert figures["request_bytes"]["value"] == 1800 + 8 * 23
    assert figures["response_bytes"]["value"] == 400 + 8 * 20
    assert figures["client_cores_fast"]["value"] == 125


def test_measured_client_cost_and_wire_sizes_override_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*MILLION, "--client-calls-per-core", "2500", "--request-bytes", "5000", "--response-bytes", "1000"]
    figures = _plan(capsys, *argv)["figures"]
    assert "client_cores_fast" not in figures
    assert figures["client_cores"]["value"] == 400
    # 6,000 bytes a call at 1M RPS: 48 Gbps over 2 AZs, above the default 10 per AZ, within the scaled 100.
    assert figures["gbps_per_az"]["value"] == 24.0
    assert "relies on the endpoint's automatic scaling to 100 Gbps" in figures["gbps_per_az"]["source"]


@pytest.mark.parametrize(
    ("per_az", "words"),
    [(9.99, "within the 10 Gbps"), (10.01, "automatic scaling to 100"), (100.5, "above the 100 Gbps")],
)
def test_the_bandwidth_verdict_follows_the_documented_limits(per_az: float, words: str) -> None:
    assert words in network.bandwidth_verdict(per_az)


# --- the quotas and the rollout's surge ---


@pytest.mark.parametrize(
    ("instances", "percent", "batch"),
    [(20, 5, 1), (834, 10, 84), (1000, 10, 100), (3, 50, 2), (2, 5, 1), (700, 7, 49)],
)
def test_a_rolling_batch_rounds_up_to_whole_instances(instances: int, percent: float, batch: int) -> None:
    assert quotas.rolling_batch(instances, percent) == batch


def test_the_surge_is_a_whole_fleet_for_blue_green_and_a_batch_for_rolling() -> None:
    assert quotas.rollout_surge(500, "blue_green") == 500
    assert quotas.rollout_surge(500, "rolling", 20) == 100
    assert quotas.fleet_need(500, 5, "blue_green") == 3000
    assert quotas.fleet_need(500, 5, "rolling", 20) == 2600
    with pytest.raises(ValueError, match="strategy='canary' is invalid: allowed: one of blue_green, rolling"):
        quotas.rollout_surge(5, "canary")


@pytest.mark.parametrize("strategy", ["blue_green", "rolling"])
@pytest.mark.parametrize(("batch", "rollback"), [(5, None), (10, None), (20, 50), (50, 100), (33, 5)])
def test_the_plans_surge_is_the_settings_surge(strategy: str, batch: int, rollback: int | None) -> None:
    """One arithmetic for a rollout's surge: the plan's (from arguments) agrees with the stage settings' own."""
    from stacks.settings import RolloutSettings, update_surge_instances

    rollout = RolloutSettings(strategy=strategy, rolling_batch_percent=batch, rolling_rollback_batch_percent=rollback)
    for instances in (1, 2, 3, 7, 40, 499, 834, 1000):
        assert quotas.rollout_surge(instances, strategy, batch, rollback) == update_surge_instances(rollout, instances)


def test_the_chosen_shard_count_is_the_fewest_that_fit() -> None:
    for peak, strategy, percent in ((1e6, "blue_green", None), (1e6, "rolling", 20.0), (3e5, "rolling", 50.0)):
        inputs = _inputs(peak_rps=peak)
        rollout = sizing.Rollout(strategy, percent)
        chosen = sizing.choose_shards(inputs, rollout, 1000)
        assert chosen is not None
        assert chosen.shard_peak_instances <= 1000
        if chosen.shards > 1:
            assert sizing.shard_plan(inputs, chosen.shards - 1, rollout).shard_peak_instances > 1000


def test_a_bound_below_the_ha_minimum_fits_no_shard_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main([*MILLION, "--max-instances-per-shard", "3"]) == 2
    assert "no shard count up to 1000 fits" in capsys.readouterr().err


def test_quota_names_are_the_ones_preflight_reads() -> None:
    from operations import preflight

    assert preflight.ACCOUNT_WIDE_QUOTA == quotas.ACCOUNT_WIDE_QUOTA
    assert preflight.QUOTA_SERVICE == quotas.QUOTA_SERVICE
    assert quotas.instance_type_quota("ml.c5.xlarge") == "ml.c5.xlarge for endpoint usage"


BASE = ["--peak-rps", "10", "--max-rps-per-instance", "1"]
STAGES_LIST = str(sorted(STAGES))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--peak-rps", "0", "--max-rps-per-instance", "1"], "argument --peak-rps: allowed: greater than 0, got 0"),
        (["--peak-rps", "x", "--max-rps-per-instance", "1"], "argument --peak-rps: expected a number, got 'x'"),
        (["--peak-rps", "inf", "--max-rps-per-instance", "1"], "argument --peak-rps: allowed: greater than 0, got inf"),
        (["--peak-rps", "1", "--max-rps-per-instance", "-5"],
         "argument --max-rps-per-instance: allowed: greater than 0, got -5"),
        ([*BASE, "--safety", "1.5"], "argument --safety: allowed: greater than 0 and at most 1, got 1.5"),
        ([*BASE, "--safety", "0"], "argument --safety: allowed: greater than 0 and at most 1, got 0"),
        ([*BASE, "--headroom", "0.9"], "argument --headroom: allowed: at least 1, got 0.9"),
        ([*BASE, "--trough-fraction", "1.2"], "argument --trough-fraction: allowed: at least 0 and at most 1, got 1.2"),
        ([*BASE, "--min-ha", "0"], "argument --min-ha: allowed: 1 or more, got 0"),
        (["--peak-rps", "10"], "give --max-rps-per-instance (measured on one instance) or --stage"),
        (["--max-rps-per-instance", "1"], "give --peak-rps, or --peak-rows-per-second (with --rows-per-request)"),
        ([*BASE, "--peak-rows-per-second", "5"],
         "argument --peak-rows-per-second: not allowed with argument --peak-rps"),
        ([*BASE, "--strategy", "canary"],
         "argument --strategy: invalid choice: 'canary' (choose from 'blue_green', 'rolling')"),
        ([*BASE, "--rolling-batch-percent", "60"],
         "argument --rolling-batch-percent: allowed: at least 5 and at most 50, got 60"),
        ([*BASE, "--shards", "0"], "argument --shards: allowed: 1 or more, got 0"),
        ([*BASE, "--in-use-elsewhere", "-1"], "argument --in-use-elsewhere: allowed: 0 or more, got -1"),
        (["--peak-rps", "10", "--stage", "staging"],
         f"no stage 'staging'; allowed: one of {STAGES_LIST} (stacks/stages.py)"),
        ([*BASE, "--instance-type", "ml.c5.xlarg"],
         "--instance-type 'ml.c5.xlarg' is not a SageMaker real-time instance type (stacks/data/instance_types.json)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(argv) == 2
    assert capsys.readouterr() == ("", f"capacity_plan: {message}\n")


def test_an_unreadable_price_table_is_one_line_and_exit_1(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "prices.json"
    broken.write_text(json.dumps({"region": "us-east-1"}))
    monkeypatch.setattr(cp, "PRICES", broken)
    assert cp.main(["--peak-rps", "10", "--max-rps-per-instance", "1"]) == 1
    assert capsys.readouterr() == ("", f"capacity_plan: cannot read {broken}: {broken} has no 'prices' object\n")


def test_the_probe_line_states_its_share_of_the_load_and_its_cost() -> None:
    prices = {"usd_per_million_requests": 0.2, "usd_per_gb_second": 0.00001667}
    table = {"lambda": {**prices, "source": "s", "read_on": "d", "caveat": "c"}}
    result = cp.plan(cp.Inputs(peak_rps=50_000, max_rps_per_instance=1000, safety=0.5, instance_type="ml.c5.xlarge"))
    load, cost = cp.probe_figures(cp.Probe(azs=3, burst_size=20, schedule_minutes=1), result, table)
    # 3 x 20 per minute = 1 per second, against 500 per second per instance at the target.
    assert (load.value, load.unit) == (60, "calls/minute")
    assert "0.20% of one instance's load at the target" in load.source
    # 3 AZs x 730 h x 60 runs; requests 131,400 x $0.2/M = $0.026; 131,400 x 1 s x 0.25 GB x $0.00001667 = $0.548.
    assert (cost.value, cost.text) == (0.57, "$0.57")
    assert cost.source.startswith("131,400 runs: requests $0.03, 256 MB")
    (slower, _) = cp.probe_figures(cp.Probe(azs=2, burst_size=10, schedule_minutes=5), result, {})
    assert slower.value == 4


def test_a_stage_with_the_probe_plans_for_it_and_one_without_does_not(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(["--stage", "prod", "--peak-rps", "50000"]) == 0
    assert "3 AZs x 20 every 1 min" in capsys.readouterr().out
    assert cp.main(["--stage", "dev", "--peak-rps", "50000"]) == 0
    assert "client probe" not in capsys.readouterr().out
