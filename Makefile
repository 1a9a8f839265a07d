# One command for each habit; `make help` lists them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run test test-deps test-fast lint format schemas dashboards bench \
	bench-quick clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its test tools

# The project's own modules compiled ahead: where Python is told not to write bytecode
# (PYTHONDONTWRITEBYTECODE), every start would compile them again, about 0.3 s of each CLI
# command and server the tests start. Up-to-date files are skipped; it takes under a second.
BYTECODE = $(BIN)/python -m compileall -q monitor bench tests

run: $(STAMP) ## run the server with demo data on the embedded SQLite database
	@$(BYTECODE)
	$(BIN)/sla-monitor serve --demo

# The dashboard type check's node packages, installed when npm is present (else those
# tests skip on a workstation and fail in CI).
NODE_STAMP := dashboards/schema-check/node_modules/.installed

$(NODE_STAMP): dashboards/schema-check/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd dashboards/schema-check && npm ci --no-audit --no-fund --loglevel=error && \
		touch node_modules/.installed; \
	else \
		echo "npm not found: the dashboard type check will be skipped (CI installs it)"; \
	fi

test-deps: $(STAMP) $(NODE_STAMP) ## install every test dependency the machine can (venv, npm packages)

test: test-deps ## run the whole test suite (SQLite and PostgreSQL); installs its dependencies first
	@$(BYTECODE)
	$(BIN)/pytest

FAST := tests/sla tests/calendars tests/scoring tests/breaches tests/tickets tests/judging \
	tests/reports tests/test_architecture.py

test-fast: $(STAMP) ## the pure core and the services on SQLite, no subprocesses (seconds)
	$(BIN)/pytest $(FAST) -m "not slow" -k "not postgresql" --ignore-glob="*test_router.py"

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench-quick: $(STAMP) ## benchmarks at small sizes (under 3 minutes); see "Benchmarks" in README.md
	@$(BYTECODE)
	$(BIN)/python -m bench.run --quick

bench: $(STAMP) ## benchmarks at full size (1 M tickets; hours), then detection latency and /metrics
	@$(BYTECODE)
	$(BIN)/python -m bench.run
	$(BIN)/python bench/detection_latency.py
	$(BIN)/python bench/metrics_scrape.py
	@if [ -n "$$SLAMON_BENCH_POSTGRES_URL" ]; then \
	  $(BIN)/python bench/detection_latency.py --database "$$SLAMON_BENCH_POSTGRES_URL" && \
	  $(BIN)/python bench/metrics_scrape.py --database "$$SLAMON_BENCH_POSTGRES_URL"; fi

schemas: $(STAMP) ## regenerate the JSON Schemas in schemas/ from the models
	$(BIN)/python -m monitor.schemas_export

dashboards: $(STAMP) ## regenerate the Grafana dashboards in dashboards/
	$(BIN)/python -m monitor.metrics.dashboards

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) var
