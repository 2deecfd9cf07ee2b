# chargelog: `make run` starts the whole stack locally, `make test` runs every test.
# Both set up what they need first (a Python 3.13 virtualenv in .venv).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
SAM_VENV := .venv-sam
SAM_CLI_VERSION := 1.170.0
# Python 3.13: from PATH, else from pyenv. Override with `make PY313=/path/to/python3.13 ...`.
PY313 ?= $(shell for p in python3.13 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13; do \
	$$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1 && { echo $$p; break; }; done)
# sam build (BuildMethod: python3.13) needs python3.13 on PATH: the project venv provides it.
SAM := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM_VENV)/bin/sam
ARGS ?=

.PHONY: help install run test lint browser-deps openapi validate build check-layer bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml layers/common/requirements.txt
	@test -n "$(PY313)" || { echo "Python 3.13 is needed: install it (e.g. pyenv install 3.13) or pass PY313=/path/to/python3.13" >&2; exit 1; }
	$(PY313) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed  ## create .venv with chargelog and its dev tools

run: install  ## start the local stack: moto, simulators, API on 127.0.0.1:3000, schedules (ARGS="--port 3001")
	$(VENV)/bin/chargelog local $(ARGS)

lint: install  ## ruff, formatting, mypy and the import contracts (pyproject.toml [tool.importlinter])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint $(SAM_VENV)/.installed browser-deps  ## every test: unit, integration (moto server), end-to-end (chargelog local), browser
	CHARGELOG_SAM_PYTHON=$(SAM_VENV)/bin/python $(VENV)/bin/pytest $(ARGS)

# The browser tests (tests/browser) drive Debian's chromium through its chromium-driver; installed when missing.
CHROMEDRIVER := /usr/bin/chromedriver
browser-deps:  ## chromium and chromium-driver for the browser tests (apt-get, with sudo unless root)
	@test -x $(CHROMEDRIVER) || { \
		as_root=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$as_root apt-get update && $$as_root apt-get install -y chromium chromium-driver; }

$(SAM_VENV)/.installed:
	@test -n "$(PY313)" || { echo "Python 3.13 is needed for the SAM CLI" >&2; exit 1; }
	$(PY313) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet "aws-sam-cli==$(SAM_CLI_VERSION)"
	@touch $@

openapi: install  ## regenerate docs/openapi.json from the API's code
	$(VENV)/bin/python -m chargelog_cli.openapi

validate: install $(SAM_VENV)/.installed  ## sam validate --lint
	$(SAM) validate --lint

build: install $(SAM_VENV)/.installed  ## sam build (arm64 layer, no Docker needed)
	$(SAM) build

check-layer:  ## check the built layer holds only arm64 / cp313 binaries
	$(VENV)/bin/python .ci/check_layer.py .aws-sam/build/CommonLayer

bench: install  ## benchmarks (see bench/)
	$(VENV)/bin/python bench/coldstart.py
	$(VENV)/bin/python bench/query.py --records 20000 --runs 30
	$(VENV)/bin/python bench/upload.py --runs 5 --decisions 100
	$(VENV)/bin/python bench/viewer.py --records 20000 --runs 3
	$(VENV)/bin/python bench/freshness.py

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
