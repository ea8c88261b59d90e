# The README's two commands. `make run`: install and start locally; `make test`: install
# and run every test. Both work from a fresh clone (Python 3.11+ and PostgreSQL for tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'

run: install
	$(BIN)/glam trace --text "GLaM routes every token to two of its experts."

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/forward.py
