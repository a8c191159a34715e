# One entry point for developers and CI. Every target installs what it needs first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS := $(CURDIR)/.tools
# Use the uv on PATH if there is one; otherwise install a pinned uv into .tools/.
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)

# jsii runs the CDK library on Node.js: use the Node 22 pinned in package.json, not the
# machine's (Node 20 is end-of-life for jsii). The CDK CLI runs on it too.
export JSII_NODE := $(CURDIR)/node_modules/node/bin/node
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
# Offline by default: no EC2 metadata probing, no telemetry from the CDK CLI or libraries.
export AWS_EC2_METADATA_DISABLED := true
export CDK_DISABLE_CLI_TELEMETRY := true
export DO_NOT_TRACK := 1

RUN := $(UV) run --frozen --no-sync

.PHONY: help install demo lint format test synth train lambda-requirements clean \
	preflight bootstrap diff deploy destroy

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# A venv when the machine has the venv module; otherwise pip --target (Debian without python3-venv).
$(TOOLS)/bin/uv:
	if python3 -m venv $(TOOLS) 2>/dev/null; then \
		$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); \
	else \
		python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/pkg uv==$(UV_VERSION) \
		&& mkdir -p $(TOOLS)/bin && ln -sf $(TOOLS)/pkg/bin/uv $(TOOLS)/bin/uv; \
	fi

.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: .venv/.installed node_modules/.installed ## Install Python (uv.lock) and Node (package-lock.json) dependencies

demo: install ## The whole lifecycle offline, narrated (everything lands in demo-output/)
	.venv/bin/mlops demo $(ARGS)

lint: install ## ruff, ruff format --check, mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: install ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

test: lint ## Lint, then run the whole test suite (offline; on up to 4 cores, a file per worker)
	$(RUN) pytest -n auto --maxprocesses 4 --dist loadfile

synth: install ## Synthesize every stack into cdk.out/ and lint it (offline; CONTEXT="-c key=value")
	rm -rf cdk.out
	npx cdk synth --quiet --no-notices $(CONTEXT)
	$(RUN) cfn-lint -- cdk.out/*.template.json
	@echo "cfn-lint: no findings. cdk-nag: see cdk.out/policy-validation-report.json"
	@ls -1 cdk.out/*.template.json

train: install ## Train and register a model on the embedded default (ARGS="--algorithm gradient_boosting")
	.venv/bin/mlops pipeline run-local $(ARGS)

# Against a real AWS account: the only targets that make AWS calls, none of them part of
# `make test`. The account, region and credentials are found as the AWS and CDK CLIs find them
# (AWS_PROFILE, AWS_REGION, SSO, instance roles: so the metadata service is allowed again);
# CONTEXT="-c stage=prod -c region=eu-west-1" as for synth. README: "Deploying to an AWS account".
ON_AWS := AWS_EC2_METADATA_DISABLED=false
MLOPS_AWS := $(ON_AWS) .venv/bin/mlops --target aws $(CONTEXT)

preflight: install ## Check (read-only) that the account and region are ready for a deploy
	$(MLOPS_AWS) aws preflight

bootstrap: install ## cdk bootstrap the account and region the stacks deploy to (once per account and region)
	$(ON_AWS) npx cdk bootstrap --no-notices $(CONTEXT)

diff: install ## What `make deploy` would change in the account
	$(ON_AWS) npx cdk diff --all --no-notices $(CONTEXT)

deploy: install ## make preflight, then cdk deploy every stack (asks before IAM or security widens)
	$(MLOPS_AWS) aws preflight
	$(ON_AWS) npx cdk deploy --all --require-approval broadening --no-notices $(CONTEXT)

# The storage and registry stacks have termination protection: cdk destroy stops at them (the
# listing says how to lift it). Whatever happens, list what is left, then fail if destroy did.
destroy: install ## cdk destroy every stack, then list what RETAIN kept and how to remove it
	status=0; $(ON_AWS) npx cdk destroy --all --no-notices $(CONTEXT) || status=$$?; \
	$(MLOPS_AWS) aws retained; \
	exit $$status

lambda-requirements: install ## Regenerate the Lambda images' requirements from uv.lock
	{ echo "# The traffic and deploy Lambda image's dependencies. Generated from uv.lock: make lambda-requirements"; \
	  $(UV) export --frozen --only-group lambda --no-hashes --no-emit-project --no-header --no-annotate | grep -v '^#'; \
	} > lambdas/requirements.txt
	{ echo "# The drift Lambda image's dependencies. Generated from uv.lock: make lambda-requirements"; \
	  $(UV) export --frozen --only-group drift --no-hashes --no-emit-project --no-header --no-annotate | grep -v '^#'; \
	} > lambdas/drift/requirements.txt

clean: ## Remove build output (keeps installed dependencies)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
