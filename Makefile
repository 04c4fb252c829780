# The gateway's one entry point: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# .python-version selects 3.13 where pyenv is used; elsewhere python3.13 must be on PATH.
PYTHON ?= python3.13
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

DEV_STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS)/.installed

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(DEV_STAMP): requirements-dev.txt layers/shared/requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# aws-sam-cli pins its own boto3 and pydantic: it lives apart from what the gateway is tested with.
$(TOOLS_STAMP): requirements-tools.txt
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $@

.PHONY: install
install: $(DEV_STAMP) $(TOOLS_STAMP) ## Create the virtualenvs

.PHONY: lint
lint: $(DEV_STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: validate
validate: $(TOOLS_STAMP) ## sam validate --lint and sam build (no container)
	$(TOOLS)/bin/sam validate --lint --template template.yaml
	$(TOOLS)/bin/sam build --template template.yaml --build-dir .aws-sam/build

.PHONY: unit
unit: $(DEV_STAMP) ## Unit and sandbox tests only
	$(PY) -m pytest tests/unit tests/sandbox -q

.PHONY: test
test: lint validate ## The whole gate: lint, types, template, build and every test tier
	$(PY) -m pytest -q

.PHONY: deploy
deploy: $(TOOLS_STAMP) ## sam build, then sam deploy --guided
	$(TOOLS)/bin/sam build --template template.yaml
	$(TOOLS)/bin/sam deploy --guided

.PHONY: clean
clean: ## Remove virtualenvs and build output
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
