# EmbedTune: `make demo` and `make test` are the two set-up commands (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU torch wheel first, so that no dependency pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	# tests/ui drive the distribution's Chromium; without one, Playwright fetches its own.
	[ -x "$${EMBEDTUNE_CHROMIUM:-/usr/bin/chromium}" ] || timeout 600 $(VENV)/bin/playwright install chromium \
	  || echo "no Chromium for tests/ui: apt-get install chromium" >&2
	touch $@

install: $(VENV)/.installed

# Starts API + worker (SQLite, filesystem broker, ./var/demo) and drives the HTTP API:
# upload the SciFact sample, eval -> mine -> finetune -> eval, print before/after.
# Logs go to var/demo/logs/; `make demo DEMO_ARGS=--keep-running` leaves the dashboard up.
demo: install
	$(PY) scripts/demo.py $(DEMO_ARGS)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: install
	$(PY) bench/eval.py

clean:
	rm -rf var .pytest_cache
