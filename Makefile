# `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INI ?= development.ini
STAMP := $(VENV)/.installed

.PHONY: run test lint initdb clean bench bench-reads

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python setup.py
	$(BIN)/pip install --quiet --upgrade pip "setuptools<81" wheel
	$(BIN)/pip install --quiet -e ".[testing]"
	touch $(STAMP)

initdb: $(STAMP)
	$(BIN)/initialize_ticketing_db $(INI)

# The job worker runs beside the server and stops with it.
run: initdb
	$(BIN)/ticketing_worker $(INI) & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/pserve $(INI)

# newman (tests/test_postman.py runs the Postman collection with it) from the npm registry.
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# Headless Chromium renders /api/docs in tests/test_docs_page.py: installed here when missing and
# apt-get can (.ci/run requires it; elsewhere the test skips, saying so).
test: $(STAMP) $(NODE_STAMP)
	@command -v chromium >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium could not be installed: tests/test_docs_page.py will skip"
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# Benchmarks (bench/, not part of the tests): gunicorn on PostgreSQL as in production, wrk as the
# load generator (Debian's wrk package, installed here when missing), pgbench from PostgreSQL.
# Results go to bench/results/. Override e.g. `make bench C=32 T=2000 BENCH_ARGS=--no-pgbench`.
C ?= 64
T ?= 5000
SLOW_MS ?= 200
SPREAD_EVENTS ?= 100
BENCH_ARGS ?=
READS_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[testing,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python bench/flash_sale.py -c $(C) -t $(T) --slow-ms $(SLOW_MS) \
		--spread-events $(SPREAD_EVENTS) $(BENCH_ARGS)

bench-reads: $(BENCH_STAMP)
	$(BIN)/python bench/reads.py $(READS_ARGS)

clean:
	rm -rf $(VENV) node_modules *.egg-info .pytest_cache ticketing.sqlite huey.sqlite payments-mock.sqlite*
