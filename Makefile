# Every target sets up what it needs, so a fresh clone runs `make run` or `make test` directly.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Two stamps, so serving the dashboard never pulls in the dev tools (pytest, Playwright,
# mypy, ruff...) and a change to pyproject.toml reinstalls each set when it is next needed.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run serve test lint typecheck bench mutate mutate-show mutate-changed setup browser clean

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

## run: set everything up and serve the dashboard on http://127.0.0.1:8000 (SQLite + diskcache),
## with the background worker that runs invalidations beside it (stopped with the server)
run: $(RUN_STAMP)
	$(BIN)/python manage.py migrate --noinput
	@# The worker is started again if it stops: on SQLite it exits when another write holds
	@# the database longer than the lock timeout.
	( trap 'kill $$pid 2>/dev/null; exit' INT TERM; \
	  while :; do $(BIN)/python manage.py db_worker --no-reload & pid=$$!; wait $$pid; sleep 2; done \
	) & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/python manage.py runserver 127.0.0.1:8000

# Development runs with DEBUG on: plain http on 127.0.0.1, tracebacks, the development key.
run: export DJANGO_DEBUG ?= 1

## serve: production: gunicorn with DEBUG off (WEB_CONCURRENCY processes x GUNICORN_THREADS
## threads on GUNICORN_BIND, default 127.0.0.1:8000); needs DJANGO_SECRET_KEY. README
## "Deploying for a team" has the rest.
serve: export DJANGO_DEBUG := 0
serve: $(RUN_STAMP)
	@# Loads the config and the app: a development secret key stops here, before any write.
	$(BIN)/gunicorn --check-config --config cachesite/gunicorn.conf.py cachesite.wsgi
	$(BIN)/python manage.py check --deploy
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py migrate --noinput
	exec $(BIN)/gunicorn --config cachesite/gunicorn.conf.py cachesite.wsgi

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

# Mutation testing (README "Mutation testing"), one module at a time: a run over all of
# caching/ and recording/ takes hours on 2 cores. Empty PATHS and TESTS keep pyproject's
# [tool.mutmut] defaults; PATHS are globs of files to mutate, TESTS the pytest files to run.
PATHS ?=
TESTS ?=
# mutmut 3 reads its settings only from pyproject.toml, once, at import: PATHS and TESTS
# replace two of them in the process before its command line runs.
MUTMUT = $(BIN)/python -c 'import sys; from mutmut.configuration import config; \
	c = config(); c.only_mutate = sys.argv[1].split() or c.only_mutate; \
	c.pytest_add_cli_args_test_selection = sys.argv[2].split() or c.pytest_add_cli_args_test_selection; \
	from mutmut.__main__ import cli; cli(sys.argv[3:])' "$(PATHS)" "$(TESTS)"

## mutate: mutation-test PATHS against TESTS with mutmut (e.g. `make mutate
## PATHS=extractor/recording/rollups.py TESTS=tests/recording/test_rollups.py`); prints the
## score and the surviving mutants. Not part of .ci/run.
mutate: $(DEV_STAMP)
	@# mutmut keeps a mutant's result until its function changes, even when TESTS changed.
	rm -rf mutants
	$(MUTMUT) run --max-children 2
	@$(MUTMUT) export-cicd-stats >/dev/null
	@$(BIN)/python -c 'import json; s = json.load(open("mutants/mutmut-cicd-stats.json")); \
	caught, total = s["killed"] + s["timeout"], s["total"]; \
	print(f"\nscore: {caught}/{total} mutants caught ({100 * caught // max(total, 1)}%);", \
	      s["survived"], "survived,", s["no_tests"], "reached by no test in TESTS")'
	@echo "surviving and untested mutants (\`make mutate-show PATHS=... NAME=...\` prints one's diff):"
	@$(MUTMUT) results

mutate-show:
	@$(MUTMUT) show "$(NAME)"

# The habit: before merging, mutate what the branch changed. Each changed file's tests are
# its room under tests/ (extractor/caching/backends/redis.py -> tests/caching).
BASE ?= main
CHANGED = git diff --name-only --diff-filter=d $(BASE) -- \
	'extractor/caching/*.py' 'extractor/recording/*.py' 'extractor/services/*.py'

## mutate-changed: mutation-test the library, recorder and services files changed since
## BASE (default main, uncommitted changes included), each against its tests' folder.
mutate-changed:
	@paths="$$($(CHANGED) | tr '\n' ' ')"; \
	if [ -z "$$paths" ]; then echo "nothing under caching/, recording/ or services/ changed since $(BASE)"; exit 0; fi; \
	tests="$$(for p in $$paths; do echo "$$p" | sed -E 's#^extractor/([a-z_]+)/.*#tests/\1#'; done | sort -u | tr '\n' ' ')"; \
	echo "mutating $$paths against $$tests"; \
	$(MAKE) --no-print-directory mutate PATHS="$$paths" TESTS="$$tests"

clean:
	rm -rf $(VENV) .data staticfiles
