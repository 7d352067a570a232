# hyperlax developer entry points. Each target creates the virtual environment if missing and
# installs what it needs: `make demo` the package alone; `make test` and `make docs` also the
# test, Ray, Brax and docs extras (a `make test` after a `make demo` adds them; a `make demo`
# after a `make test` installs nothing). Editing pyproject.toml or constraints.txt reinstalls.
# Both install the exact versions in constraints.txt, the ones the suite passed with (`pip
# install hyperlax` elsewhere gets pyproject.toml's ranges); `make constraints` refreshes them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.installed-base
DEV_STAMP := $(VENV)/.installed-dev
CONSTRAINTS := constraints.txt
# what `make test` installs; dev includes what the optuna and tensorboard extras name
EXTRAS := dev,ray,brax,docs
FRESH := .venv-constraints

.PHONY: test test-heavy test-fast demo docs schemas golden constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# hyperlax and its runtime dependencies only (no pytest, no Ray): enough for every command
# except `exec --ray` and brax.* environments.
$(BASE_STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

# hyperlax with the test, Ray, Brax and docs extras (the suite tests `exec --ray`, the Brax
# environments and the documentation site's build). It includes the base install, so its stamp
# is renewed too.
$(DEV_STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $(BASE_STAMP) $@

# The whole suite but the `heavy` tests, what CI runs; it ends with the 20 slowest tests.
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -m "not heavy" --durations=20

# The heavy tier: training on each Brax body (minutes each on a CPU, about 40 minutes in all;
# docs/development.md). Run it when Brax, JAX or the Brax wrapper changes.
test-heavy: $(DEV_STAMP)
	$(BIN)/python -m pytest -m heavy --durations=20

# The tier for working: leaves out every test marked slow, which includes the subprocess, ray,
# stops, learning and envs marks (pyproject.toml lists them; tests/conftest.py adds slow).
# Every module of hyperlax still runs in it: tools/fast_tier_modules.py checks that.
test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest -m "not slow"

demo: $(BASE_STAMP)
	$(BIN)/hyperlax plan specs/quickstart.toml -o runs/quickstart.plan.msgpack
	$(BIN)/hyperlax exec runs/quickstart.plan.msgpack
	$(BIN)/hyperlax report runs/quickstart.plan.msgpack --top 8

# The documentation site, from docs/ into site/; --strict fails on a broken link or anchor, or a
# page missing from mkdocs.yml's nav.
docs: $(DEV_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

schemas: $(BASE_STAMP)
	$(BIN)/python tools/gen_schemas.py

golden: $(BASE_STAMP)
	$(BIN)/python tools/update_golden.py

# Refresh constraints.txt: a fresh environment with hyperlax and every extra at the newest
# versions pyproject.toml allows, frozen. Then `make test` reinstalls .venv with the new pins
# and runs the suite: commit constraints.txt only when it passes.
constraints:
	rm -rf $(FRESH)
	$(PYTHON) -m venv $(FRESH)
	$(FRESH)/bin/python -m pip install --quiet --upgrade pip
	$(FRESH)/bin/python -m pip install --quiet -e '.[$(EXTRAS)]'
	$(FRESH)/bin/python tools/write_constraints.py $(FRESH)/bin/python
	rm -rf $(FRESH)

clean:
	rm -rf $(VENV) $(FRESH) runs site .pytest_cache
