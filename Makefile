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

.PHONY: run test bench bench-smoke venv browser lock clean-data

run: venv
	$(VENV)/bin/python -m hocvu.devstack run

test: venv browser
	$(VENV)/bin/python -m hocvu.devstack ensure-broker
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The benchmark (docs/performance.md): BENCH_ARGS="--scale 0.1 --stage-seconds 30" and so on.
BENCH_ARGS ?=
bench: venv
	$(VENV)/bin/python -m hocvu.bench $(BENCH_ARGS)

bench-smoke: venv
	$(VENV)/bin/python -m hocvu.bench --preset smoke $(BENCH_ARGS)

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

# Rebuilt when .venv is missing or a lock file is newer than the stamp.
$(STAMP): requirements/runtime.lock requirements/dev.lock
	$(need_python)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Regenerate the lock files from requirements/*.in in a throwaway environment; dev.in is
# constrained by the new runtime.lock, and both replace the old ones only if all went well.
lock:
	$(need_python)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp requirements/*.in "$$tmp"/; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install --quiet --disable-pip-version-check -r "$$tmp/runtime.in"; \
	"$$tmp/venv/bin/pip" freeze --all --exclude pip > "$$tmp/runtime.lock"; \
	"$$tmp/venv/bin/pip" install --quiet --disable-pip-version-check -r "$$tmp/dev.in"; \
	"$$tmp/venv/bin/pip" freeze --all --exclude pip > "$$tmp/dev.lock"; \
	mv "$$tmp/runtime.lock" "$$tmp/dev.lock" requirements/; \
	echo "requirements/runtime.lock and requirements/dev.lock regenerated"

# Every learner, certificate and message of `make run` is in $(VAR)/store.
clean-data:
	@if [ -e $(VAR)/run/devstack.json ]; then \
		echo "make run seems to be going ($(VAR)/run/devstack.json exists): stop it first" \
			"(if it was killed, the next make run cleans up after it)"; exit 1; fi
	@read -r -p "Delete every learner, certificate and message in $(VAR)/store? [y/N] " answer; \
	if [ "$$answer" = y ]; then rm -rf $(VAR)/store && echo deleted; else echo kept; fi
