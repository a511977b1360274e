#!/usr/bin/env python3
"""CDK entry point: ``cdk synth -c stage=NAME`` (default: dev). The only place that reads the context."""

import os
import sys
from pathlib import Path

# jsii runs $JSII_NODE, else `node` from PATH: prefer the Node.js package.json pins (no end-of-life banner, and
# the version the kit is tested on) when `cdk synth` runs outside make, unless the user chose one.
_PINNED_NODE = Path(__file__).resolve().parent / "node_modules" / ".bin" / "node"
if "JSII_NODE" not in os.environ and _PINNED_NODE.is_file():
    os.environ["JSII_NODE"] = str(_PINNED_NODE)

from aws_cdk import App  # noqa: E402

from stacks.compliance import add_compliance_checks  # noqa: E402
from stacks.github_ci import GitHubCiStack  # noqa: E402
from stacks.inference_stack import InferenceStack  # noqa: E402
from stacks.settings import SettingsError  # noqa: E402
from stacks.stages import DEFAULT_STAGE, github_ci, load_stage  # noqa: E402


def main() -> None:
    # cfn-lint runs on every template in `make synth` and the tests; CDK's built-in copy of its rules
    # would add ~3 s to each synth here, more than everything else in it.
    app = App(builtin_cloud_formation_validation=False)
    try:
        # Only an absent stage means the default: `-c stage=` (empty) is refused like any unknown name.
        stage = app.node.try_get_context("stage")
        settings = load_stage(DEFAULT_STAGE if stage is None else stage)
        ci = github_ci()
    except SettingsError as error:
        sys.exit(f"error: {error}")
    InferenceStack(app, settings.stack_name, settings=settings)
    # Deployed once per account by an administrator: make deploy-ci-roles.
    GitHubCiStack(app, ci.stack_name, settings=ci)
    add_compliance_checks(app)
    app.synth()


if __name__ == "__main__":
    main()
