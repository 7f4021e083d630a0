# Two set-up commands for a fresh machine: `make quickstart` and `make test`.
# Both create .venv if it is missing and install the pinned, known-good versions.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: quickstart test lint bench clean-venv

$(STAMP): requirements/pinned.txt requirements/pinned-no-deps.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/pinned.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements/pinned-no-deps.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/text4seg quickstart --out runs/quickstart

test: $(STAMP)
	$(BIN)/ruff check text4seg data_builders tests benchmarks
	$(BIN)/python -m pytest -q -m "slow or not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check text4seg data_builders tests benchmarks

clean-venv:
	rm -rf $(VENV)
