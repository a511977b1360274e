# The front door for people and CI alike. `make synth` sets everything up on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= dev
# jsii and the CDK CLI run on the pinned Node.js from package.json, not the machine's.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
CDK := node_modules/.bin/cdk

.PHONY: setup synth test lint format bench tables model triton-model inf1-model lock clean diff deploy destroy deploy-ci-roles rehearse bench-client

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Synthesize every stack of STAGE (default: dev) offline; nag packs run in the synth, cfn-lint after it.
## W3010 (hard-coded AZs) is the design: the subnets sit in the clients' AZs (tests/test_cfn_lint.py).
synth: setup
	rm -rf cdk.out  # lint only this synth's templates, not another stage's left behind
	$(CDK) synth --no-lookups --no-notices --quiet -c stage=$(STAGE)
	$(VENV)/bin/cfn-lint --ignore-checks W3010 -- cdk.out/*.template.json
	@echo "synthesized stage $(STAGE) into cdk.out/ (cdk-nag and cfn-lint clean)"

## The whole test suite (offline), on every core. Snapshot updates run in one process:
## make test PYTEST_ARGS="-n0 --snapshot-update"
test: setup
	$(PY) -m pytest -q -n auto $(PYTEST_ARGS)

## The real cdk bootstrap and cdk deploy of STAGE against moto on 127.0.0.1 (offline, no AWS account).
rehearse: setup
	$(PY) scripts/rehearse.py --stage $(STAGE)

## These three need AWS credentials for the stage's account.
diff: setup
	$(CDK) diff RtbInference-$(STAGE) -c stage=$(STAGE)

deploy: setup
	$(CDK) deploy RtbInference-$(STAGE) -c stage=$(STAGE)

destroy: setup
	$(CDK) destroy RtbInference-$(STAGE) -c stage=$(STAGE)

## Once per account, by an administrator: the GitHub OIDC provider and the CI roles.
deploy-ci-roles: setup
	$(CDK) deploy RtbInference-GitHubCi

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Synth time against an empty CDK app (the jsii floor), and the test-suite time: medians.
bench: setup
	$(PY) scripts/bench.py

## The kit's client against a local endpoint: N calls on one pooled client (1 connection) vs a new client per call.
bench-client: setup
	$(PY) scripts/bench_client.py

## Regenerate the committed image and instance-type tables from the SDK / botocore.
tables: setup
	$(PY) scripts/generate_tables.py

## Retrain and repackage the sample model, then the gpu and inferentia profiles' artifacts from it
## (all byte-for-byte reproducible).
model: setup
	$(PY) scripts/train_model.py
	$(PY) scripts/build_triton_artifact.py
	$(PY) scripts/build_inf1_artifact.py

## The gpu profile's Triton FIL model repository, from model_artifacts/model.tar.gz.
triton-model: setup
	$(PY) scripts/build_triton_artifact.py

## The inferentia profile's traced PyTorch model (Neo compiles it during the deploy).
inf1-model: setup
	$(PY) scripts/build_inf1_artifact.py

lock: setup
	{ echo "# Every Python package of the dev environment, pinned (pip install -c). Regenerate with 'make lock'."; \
	  $(VENV)/bin/pip freeze --exclude-editable | sort; } > constraints.txt

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
