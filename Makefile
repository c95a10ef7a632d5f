# The two commands a newcomer runs: `make demo` and `make test`.
# Each sets up its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.py
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e .[dev]
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) output .pytest_cache
