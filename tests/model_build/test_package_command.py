"""`make package` end to end with the model-building layer: models of other shapes than the sample's, packaged
for all three profiles by the command's own entry point, then each profile's artifact synthesized in a stage of
that profile, with every shape read from the manifests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from modelpack import package_model
from stacks.stages import load_stage
from tests.conftest import synthesize
from tests.model_build.conftest import MODELS, train

# Which folder of the command's output each profile's stage deploys.
STAGE_ARTIFACTS = {"dev": ".", "gpu": "triton", "inferentia": "inf1"}


@pytest.fixture(scope="module", params=list(MODELS))
def command_output(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    name = str(request.param)
    spec = MODELS[name]
    booster = train(spec["objective"], spec["n_features"], seed=spec["seed"], num_class=spec.get("num_class"))
    source = tmp_path_factory.mktemp(f"source-{name}") / "model.ubj"
    booster.save_model(source)
    out = tmp_path_factory.mktemp(f"packaged-{name}")
    assert package_model.main([str(source), "--out-dir", str(out), "--profiles", "cpu,gpu,inferentia"]) == 0
    return name, out


def manifest_at(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / package_model.MANIFEST).read_text())
    return loaded


def test_every_profile_is_written_with_the_models_width_and_output(command_output: tuple[str, Path]) -> None:
    name, out = command_output
    cpu = manifest_at(out)
    assert len(cpu["features"]) == MODELS[name]["n_features"]
    for folder in ("triton", "inf1"):
        derived = manifest_at(out / folder)
        assert derived["features"] == cpu["features"], folder
        assert derived["output"]["kind"] == cpu["output"]["kind"], folder
        assert derived["output"]["columns"] == cpu["output"]["columns"], folder
    width = len(cpu["features"])
    neo = manifest_at(out / "inf1")["neo"]
    assert neo["data_input_config"] == {"input0": [1, width]}


@pytest.mark.parametrize("stage", list(STAGE_ARTIFACTS))
def test_each_profiles_stage_synthesizes_the_packaged_model(
    command_output: tuple[str, Path], stage: str, tmp_path: Path
) -> None:
    _, out = command_output
    folder = out / STAGE_ARTIFACTS[stage]
    settings = dataclasses.replace(load_stage(stage), model_artifact=str(folder / package_model.ARTIFACT))
    synthesized = synthesize(settings, tmp_path)
    assert synthesized.of_type("AWS::SageMaker::Model")
    assert settings.artifact.manifest["features"] == manifest_at(out)["features"]
    if stage == "inferentia":
        (_, job), *_ = [
            (key, value)
            for key, value in synthesized.resources.items()
            if "DataInputConfig" in value.get("Properties", {})
        ]
        width = len(manifest_at(out)["features"])
        assert json.loads(job["Properties"]["DataInputConfig"]) == {"input0": [1, width]}
