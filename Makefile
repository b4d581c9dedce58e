# make run | make test | make lint | make fmt | make bench | make db-stop
# With no DATABASE_URL, run and test use the embedded PostgreSQL in var/pgdata (sandboxes/embedded_db.py).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# axe-core (accessibility checks in the browser tests), from the npm registry, pinned
AXE_VERSION := 4.14.1
AXE := var/npm/axe-core-$(AXE_VERSION)/node_modules/axe-core/axe.min.js
PYTEST_ARGS ?=
LINT_PATHS := protocol adapters sandboxes server sync models services pda_client fleet printing tests bench

.PHONY: venv run test lint fmt bench db-stop

venv: $(STAMP)

# re-install only when requirements.txt is newer than the last install
$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@# the project on the venv's path (no packaging step) and the device CLI as `pda`
	@echo "$(CURDIR)" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/jingsu.pth
	@printf '#!/bin/sh\nexec "$(CURDIR)/$(PY)" -m pda_client "$$@"\n' > $(VENV)/bin/pda && chmod +x $(VENV)/bin/pda
	@touch $(STAMP)

run: venv
	$(PY) -m sandboxes.devrun

$(AXE):
	npm install --silent --no-audit --no-fund --no-save --prefix var/npm/axe-core-$(AXE_VERSION) axe-core@$(AXE_VERSION)

test: venv $(AXE)
	@$(MAKE) --no-print-directory lint
	@if [ -z "$${DATABASE_URL:-}" ]; then \
		DATABASE_URL="$$($(PY) -m sandboxes.embedded_db url)" || exit 1; \
		export DATABASE_URL; \
		echo "DATABASE_URL unset: using the embedded PostgreSQL at $$DATABASE_URL"; \
	fi; \
	JINGSU_AXE_JS="$(CURDIR)/$(AXE)" $(PY) -m pytest -q $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy protocol adapters sandboxes server sync models services printing pda_client fleet

# rewrite in place: ruff format, then the fixable lint findings (import order, pyupgrade)
fmt: venv
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

bench: venv
	$(PY) -m bench

db-stop: venv
	$(PY) -m sandboxes.embedded_db stop
