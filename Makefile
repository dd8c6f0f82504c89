# Every target sets up what it needs, so a fresh clone runs `make run` or `make test` directly.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Two stamps, so serving the dashboard never pulls in the dev tools (pytest, Playwright,
# mypy, ruff...) and a change to pyproject.toml reinstalls each set when it is next needed.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint typecheck bench setup browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime dependencies only: what `make run` serves with.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# Runtime and dev dependencies: what the tests, linters, type checker and benchmarks use.
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

## setup: the venv with the dev tools, for working on the project
setup: $(DEV_STAMP)

## run: set everything up and serve the dashboard on http://127.0.0.1:8000 (SQLite + diskcache)
run: $(RUN_STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver 127.0.0.1:8000

# The suites that write through the ORM and raw SQL run again on a real PostgreSQL.
POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/cachesite
POSTGRES_SUITES := tests/recording tests/services tests/views tests/selectors tests/management \
	tests/test_extraction.py tests/caching/test_recorded_calls.py

## test: set everything up and run the whole test suite (needs redis-server, chromium, postgres)
test: $(DEV_STAMP) browser
	$(BIN)/python -m pytest
	DATABASE_URL=$(POSTGRES_TEST_URL) $(BIN)/python -m pytest -p no:cacheprovider $(POSTGRES_SUITES)

## browser: Debian's Chromium for the Playwright tests
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy cachesite extractor benchmarks

## bench: time the hit path against the recipe and Instructor's own cache
bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/hit_path.py

clean:
	rm -rf $(VENV) .data staticfiles
