"""The load test's write-back: validated, atomic, and read by the next synth."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from loadgen import write_back
from stacks import measurements, stages
from stacks.settings import SettingsError, StageSettings
from stacks.stage_loader import load_from


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
    assert stages.load_stage("dev").autoscaling.max_rps_per_instance == 1000  # the default, before
    entry = write_back.record_max_rps("dev", 1480.04, instance_type="ml.c5.xlarge", source="loadtest 2026-11-21")
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
        write_back.record_max_rps("dev", value, instance_type="ml.c5.xlarge", source="x")
    assert measured.read_text() == before


def test_measurement_from_another_instance_type_is_refused(measured: Path) -> None:
    with pytest.raises(ValueError) as caught:
        write_back.record_max_rps("dev", 800.0, instance_type="ml.m5.xlarge", source="x")
    assert str(caught.value) == (
        "instance_type='ml.m5.xlarge' is invalid: stage 'dev' runs ml.c5.xlarge; "
        "allowed: a measurement taken on the stage's own instance type"
    )


def test_unknown_stage_is_refused(measured: Path) -> None:
    with pytest.raises(SettingsError, match="stage='staging' is not defined"):
        write_back.record_max_rps("staging", 800.0, instance_type="ml.c5.xlarge", source="x")


# --- keyed to the stage's own name (issue 10) -------------------------------------------------------


def _measure(path: Path, **entries: float) -> None:
    path.write_text(
        json.dumps(
            {
                stage: {"instance_type": "ml.c5.xlarge", "max_rps_per_instance": value, "source": "x"}
                for stage, value in entries.items()
            }
        )
    )


def test_a_copied_stage_never_inherits_the_originals_measurement(measured: Path) -> None:
    _measure(measured, dev=1480.0)

    def dev_copy() -> StageSettings:
        return dataclasses.replace(stages.dev(), name="dev-copy")

    assert load_from({"dev-copy": dev_copy}, "dev-copy").autoscaling.max_rps_per_instance == 1000.0
    _measure(measured, dev=1480.0, **{"dev-copy": 700.0})
    assert load_from({"dev-copy": dev_copy}, "dev-copy").autoscaling.max_rps_per_instance == 700.0
    assert stages.load_stage("dev").autoscaling.max_rps_per_instance == 1480.0


def test_every_stage_without_a_figure_reads_its_own_measurement(measured: Path) -> None:
    _measure(measured, **{name: 100.0 + index for index, name in enumerate(stages.STAGES)})
    for index, name in enumerate(stages.STAGES):
        settings = stages.load_stage(name)
        expected = 100.0 + index if settings.instance_type == "ml.c5.xlarge" else 1000.0
        assert settings.autoscaling.max_rps_per_instance == expected, name


def test_a_new_instance_type_drops_the_old_types_measurement(measured: Path) -> None:
    _measure(measured, dev=1480.0)
    bigger = dataclasses.replace(stages.dev(), instance_type="ml.c5.2xlarge")
    assert bigger.autoscaling.max_rps_per_instance == 1000.0


def test_an_explicit_figure_wins_and_the_write_back_refuses_to_be_ignored(measured: Path) -> None:
    _measure(measured, dev=1480.0)
    explicit = dataclasses.replace(stages.dev().autoscaling, max_rps_per_instance=600.0)
    assert dataclasses.replace(stages.dev(), autoscaling=explicit).autoscaling.max_rps_per_instance == 600.0
    before = measured.read_text()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(stages.STAGES, "dev", lambda: dataclasses.replace(stages.dev(), autoscaling=explicit))
        with pytest.raises(ValueError, match="so a measurement would be ignored"):
            write_back.record_max_rps("dev", 800.0, instance_type="ml.c5.xlarge", source="x")
    assert measured.read_text() == before


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"dev": {"instance_type": "ml.c5.xlarge", "max_rps_per_instance": "fast"}}', "no number"),
        ('{"dev": 1480}', "no number"),
        ("[1, 2]", "must hold an object of stages"),
        ("{", "Expecting property name"),
    ],
)
def test_a_broken_measurements_file_is_one_line_not_a_traceback(measured: Path, content: str, why: str) -> None:
    measured.write_text(content)
    with pytest.raises(SettingsError) as caught:
        stages.load_stage("dev")
    (problem,) = caught.value.problems
    assert problem.startswith("autoscaling.max_rps_per_instance=None is invalid: reading measurements.json: ")
    assert why in problem


def test_a_measured_nan_is_refused(measured: Path) -> None:
    measured.write_text('{"dev": {"instance_type": "ml.c5.xlarge", "max_rps_per_instance": NaN, "source": "x"}}')
    with pytest.raises(SettingsError) as caught:
        stages.load_stage("dev")
    assert caught.value.problems == [
        "autoscaling.max_rps_per_instance=nan is invalid: allowed: greater than 0, at most 1000000 (measured, "
        "measurements.json)"
    ]


@pytest.mark.parametrize("fails", ["write", "replace"])
def test_an_interrupted_write_back_leaves_the_previous_file_intact(
    measured: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    before = measured.read_text()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # what a Ctrl-C or a kill between the steps looks like

    if fails == "write":
        monkeypatch.setattr(json, "dumps", interrupted)
    else:
        monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_back.record_max_rps("dev", 1480.0, instance_type="ml.c5.xlarge", source="x")
    assert measured.read_text() == before
    assert json.loads(measured.read_text())["prod"]["max_rps_per_instance"] == 900.0
    assert [file.name for file in measured.parent.iterdir()] == [measured.name]  # no stray temporary file
