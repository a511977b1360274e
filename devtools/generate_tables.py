"""Regenerate the committed lookup tables that synth reads (offline, fast).

    python scripts/generate_tables.py          # rewrite stacks/data/*.json
    python scripts/generate_tables.py --check  # exit 1 if the committed tables are stale

Sources, both shipped inside installed packages (no network):
- container images (built-in XGBoost, SageMaker Triton, Neo/Inferentia PyTorch): the SageMaker SDK's own
  image table (``sagemaker.core.image_uris``), and botocore's partition of each region;
- hosting instance types: the ``ProductionVariantInstanceType`` enum of botocore's SageMaker model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[1] / "stacks" / "data"
IMAGES_FILE = DATA_DIR / "xgboost_images.json"
TRITON_IMAGES_FILE = DATA_DIR / "triton_images.json"
INF1_IMAGES_FILE = DATA_DIR / "neo_inf1_images.json"
INSTANCE_TYPES_FILE = DATA_DIR / "instance_types.json"

FRAMEWORK = "xgboost"
# Container tags the kit supports and the XGBoost library each one runs. The SDK's table does not
# say which XGBoost a tag carries; these come from the container release notes
# (aws/sagemaker-xgboost-container, aws/deep-learning-containers).
CONTAINER_XGBOOST_VERSIONS = {
    "1.7-1": "1.7.6",
    "3.0-5": "3.0.5",
    "3.2-0": "3.2.0",
}


# The gpu profile's image: SageMaker's Triton Inference Server with the FIL backend. One version only.
# The model is XGBoost 3.2 JSON, which carries a "cats" object and a vector base_score ("[5E-1]"); the
# FIL backend reads it through Treelite, and only Treelite 4.6+ parses both (dmlc/treelite#638,
# "Support XGBoost 3.1"; checked here: 4.5.1 rejects the "cats" key, and with unknown fields allowed
# fails on the base_score, while 4.1.2 loads it and predicts wrongly). Treelite 4.6 was released in
# November 2025, after Triton 25.09, the newest image before 26.05 in the SDK's table; the FIL backend
# bumped Treelite for Triton 26.01 (triton-inference-server/fil_backend#443, with vector-bias support)
# and moved to nvForest only in 26.06 (#453). 26.05 serves CUDA compute capability 7.5+, which includes
# the T4 GPUs of ml.g4dn. Not yet seen on a GPU: load model_artifacts/triton in this image when one is at
# hand (tests/test_triton_artifact.py reads the model with Treelite 4.6.1 instead).
TRITON_FRAMEWORK = "sagemaker-tritonserver"
TRITON_VERSION = "26.05"
TRITON_INSTANCE_TYPE = "ml.g4dn.xlarge"  # picks the GPU image (the CPU one is tagged "-cpu")

# The Neo-compiled PyTorch images for ml.inf1 (Inferentia 1). Every version the SDK lists is kept: which
# one to deploy depends on the TorchScript the model is compiled from, and is chosen in the settings.
INF1_FRAMEWORK = "inferentia-pytorch"
INF1_INSTANCE_TYPE = "ml.inf1.xlarge"


def _sdk_version() -> str:
    from importlib.metadata import version

    return f"sagemaker-core {version('sagemaker-core')}"


def build_image_table() -> dict[str, Any]:
    """Region -> registry account and host for each supported tag, as the SDK resolves them."""
    from sagemaker.core import image_uris

    config = image_uris.config_for_framework(FRAMEWORK)["inference"]["versions"]
    versions: dict[str, Any] = {}
    for tag, xgboost_version in CONTAINER_XGBOOST_VERSIONS.items():
        entry = config[tag]
        regions: dict[str, dict[str, str]] = {}
        for region, account in sorted(entry["registries"].items()):
            uri = image_uris.retrieve(FRAMEWORK, region, version=tag)
            host, _, repository_and_tag = uri.partition("/")
            if repository_and_tag != f"{entry['repository']}:{tag}":
                raise SystemExit(f"unexpected image URI for {region}: {uri}")
            regions[region] = {"account": account, "host": host}
        versions[tag] = {
            "repository": entry["repository"],
            "xgboost_version": xgboost_version,
            "regions": regions,
        }
    return {"generated_by": "scripts/generate_tables.py", "source": _sdk_version(), "versions": versions}


def build_registry_table(framework: str, versions: list[str], instance_type: str) -> dict[str, Any]:
    """Per version: repository, tag, and region -> registry account, host and partition, as the SDK resolves them."""
    import botocore.session
    from sagemaker.core import image_uris

    session = botocore.session.get_session()
    config = image_uris.config_for_framework(framework)
    table: dict[str, Any] = {}
    for version in versions:
        repository = config["versions"][version]["repository"]
        tags: set[str] = set()
        regions: dict[str, dict[str, str]] = {}
        for region, account in sorted(config["versions"][version]["registries"].items()):
            uri = image_uris.retrieve(framework, region, version=version, instance_type=instance_type)
            host, _, repository_and_tag = uri.partition("/")
            found_repository, _, tag = repository_and_tag.partition(":")
            if found_repository != repository or not tag or not host.startswith(f"{account}.dkr.ecr.{region}."):
                raise SystemExit(f"unexpected {framework} {version} image URI for {region}: {uri}")
            tags.add(tag)
            regions[region] = {"account": account, "host": host, "partition": session.get_partition_for_region(region)}
        if len(tags) != 1:
            raise SystemExit(f"{framework} {version} has different tags in different regions: {sorted(tags)}")
        table[version] = {"repository": repository, "tag": tags.pop(), "regions": regions}
    return {
        "generated_by": "scripts/generate_tables.py",
        "source": _sdk_version(),
        "framework": framework,
        "instance_type": instance_type,
        "versions": table,
    }


def build_triton_table() -> dict[str, Any]:
    """The pinned SageMaker Triton image (GPU), region by region."""
    return build_registry_table(TRITON_FRAMEWORK, [TRITON_VERSION], TRITON_INSTANCE_TYPE)


def build_inf1_table() -> dict[str, Any]:
    """Every Neo/Inferentia PyTorch image version the SDK lists for ml.inf1, region by region."""
    from sagemaker.core import image_uris

    config = image_uris.config_for_framework(INF1_FRAMEWORK)
    if config.get("processors") != ["inf"]:
        raise SystemExit(f"{INF1_FRAMEWORK} no longer serves only the inf processor: {config.get('processors')}")
    versions = sorted(config["versions"], key=lambda version: tuple(int(part) for part in version.split(".")))
    return build_registry_table(INF1_FRAMEWORK, versions, INF1_INSTANCE_TYPE)


def build_instance_types() -> dict[str, Any]:
    """Every instance type that a real-time endpoint variant accepts, per botocore's service model."""
    import botocore
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    enum = model.shape_for("ProductionVariantInstanceType").enum
    return {
        "generated_by": "scripts/generate_tables.py",
        "source": f"botocore {botocore.__version__} sagemaker ProductionVariantInstanceType",
        "instance_types": sorted(enum),
    }


def render(table: dict[str, Any]) -> str:
    return json.dumps(table, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    outputs = {
        IMAGES_FILE: render(build_image_table()),
        TRITON_IMAGES_FILE: render(build_triton_table()),
        INF1_IMAGES_FILE: render(build_inf1_table()),
        INSTANCE_TYPES_FILE: render(build_instance_types()),
    }
    stale = [path for path, text in outputs.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(DATA_DIR.parents[1])} (run python scripts/generate_tables.py)")
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(DATA_DIR.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
