# The two commands of the README: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test venv lock clean-data

run: venv
	$(VENV)/bin/python -m hocvu.devstack run

test: venv
	$(VENV)/bin/python -m hocvu.devstack ensure-broker
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

# Rebuilt whenever a lock file changes. Debian ships venv support as a separate package.
$(STAMP): requirements/runtime.lock requirements/dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hocvu needs Python 3.11 or newer; set PYTHON=python3.11")'
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
		echo "installing python3-venv from Debian's packages"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-venv; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Regenerate the lock files from requirements/*.in in throwaway environments.
lock:
	rm -rf /tmp/hocvu-lock && $(PYTHON) -m venv /tmp/hocvu-lock
	/tmp/hocvu-lock/bin/pip install --quiet -r requirements/runtime.in
	/tmp/hocvu-lock/bin/pip freeze --all --exclude pip > requirements/runtime.lock
	/tmp/hocvu-lock/bin/pip install --quiet -r requirements/dev.in
	/tmp/hocvu-lock/bin/pip freeze --all --exclude pip --exclude hocvu > requirements/dev.lock
	rm -rf /tmp/hocvu-lock

clean-data:
	@read -r -p "Delete every learner, certificate and message in var/store? [y/N] " answer; \
	[ "$$answer" = y ] && rm -rf var/store && echo deleted || echo kept
