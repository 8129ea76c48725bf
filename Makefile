# flask-taches: the two commands of the README's quick start, and the tools around them.
#
#   make demo   virtualenv + sample app on SQLite: web server and manager, Ctrl-C stops both
#   make test   virtualenv + Chromium + PostgreSQL/MariaDB up, then the whole test suite
#   make lint   ruff check, ruff format --check, mypy
#   make bench  flask-taches beside RQ, Celery, Huey, Procrastinate, with the machine's limits
#               (make bench-quick: a few minutes; make bench-manager: the manager's own figures)
#
# Each target creates or updates .venv itself; it reinstalls only when the packaging
# files change (a stamp file records the last install).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.flask-taches-installed
FLASK := $(BIN)/flask --app sample_app
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=
# Two workers (pytest-xdist): most tests wait on processes and servers, so two
# share the 2 cores well; the fault tier and the browser tests keep a worker
# each to themselves at a time (tests/conftest.py). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
BENCH_ARGS ?=

# How long to wait for a database server that was just started, in half seconds.
SERVER_WAIT := 120
POSTGRES_HOST := 127.0.0.1
POSTGRES_PORT := 5432
MARIADB_HOST := 127.0.0.1
MARIADB_PORT := 3306

.PHONY: help venv demo test lint format bench bench-quick bench-manager browser services \
	readme-settings clean

help:
	@echo "make demo    run the sample app on http://$(HOST):$(PORT)/ with a manager (Ctrl-C stops)"
	@echo "make test    run the test suite (SQLite, PostgreSQL, MariaDB, headless Chromium)"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make bench   flask-taches beside its peers (make bench-quick: a few minutes)"

# -- the virtual environment ---------------------------------------------------------

$(STAMP): pyproject.toml
	@echo "make: installing flask-taches[dev] into $(VENV) (packaging files changed)"
	if [ ! -x "$(BIN)/python" ]; then $(PYTHON) -m venv "$(VENV)"; fi
	"$(BIN)/python" -m pip install --quiet --upgrade pip
	"$(BIN)/python" -m pip install --quiet --editable '.[dev]'
	touch "$@"

venv: $(STAMP)

# -- the demo --------------------------------------------------------------------------

# The web server and the manager run side by side. A shell that is not interactive
# starts its background jobs with SIGINT ignored, so Ctrl-C alone would leave them
# running: the trap passes the stop on to both as SIGTERM (the manager drains, then
# exits) and waits for them.
demo: $(STAMP)
	@$(FLASK) taches init-db
	echo "flask-taches demo on http://$(HOST):$(PORT)/ (Ctrl-C stops the server and the manager)"
	pids=()
	stop() { trap - INT TERM; kill -TERM "$${pids[@]}" 2>/dev/null || true; wait; }
	trap stop INT TERM
	$(FLASK) taches start --forever -v & pids+=($$!)
	$(FLASK) run --host "$(HOST)" --port "$(PORT)" & pids+=($$!)
	# Whichever stops first (Ctrl-C, or a crash) stops the other one too.
	wait -n || true
	stop

# -- the tests -------------------------------------------------------------------------

# pytest's exit code 5 means it collected no test at all: that is a failure here.
test: $(STAMP) browser services
	@rc=0
	"$(BIN)/python" -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS) || rc=$$?
	if [ "$$rc" -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi
	exit "$$rc"

# Debian's Chromium and its driver, for the browser tests (root only: others are told).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
	if [ "$$(id -u)" -ne 0 ]; then
		echo "make test: chromium and chromium-driver are missing; as root:" \
			"apt-get install chromium chromium-driver (browser tests skip, or fail in CI)" >&2
		exit 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends chromium chromium-driver

# PostgreSQL and MariaDB on 127.0.0.1, started when they do not answer. On a machine
# without them the database tests skip (or fail in CI, where CI is set).
services:
	@wait_for() {  # name, probe command...
		local name="$$1"; shift
		for _ in $$(seq $(SERVER_WAIT)); do "$$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
		echo "make test: $$name does not answer" >&2; return 1
	}
	if command -v pg_isready >/dev/null; then
		probe=(pg_isready -q -h $(POSTGRES_HOST) -p $(POSTGRES_PORT))
		if ! "$${probe[@]}" && command -v pg_ctlcluster >/dev/null; then
			echo "make test: starting PostgreSQL"
			pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql | tail -n 1)" main start
		fi
		wait_for PostgreSQL "$${probe[@]}"
	else
		echo "make test: no PostgreSQL client here (pg_isready): PostgreSQL tests skip" >&2
	fi
	if command -v mariadb-admin >/dev/null; then
		probe=(mariadb-admin --protocol=tcp -h $(MARIADB_HOST) -P $(MARIADB_PORT) -u root ping)
		if ! "$${probe[@]}" >/dev/null 2>&1 && [ -x /usr/sbin/mariadbd ]; then
			echo "make test: starting MariaDB"
			start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
		fi
		wait_for MariaDB "$${probe[@]}"
	else
		echo "make test: no MariaDB client here (mariadb-admin): MariaDB tests skip" >&2
	fi

# -- tools -----------------------------------------------------------------------------

lint: $(STAMP)
	@rc=0
	"$(BIN)/ruff" check . || rc=1
	"$(BIN)/ruff" format --check . || rc=1
	"$(BIN)/mypy" || rc=1
	exit "$$rc"

# The side-by-side run (needs Redis on 127.0.0.1:6379 and PostgreSQL); its peers go into
# bench/.peers-venv, never into the project's virtualenv (BENCH_ARGS="--repeats 5").
bench: $(STAMP) services
	@"$(BIN)/python" bench/side_by_side.py $(BENCH_ARGS)

bench-quick: $(STAMP) services
	@"$(BIN)/python" bench/side_by_side.py --quick $(BENCH_ARGS)

# The manager's own figures beside their limits (BENCH_ARGS="--tasks 300 --no-postgres").
bench-manager: $(STAMP) services
	@"$(BIN)/python" bench/run.py $(BENCH_ARGS)

# Rewrites the settings table of README.md from flask_taches.config.SETTINGS.
readme-settings: $(STAMP)
	"$(BIN)/python" -m tests.unit.test_readme --write

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache test-artifacts
