# The README's commands: `make up` starts the platform, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
BENCH_SECONDS ?= 20

.PHONY: up test bench lint lock install clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.txt
	touch $@

install: $(VENV)/.installed

up: install
	$(PY) -m deploy.launcher

# The checks first: they take seconds, the tests minutes.
lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

bench: install
	BENCH_SECONDS=$(BENCH_SECONDS) $(PY) -m bench

lock: install
	$(VENV)/bin/uv pip compile --python-version 3.11 requirements.in -o requirements.txt --no-header --no-annotate

clean:
	rm -rf $(VENV) .modelplane
