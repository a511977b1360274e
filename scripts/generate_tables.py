"""Regenerate the committed lookup tables that synth reads (offline, fast).

    python scripts/generate_tables.py          # rewrite stacks/data/*.json
    python scripts/generate_tables.py --check  # exit 1 if the committed tables are stale

Sources, both shipped inside installed packages (no network):
- container images: the SageMaker SDK's own image table (``sagemaker.core.image_uris``);
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
    outputs = {IMAGES_FILE: render(build_image_table()), INSTANCE_TYPES_FILE: render(build_instance_types())}
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
