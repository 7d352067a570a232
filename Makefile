# hyperlax developer entry points. Each target creates the virtual environment if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast demo bench schemas golden clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

demo: $(STAMP)
	$(BIN)/hyperlax plan specs/quickstart.toml -o runs/quickstart.plan.msgpack
	$(BIN)/hyperlax exec runs/quickstart.plan.msgpack
	$(BIN)/hyperlax report runs/quickstart.plan.msgpack --top 8

schemas: $(STAMP)
	$(BIN)/python tools/gen_schemas.py

golden: $(STAMP)
	$(BIN)/python tools/update_golden.py

clean:
	rm -rf $(VENV) runs .pytest_cache
