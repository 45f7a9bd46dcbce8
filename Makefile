# One entry point for people and CI. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup demo observe screenshots web-vendor test check lint format types imports proto proto-lint proto-breaking proto-check unit bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --silent
	@touch $@

setup: $(VENV)/.installed node_modules/.installed ## create .venv and install everything (Python + buf)

demo: $(VENV)/.installed ## start server, scheduler and simulated stations on SQLite and show them working
	$(VENV)/bin/skymesh demo

observe: $(VENV)/.installed ## the demo plus a real Prometheus (Debian package) scraping it with SkyMesh's rules; prints its URL
	./scripts/observe.sh

screenshots: setup ## photograph every dashboard page in Chromium (a real small system) into docs/screenshots/
	$(PY) scripts/screenshots.py --out docs/screenshots

web-vendor: ## refresh the dashboard's vendored browser libraries from web/package.json (needs npm)
	cd web && npm ci --no-audit --no-fund --silent
	./scripts/vendor_web.sh

test: setup check unit ## everything CI runs: checks, then the test suite

check: lint types imports proto-check ## static checks only

lint: setup ## ruff lint + format check
	ruff check skymesh tests benchmarks scripts
	ruff format --check skymesh tests benchmarks scripts

format: setup ## apply ruff formatting and fixes
	ruff format skymesh tests benchmarks scripts
	ruff check --fix skymesh tests benchmarks scripts

types: setup ## mypy --strict on skymesh/
	mypy

imports: setup ## import-linter: services never import each other; core/astro stay free of wire/db code
	lint-imports

proto: setup ## regenerate skymesh/api from proto/
	./scripts/gen_proto.sh

proto-lint: setup ## buf lint (STANDARD)
	buf lint

proto-breaking: setup ## buf breaking (FILE) against the released contract image proto/released.binpb
	buf breaking --against proto/released.binpb

proto-release: setup ## record the current contracts as released (breaking checks compare against this)
	buf build -o proto/released.binpb

proto-check: proto-lint proto-breaking ## lint, breaking check, and fail if regenerated code differs from the commit
	./scripts/gen_proto.sh >/dev/null
	@git diff --exit-code --stat -- skymesh/api || (echo "generated code is stale: run 'make proto' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- skymesh/api)" || (echo "untracked generated files: run 'make proto' and commit" >&2; exit 1)

unit: setup ## the test suite (real gRPC, SQLite and PostgreSQL, rotctld, indiserver)
	pytest -q

bench: setup ## benchmarks (minutes); results land in benchmarks/results/
	$(PY) benchmarks/visibility.py
	$(PY) benchmarks/planning.py
	$(PY) benchmarks/sim.py
	$(PY) benchmarks/alerts.py --out benchmarks/results/alerts.md

clean: ## remove caches and local state
	rm -rf .pytest_cache .mypy_cache .ruff_cache var
