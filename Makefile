# The README's two commands. `make run`: install and start locally; `make test`: install
# and run every test. Both work from a fresh clone (Python 3.11+ and PostgreSQL for tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run trace test lint bench reliability

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'

# Local stack on an embedded SQLite file (data/glam.sqlite): migrate, serve the API on :8000
# and the dashboard on :8501. The first start analyses the built-in corpus. Ctrl-C stops both.
run: install
	$(BIN)/glamlab db upgrade
	@echo "API: http://127.0.0.1:8000/docs   Dashboard: http://127.0.0.1:8501"
	$(BIN)/glamlab serve --port 8000 & API=$$!; trap 'kill $$API' EXIT INT TERM; \
	GLAMLAB_API_URL=http://127.0.0.1:8000 $(BIN)/glamlab ui --port 8501

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest

trace: install
	$(BIN)/glam trace --text "GLaM routes every token to two of its experts."

# The reliability suite alone (also part of `make test`), then its figures into the doc.
reliability: install
	$(BIN)/python -m pytest tests/reliability
	$(BIN)/python -m tests.reliability.report

bench: install
	$(BIN)/python bench/forward.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/generate.py
	$(BIN)/python -m bench.jobs
