# The front door for people and CI alike. `make synth` sets everything up on a fresh machine.
# Targets that run a script or the CDK CLI pass ARGS on, e.g. make bench-client ARGS="--calls 1000".
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= dev
# jsii and the CDK CLI run on the pinned Node.js from package.json, not the machine's.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
# uv installs without byte-compiling, and PYTHONDONTWRITEBYTECODE=1 (set on many CI images and these machines)
# stops Python from caching what it compiles: every synth would compile aws_cdk's modules from source again
# (3.3 s of a 5.8 s `python app.py` measured in `compile`). Compiled once at install, they load.
export UV_COMPILE_BYTECODE := 1
CDK := node_modules/.bin/cdk

.PHONY: setup setup-dev setup-model setup-checkov synth synth-all stages test test-model lint format bench tables model package triton-model \
	inf1-model lock check-locks clean diff deploy destroy deploy-ci-roles rehearse bench-client bench-model \
	bench-generator preflight try-as-a-stranger test-quick simulate

# Python packages come in three pinned layers (locks/, from `make lock`), installed by uv, which the
# setup bootstraps from PyPI into the venv. Each layer adds to the one before it:
#   synth  (make synth, diff, deploy)            CDK, cdk-nag, boto3, cfn-lint
#   dev    (make test, lint, rehearse, bench)     + pytest, moto, XGBoost, linters, Locust
#   model  (make model, test-model)               + torch, hummingbird-ml, Treelite, tritonclient
# checkov, which the tests run on every template, has a venv of its own beside them (locks/checkov.txt).
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
CHECKOV_VENV := .venv-checkov

setup: $(VENV)/.synth node_modules/.installed
setup-dev: setup $(VENV)/.dev setup-checkov
setup-checkov: $(CHECKOV_VENV)/.installed
setup-model: setup-dev $(VENV)/.model

$(UV):
	@echo "setup: creating $(VENV) with $$(python3 --version) and installing uv $(UV_VERSION) (a few seconds)"
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synth: locks/synth.txt client/pyproject.toml | $(UV)
	@echo "setup: synth layer, locks/synth.txt (aws-cdk-lib, cdk-nag, boto3, cfn-lint; ~20 s and ~400 MB when uncached)"
	$(UV) pip install --quiet --python $(VENV)/bin/python -r locks/synth.txt
	@echo "setup: the kit's client package (client/, editable: the CLIs import it as ad servers do)"
	$(UV) pip install --quiet --python $(VENV)/bin/python --no-deps --editable ./client
	touch $@

$(VENV)/.dev: locks/dev.txt $(VENV)/.synth
	@echo "setup: dev layer, locks/dev.txt (pytest, moto, XGBoost, linters, Locust; ~30 s and ~600 MB more when uncached)"
	$(UV) pip install --quiet --python $(VENV)/bin/python -r locks/dev.txt
	touch $@

$(VENV)/.model: locks/model.txt $(VENV)/.dev
	@echo "setup: model layer, locks/model.txt (torch, hummingbird-ml, Treelite, tritonclient; from PyPI, Linux's"
	@echo "       torch brings the CUDA libraries: several GB and minutes)"
	$(UV) pip install --quiet --python $(VENV)/bin/python -r locks/model.txt
	touch $@

# checkov pins an old boto3 and packaging<24, which would break pytest 9 in $(VENV). Byte-compiled at install:
# PYTHONDONTWRITEBYTECODE is common, and each run would otherwise compile checkov's modules anew (twice as slow).
$(CHECKOV_VENV)/.installed: locks/checkov.txt | $(UV)
	@echo "setup: checkov in its own venv, $(CHECKOV_VENV) (locks/checkov.txt; ~10 s and ~270 MB when uncached)"
	python3 -m venv --without-pip $(CHECKOV_VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(CHECKOV_VENV)/bin/python locks/checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	@echo "setup: the pinned CDK CLI and Node.js from npm (package-lock.json; ~10 s)"
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Synthesize every stack of STAGE (default: dev) offline; nag packs run in the synth, cfn-lint after it.
## The CLI, not the app, fails a synth on the cdk-nag findings of the stacks it selects, and honours --quiet only
## when it selects one (for more it adds "Supply a stack id ..."): one run per stack, the second reads the first's
## assembly (-a cdk.out, no second synth).
## W3010 (hard-coded AZs) is the design: the subnets sit in the clients' AZs (tests/test_cfn_lint.py).
synth: setup
	rm -rf cdk.out  # lint only this synth's templates, not another stage's left behind
	$(CDK) synth --no-lookups --no-notices --quiet -c stage=$(STAGE) RtbInference-$(STAGE)
	$(CDK) synth --no-notices --quiet -a cdk.out RtbInference-GitHubCi
	$(VENV)/bin/cfn-lint --ignore-checks W3010 -- cdk.out/*.template.json
	@echo "synthesized stage $(STAGE) into cdk.out/ (cdk-nag and cfn-lint clean)"

## The stages stacks/stages.py defines, one per line; synth-all synthesizes each (what CI runs).
stages: setup
	@$(PY) -c 'from stacks.stages import STAGES; print(*STAGES, sep="\n")'

synth-all: setup
	@set -e; for stage in $$($(MAKE) --no-print-directory -s stages); do $(MAKE) --no-print-directory synth STAGE=$$stage; done

## The whole test suite (offline), on every core; idle workers take queued tests from busy ones (worksteal), so
## a long test near the end does not leave a core idle. Snapshot updates run in one process:
## make test PYTEST_ARGS="-n0 --snapshot-update"
test: setup-dev
	$(PY) -m pytest -q -n auto --dist worksteal $(PYTEST_ARGS)

## The inner loop: the unit and template-assertion tests, without the ones marked slow (subprocesses, Locust
## runs, moto, checkov, the SageMaker SDK, property tests). make test, and CI, run everything. Hypothesis's pytest
## plugin is off here: no quick test uses it, and its end-of-run summary alone imports Hypothesis (1.3 s).
test-quick: setup-dev
	$(PY) -m pytest -q -n auto --dist worksteal -m "not slow" -p no:hypothesispytest $(PYTEST_ARGS)

## As a new user would, each in a scratch copy of the repository (its tracked files with the working tree's changes,
## this checkout's environments linked): serve an own model (docs/own-model.md) and add a stage (docs/settings.md),
## accept only what the failures ask to accept, then all of `make test`. One line per scenario, pass or fail with
## the counts; ARGS="--scenario own-model" (or new-stage) runs one. 3 to 6 minutes per scenario on 2 cores.
try-as-a-stranger: setup-dev
	$(PY) scripts/try_as_a_stranger.py $(ARGS)

## The checks that need the model-building layer: rebuild the gpu and inferentia artifacts and compare them
## with XGBoost (torch, Treelite, Triton's config schema).
test-model: setup-model
	$(VENV)/bin/mypy modelpack/build_inf1_artifact.py tests/model_build/*.py
	$(PY) -m pytest -q -n auto --model-build tests/model_build $(PYTEST_ARGS)

## The real cdk bootstrap and cdk deploy of STAGE against moto on 127.0.0.1 (offline, no AWS account).
rehearse: setup-dev
	$(PY) scripts/rehearse.py --stage $(STAGE) $(ARGS)

## Before a deploy, with the deployer's credentials: synthesize STAGE, then read the account's endpoint instance
## quotas, Lambda concurrency, an existing VPC's runtime endpoint and the CDK bootstrap version; one line per check,
## with its fix (docs/first-deploy.md#preflight). Exit 1 if a check fails.
preflight: setup
	$(MAKE) --no-print-directory synth STAGE=$(STAGE)
	$(PY) scripts/preflight.py --stage $(STAGE) --assembly cdk.out $(ARGS)

## These three need AWS credentials for the stage's account. Without any, the CDK CLI synthesizes for seconds, then
## prints one error twice and not how to give them: each first looks for them as the CLI would (scripts/
## check_credentials.py; a --profile in ARGS is the CLI's to resolve) and says in one line what is missing.
diff: setup
	@$(PY) scripts/check_credentials.py "make diff STAGE=$(STAGE)" $(ARGS)
	$(CDK) diff RtbInference-$(STAGE) -c stage=$(STAGE) $(ARGS)

deploy: setup
	@$(PY) scripts/check_credentials.py "make deploy STAGE=$(STAGE)" $(ARGS)
	$(CDK) deploy RtbInference-$(STAGE) -c stage=$(STAGE) $(ARGS)

destroy: setup
	@$(PY) scripts/check_credentials.py "make destroy STAGE=$(STAGE)" $(ARGS)
	$(CDK) destroy RtbInference-$(STAGE) -c stage=$(STAGE) $(ARGS)

## Once per account, by an administrator: the GitHub OIDC provider and the CI roles.
deploy-ci-roles: setup
	$(CDK) deploy RtbInference-GitHubCi

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Synth time against an empty CDK app (the jsii floor), and the test-suite time: medians.
bench: setup-dev
	$(PY) scripts/bench.py $(ARGS)

## The kit's client against a local endpoint: N calls on one pooled client (1 connection) vs a new client per call,
## then the micro-batching table (client CPU per row and added latency per batch size; BATCH_ARGS="--rows 8000").
bench-client: setup-dev
	$(PY) scripts/bench_client.py $(ARGS)
	$(PY) scripts/bench_batching.py $(BATCH_ARGS)

## The model's line of the latency budget: single-row parse + DMatrix + predict on a packaged cpu archive.
bench-model: setup-dev
	$(PY) scripts/bench_model.py $(ARGS)

## How much load one load-generator process drives, and how the load test scales with --processes here.
bench-generator: setup-dev
	$(PY) scripts/bench_generator.py $(ARGS)

## A simulated day of the sharded fleet under target tracking (prod's settings, the evening ramp to 1M RPS by
## default): minutes and share of calls over the SLO, and the scheduled capacity that removes them (docs/scale.md).
simulate: setup-dev
	$(PY) scripts/simulate_day.py $(ARGS)

## Regenerate the committed image and instance-type tables from the SDK / botocore.
tables: setup-dev
	$(PY) scripts/generate_tables.py $(ARGS)

## Retrain and repackage the sample model, then the gpu and inferentia profiles' artifacts from it
## (all byte-for-byte reproducible).
model: setup-model
	$(PY) scripts/train_model.py
	$(PY) scripts/build_triton_artifact.py
	$(PY) scripts/build_inf1_artifact.py

## Package your own XGBoost model (booster file or a training job's model.tar.gz) for every profile:
## make package MODEL=path [FEATURES=names.txt] [OUT=model_artifacts/mine] (docs/own-model.md).
## The inferentia artifact is written when the model layer is installed (make setup-model).
OUT ?= model_artifacts/custom
package: setup-dev
	@test -n "$(MODEL)" || { echo "make package: MODEL is not set; allowed: MODEL=path/to/model.json or model.tar.gz"; exit 2; }
	$(PY) scripts/package_model.py "$(MODEL)" --out-dir "$(OUT)" $(if $(FEATURES),--features "$(FEATURES)") $(ARGS)

## The gpu profile's Triton FIL model repository, from model_artifacts/model.tar.gz.
triton-model: setup-model
	$(PY) scripts/build_triton_artifact.py $(ARGS)

## The inferentia profile's traced PyTorch model (Neo compiles it during the deploy).
inf1-model: setup-model
	$(PY) scripts/build_inf1_artifact.py $(ARGS)

## Re-resolve the three layers from PyPI for every platform (uv's universal lock), model first so that each
## layer pins the same versions as the one above it; checkov's own venv alone. Then `make check-locks`.
LOCK := $(UV) pip compile --quiet --universal --python-version 3.11 --no-config --no-header --annotation-style line \
	--default-index https://pypi.org/simple
lock: | $(UV)
	$(LOCK) requirements-model.txt -o locks/model.txt
	$(LOCK) -c locks/model.txt requirements-dev.txt -o locks/dev.txt
	$(LOCK) -c locks/model.txt requirements.txt -o locks/synth.txt
	$(LOCK) requirements-checkov.txt -o locks/checkov.txt

## Every pin of every layer and of checkov's venv resolves from PyPI alone (no local indexes, wheel stores or
## pip configuration), on Linux x86_64 and macOS arm64. Needs PyPI; CI runs it.
check-locks: | $(UV)
	$(VENV)/bin/python scripts/check_locks.py

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache $(CHECKOV_VENV)
