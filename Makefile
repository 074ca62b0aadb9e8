# flowsignals — `make run` and `make test` set themselves up on a fresh clone.

# The Lambda runtime is python3.13; use pyenv's 3.13 where the machine has it.
PYTHON ?= $(or $(lastword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13)),python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: help run test lint bench openapi build dynamodb-local migrate-table lock clean
.DEFAULT_GOAL := help

help: ## List the targets (this list)
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

# Exact versions from constraints.txt: a new release upstream cannot turn a run red overnight.
$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

lock: ## Refresh constraints.txt to the newest versions pyproject.toml allows
	rm -rf .cache/lock
	$(PYTHON) -m venv .cache/lock
	.cache/lock/bin/pip install --quiet -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .cache/lock/bin/pip freeze --exclude-editable; } > .cache/constraints.txt
	mv .cache/constraints.txt constraints.txt
	@echo "constraints.txt refreshed: align infra/layer/requirements.txt, then make test"

# Without npm the fetch fails; the DynamoDB Local tests then skip loudly (fail in CI).
dynamodb-local: $(INSTALLED) ## Fetch DynamoDB Local once (npm package amplify-dynamodb-simulator)
	$(BIN)/python infra/dynamodb_local.py fetch || echo "WARNING: DynamoDB Local not fetched"

# cfn-lint twice: with the defaults (no CORS, no dashboard API) and with both switched on.
DASHBOARD_PARAMETERS := CorsAllowOrigins=https://dashboard.example.com,http://localhost:5173 \
	JwtIssuer=https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE JwtAudience=example-client-id \
	JwtDecideScope=flowsignals/decide JwtReadScope=flowsignals/read

lint: $(INSTALLED) ## ruff, ruff format --check, mypy --strict, cfn-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(BIN)/cfn-lint template.yaml --parameters $(DASHBOARD_PARAMETERS)

# The HTTP API of template.yaml at http://127.0.0.1:$${PORT:-3000}, on embedded DynamoDB
# (moto) unless DYNAMODB_ENDPOINT names one; CORS for the origins CORS_ALLOW_ORIGINS names.
run: $(INSTALLED) ## Serve the HTTP API on http://127.0.0.1:3000 (PORT, DYNAMODB_ENDPOINT, CORS_ALLOW_ORIGINS)
	$(BIN)/python infra/local_server.py

# Each test worker (pytest-xdist, one per core) starts DynamoDB Local on a free port when one
# of its tests needs it, and stops it at the end.
test: lint dynamodb-local ## Lint, then every test (DynamoDB Local started and stopped)
	$(BIN)/python -m pytest

openapi: $(INSTALLED) ## Regenerate openapi.json from the resolver's routes
	$(BIN)/python infra/openapi.py

# `sam build` for the template's runtime: python3.13 must be first on PATH. SAM CLI lives in
# its own venv (its pins clash with the test tools').
SAM_VENV := .cache/sam
$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli

build: $(SAM_VENV)/bin/sam ## sam build for arm64 (needs the package registry the first time)
	PATH="$(abspath $(dir $(PYTHON))):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build
	du -sh .aws-sam/build/*Function

bench: dynamodb-local ## Requests, capacity, cost, throughput, contention, cold start
	$(BIN)/python infra/bench.py

# After a deploy that replaced the table (docs/operations.md, Moving to a new table).
migrate-table: $(INSTALLED) ## Copy a replaced table's rows into its successor (SOURCE, TARGET, ENDPOINT)
	@test -n "$(SOURCE)" -a -n "$(TARGET)" || { echo "usage: make migrate-table SOURCE=<old table> TARGET=<new table>"; exit 2; }
	$(BIN)/python infra/migrate_table.py "$(SOURCE)" "$(TARGET)" $(if $(ENDPOINT),--endpoint "$(ENDPOINT)")

clean: ## Remove the venv, caches and build output
	rm -rf $(VENV) .cache .aws-sam .pytest_cache .ruff_cache .mypy_cache .hypothesis
