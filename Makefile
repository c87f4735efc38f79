# Two commands on a fresh machine: `make run` and `make test`.
# Both create .venv with Python >= 3.12 and install the pinned requirements first.

SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.12 python3.13 python3.14 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed-requirements

.PHONY: run test test-sqlite test-postgresql postgresql redis haproxy bench screenshots chromium install migrate lint format clean

$(PY):
	@test -n "$(PYTHON)" || { echo "Python >= 3.12 is required; set PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

install: $(INSTALLED)

migrate: install
	$(PY) run_admin.py migrate

# The admin (127.0.0.1:5000) and the data plane (127.0.0.1:8080) together;
# Ctrl-C, or either one exiting, stops both.
# Options go through as they are, e.g.
#   make run PROXY_ARGS="--set portcullis_allow_targets=10.0.0.0/8"  (run_proxy.py, mitmdump)
#   make run ADMIN_ARGS="--port 5001"                                (run_admin.py serve)
# The trap is cleared before `kill 0`, which signals this shell too: otherwise the
# trap would catch its own TERM and signal everyone again, over and over.
# `make run WORKERS=N` (N > 1): N data-plane workers on 127.0.0.1:WORKER_PORT_BASE.. behind
# HAProxy on 127.0.0.1:PROXY_PORT (config from deploy/haproxy.cfg.template, written to
# var/haproxy.cfg; its status page on 127.0.0.1:STATS_PORT), run by tools/run_gateway.py:
# a dead worker is restarted while the others take its traffic; Ctrl-C stops everything.
# Prometheus metrics of each worker: METRICS_PORT_BASE=9101 puts worker n's on 127.0.0.1:9100+n
# (0: off); with one process, PROXY_ARGS="--set portcullis_metrics_port=9101".
PROXY_ARGS ?=
ADMIN_ARGS ?=
WORKERS ?= 1
PROXY_PORT ?= 8080
ADMIN_PORT ?= 5000
WORKER_PORT_BASE ?= 8081
STATS_PORT ?= 8404
METRICS_PORT_BASE ?= 0
run: export PORTCULLIS_RUN_PROXY_ARGS = $(PROXY_ARGS)
run: export PORTCULLIS_RUN_ADMIN_ARGS = $(ADMIN_ARGS)
run: migrate $(if $(filter-out 1,$(WORKERS)),haproxy)
ifeq ($(WORKERS),1)
	@stop() { trap - INT TERM; kill 0; }; trap stop INT TERM; \
	$(PY) run_admin.py serve --no-migrate --port $(ADMIN_PORT) $(ADMIN_ARGS) & \
	$(PY) run_proxy.py --port $(PROXY_PORT) $(PROXY_ARGS) & \
	wait -n; stop
else
	$(PY) tools/run_gateway.py --workers $(WORKERS) --proxy-port $(PROXY_PORT) \
	  --admin-port $(ADMIN_PORT) --worker-port-base $(WORKER_PORT_BASE) --stats-port $(STATS_PORT) \
	  --metrics-port-base $(METRICS_PORT_BASE)
endif

# HAProxy, the balancer of `make run WORKERS=N` and of its test.
haproxy:
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { \
	  echo "Installing Debian's haproxy for make run WORKERS=N"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q haproxy >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q haproxy >/dev/null; }; }

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The whole suite twice: on SQLite, then on a throwaway PostgreSQL server (tests/stores.py);
# fails if either fails and prints both counts. One store: `make test-sqlite` / `test-postgresql`.
test: lint chromium postgresql redis haproxy
	PY=$(PY) tools/test_both_stores.sh

test-sqlite: install chromium redis haproxy
	PORTCULLIS_TEST_STORE=sqlite $(PY) -m pytest

test-postgresql: install chromium postgresql redis haproxy
	PORTCULLIS_TEST_STORE=postgresql $(PY) -m pytest

# The browser tests drive Debian's Chromium (Playwright's own download does not run here).
chromium:
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q chromium >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }

# The PostgreSQL server binaries (initdb, pg_ctl, pg_dump) the tests on PostgreSQL start.
postgresql:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "Installing Debian's postgresql for the tests on PostgreSQL"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q postgresql >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }; }

# The redis-server the tests of Redis-backed counters start (PORTCULLIS_REDIS_URL).
redis:
	@command -v redis-server >/dev/null || { echo "Installing Debian's redis-server for the tests of shared counters"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q redis-server >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }; }

# Not part of `make test`: prints what Portcullis costs on top of bare mitmdump (about 8 minutes).
bench: install
	$(PY) bench/run.py

# A PNG of every page of the web admin, with example data, in var/screenshots/.
screenshots: install chromium
	$(PY) tools/screenshots.py

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
