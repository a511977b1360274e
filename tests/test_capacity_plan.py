"""scripts/capacity_plan.py: the sizing arithmetic on known numbers, its edges, the price table, bad input."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from capacity import capacity_plan as cp
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


def test_plan_output_for_a_priced_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(["--peak-rps", "1000000", "--max-rps-per-instance", "1000", "--instance-type", "ml.c5.xlarge"]) == 0
    out = capsys.readouterr().out
    assert "instances: min 600 (off-peak 30% of peak, HA minimum 2), expected 2,000 (at peak), max 2,500" in out
    assert (
        "AutoscalingSettings(min_capacity=600, max_capacity=2500, max_rps_per_instance=1000, safety_factor=0.5)" in out
    )
    assert "1,000 x 0.5 x 60 = 30,000 per instance per minute" in out
    assert re.search(r"expected\s+2,000\s+\$408\.00\s+\$297,840\.00", out)
    assert "price caveat:" in out


def test_plan_output_for_an_unpriced_type_says_so_instead_of_guessing(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(["--peak-rps", "5000", "--max-rps-per-instance", "800", "--instance-type", "ml.g4dn.xlarge"]) == 0
    out = capsys.readouterr().out
    assert "cost: no price for ml.g4dn.xlarge in sagemaker_prices.json" in out
    assert "$" not in out


def test_stage_settings_are_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(["--peak-rps", "2000", "--stage", "prod"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("peak 2,000 requests/s on ml.c5.xlarge\n")
    assert "MAX_RPS per instance 1,000 (stage prod's setting; measure it), safety 0.5" in out
    assert "expected 4 (at peak)" in out


def test_arguments_override_the_stage(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--peak-rps", "2000", "--stage", "dev", "--max-rps-per-instance", "250", "--safety", "0.8"]
    assert cp.main(argv) == 0
    assert "MAX_RPS per instance 250 (given), safety 0.8: 200 requests/s" in capsys.readouterr().out


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
        (["--max-rps-per-instance", "1"], "the following arguments are required: --peak-rps"),
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
    load, cost = cp.probe_lines(cp.Probe(azs=3, burst_size=20, schedule_minutes=1), result, table)
    # 3 x 20 per minute = 1 per second, against 500 per second per instance at the target.
    assert "= 60 invocations per minute, 0.20% of one instance's load" in load
    # 3 AZs x 730 h x 60 runs; requests 131,400 x $0.2/M = $0.026; 131,400 x 1 s x 0.25 GB x $0.00001667 = $0.548.
    assert cost.startswith("  probe cost: 131,400 runs per month, $0.57 per month (requests $0.03, 256 MB")
    (slower,) = cp.probe_lines(cp.Probe(azs=2, burst_size=10, schedule_minutes=5), result, {})[:1]
    assert "= 4 invocations per minute" in slower


def test_a_stage_with_the_probe_plans_for_it_and_one_without_does_not(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.main(["--stage", "prod", "--peak-rps", "50000"]) == 0
    assert "client probe: 3 AZs x 20 invocations every 1 min" in capsys.readouterr().out
    assert cp.main(["--stage", "dev", "--peak-rps", "50000"]) == 0
    assert "client probe" not in capsys.readouterr().out
