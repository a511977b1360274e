"""The load test's write-back: validated, atomic, and read by the next synth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks import measurements, stages
from stacks.settings import SettingsError


@pytest.fixture
def measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A measurements file of this test only, in place of stacks/data/measurements.json."""
    path = tmp_path / "measurements.json"
    path.write_text(
        json.dumps({"prod": {"instance_type": "ml.c5.xlarge", "max_rps_per_instance": 900.0, "source": "x"}})
    )
    monkeypatch.setattr(measurements, "MEASUREMENTS_FILE", path)
    return path


def test_committed_measurements_file_is_valid_json_of_stages() -> None:
    data = json.loads(measurements.MEASUREMENTS_FILE.read_text())
    assert isinstance(data, dict)
    assert set(data) <= set(stages.STAGES)


def test_recorded_figure_sets_the_next_synths_target(measured: Path) -> None:
    assert stages.dev().autoscaling.max_rps_per_instance == 1000  # the default, before
    entry = measurements.record_max_rps("dev", 1480.04, instance_type="ml.c5.xlarge", source="loadtest 2026-11-21")
    assert entry == {"instance_type": "ml.c5.xlarge", "max_rps_per_instance": 1480.0, "source": "loadtest 2026-11-21"}
    settings = stages.dev()
    assert settings.autoscaling.max_rps_per_instance == 1480.0
    assert settings.autoscaling.invocations_per_instance_target == 1480.0 * 0.5 * 60
    # Other stages' figures are kept, and the file stays sorted JSON.
    written = json.loads(measured.read_text())
    assert written["prod"]["max_rps_per_instance"] == 900.0
    assert measured.read_text() == json.dumps(written, indent=2, sort_keys=True) + "\n"


def test_measurement_on_another_instance_type_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"dev": {"instance_type": "ml.m5.xlarge", "max_rps_per_instance": 5.0, "source": ""}}))
    assert measurements.measured_max_rps("dev", instance_type="ml.c5.xlarge", default=1000, path=path) == 1000


@pytest.mark.parametrize("value", [0.0, -5.0, float("nan"), float("inf")])
def test_nonsense_figures_are_refused_and_nothing_is_written(measured: Path, value: float) -> None:
    before = measured.read_text()
    with pytest.raises(ValueError, match=r"max_rps_per_instance=.* is invalid: allowed: a finite number above 0"):
        measurements.record_max_rps("dev", value, instance_type="ml.c5.xlarge", source="x")
    assert measured.read_text() == before


def test_measurement_from_another_instance_type_is_refused(measured: Path) -> None:
    with pytest.raises(ValueError) as caught:
        measurements.record_max_rps("dev", 800.0, instance_type="ml.m5.xlarge", source="x")
    assert str(caught.value) == (
        "instance_type='ml.m5.xlarge' is invalid: stage 'dev' runs ml.c5.xlarge; "
        "allowed: a measurement taken on the stage's own instance type"
    )


def test_unknown_stage_is_refused(measured: Path) -> None:
    with pytest.raises(SettingsError, match="stage='staging' is not defined"):
        measurements.record_max_rps("staging", 800.0, instance_type="ml.c5.xlarge", source="x")
