# The two commands of the README: `make run` and `make test`. Everything else is a helper.
# They must work on a fresh Debian machine with nobody at the keyboard (CI): every apt-get is
# non-interactive, and nothing reads standard input except `make clean-data`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
VAR := $(or $(HOCVU_VAR_DIR),var)
PYTEST_ARGS ?=
# root needs no sudo; -n: fail rather than wait for a password nobody types
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: run stop test test-cluster audit bench bench-smoke venv browser lock clean-data

run: venv
	$(VENV)/bin/python -m hocvu_tools.devstack run

# Stops a running `make run` from another terminal or a script, as Ctrl-C does. (`kill` of
# make's own PID works for SIGTERM, which make passes on; not for SIGINT, which make does
# not pass on, and which a shell's background job ignores anyway.)
stop:
	@$(VENV)/bin/python -m hocvu_tools.devstack stop

# The whole suite runs in two pytest processes side by side: the tests that start whole
# platforms (faults, e2e, bench, browser) in one, the rest in the other, and one closing
# line adds them up (hocvu_tools/testrun.py). PYTEST_ARGS runs one pytest with them.
test: venv browser
	$(VENV)/bin/python -m hocvu_tools.devstack ensure-broker
	$(VENV)/bin/python -m hocvu_tools.testrun $(PYTEST_ARGS)

# A 3-node RabbitMQ cluster of the tests' own loses a node under load (marker `cluster`,
# 5 to 6 minutes on 2 cores): not in `make test`'s default selection (tests/conftest.py).
# ensure-broker installs Debian's rabbitmq-server when missing, whose nodes the test starts.
test-cluster: venv
	$(VENV)/bin/python -m hocvu_tools.devstack ensure-broker
	$(VENV)/bin/pytest -m cluster $(PYTEST_ARGS)

# The benchmark (docs/performance.md): BENCH_ARGS="--scale 0.1 --stage-seconds 30" and so on.
BENCH_ARGS ?=
# Every locked package against the advisories PyPI publishes (pip-audit's default source; it
# needs PyPI's JSON API, so it is not part of the offline `make test`; AUDIT_ARGS="-s osv"
# asks the OSV database instead). --strict: a package it could not look up fails the audit
# instead of passing unseen.
AUDIT_ARGS ?=
audit: venv
	$(VENV)/bin/pip-audit --strict --disable-pip --require-hashes $(AUDIT_ARGS) -r requirements/dev.lock

bench: venv
	$(VENV)/bin/python -m hocvu_tools.bench $(BENCH_ARGS)

bench-smoke: venv
	$(VENV)/bin/python -m hocvu_tools.bench --preset smoke $(BENCH_ARGS)

venv: $(STAMP)

# The browser tests (marker `browser`) drive Debian's chromium through Playwright; Playwright's
# own browser downloads are not used.
browser:
	@command -v chromium >/dev/null || { echo "installing chromium from Debian's packages"; \
		$(APT_GET) update -qq </dev/null && $(APT_GET) install -y -qq chromium </dev/null; }

# Python 3.11 or newer with venv support (Debian ships that as python3-venv).
define need_python
	@command -v $(PYTHON) >/dev/null || { echo "installing python3 from Debian's packages"; \
		$(APT_GET) update -qq </dev/null && $(APT_GET) install -y -qq python3 python3-venv </dev/null; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"hocvu needs Python 3.11 or newer, $(PYTHON) is " + sys.version.split()[0] + \
		"; name another with PYTHON=python3.11")'
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "installing python3-venv from Debian's packages"; \
		$(APT_GET) update -qq </dev/null && $(APT_GET) install -y -qq python3-venv </dev/null; }
endef

# Rebuilt when .venv is missing or a lock file is newer than the stamp. Every file pip
# downloads must match a hash in the lock (--require-hashes), dependencies included.
$(STAMP): requirements/runtime.lock requirements/dev.lock
	$(need_python)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Lock requirements/*.in with pip-compile (pip-tools, in a throwaway environment): every
# package pinned with the hashes of its files. The present pins are kept unless an .in file
# asks otherwise; LOCK_ARGS=--upgrade moves everything to the newest allowed version, and
# LOCK_ARGS="--upgrade-package NAME" one package. dev.lock includes the runtime's packages at
# runtime.lock's versions; both replace the old ones only if all went well.
LOCK_ARGS ?=
# dev.lock keeps the extras its packages ask for (pip-audit's CacheControl[filecache]): stripped,
# pip --require-hashes refuses the install as soon as PyPI has a newer release of such a package
# (cachecontrol 0.15.0 did that on 2026-12-07). runtime.lock is stripped: dev.in reads it as a
# constraints file, which may not name extras.
PIP_COMPILE_FLAGS := --quiet --generate-hashes --allow-unsafe --no-header \
	--no-emit-index-url --no-emit-find-links
lock:
	$(need_python)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp requirements/*.in requirements/*.lock "$$tmp"/; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install --quiet --disable-pip-version-check pip-tools; \
	cd "$$tmp"; \
	for name in runtime dev; do \
		extras=--strip-extras; [ $$name = dev ] && extras=--no-strip-extras; \
		venv/bin/pip-compile $(PIP_COMPILE_FLAGS) $$extras $(LOCK_ARGS) -o $$name.lock $$name.in; \
		{ echo "# Written by make lock from requirements/$$name.in; installed with --require-hashes."; \
		  cat $$name.lock; } > $$name.locked; \
	done; \
	cd - >/dev/null; \
	mv "$$tmp/runtime.locked" requirements/runtime.lock; mv "$$tmp/dev.locked" requirements/dev.lock; \
	echo "requirements/runtime.lock and requirements/dev.lock written"

# Every learner, certificate and message of `make run` is in $(VAR)/stores (a store per
# service; $(VAR)/store is where releases before kept one for all).
clean-data:
	@if [ -e $(VAR)/run/devstack.json ]; then \
		echo "make run seems to be going ($(VAR)/run/devstack.json exists): stop it first" \
			"(if it was killed, the next make run cleans up after it)"; exit 1; fi
	@read -r -p "Delete every learner, certificate and message in $(VAR)/stores? [y/N] " answer; \
	if [ "$$answer" = y ]; then rm -rf $(VAR)/stores $(VAR)/store && echo deleted; else echo kept; fi
