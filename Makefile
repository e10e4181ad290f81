# The two commands of the README: `make demo` and `make test`. Both build .venv on
# a fresh clone; nothing needs to be installed beforehand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Local wheel directory carrying the torch 2.13.0 CPU wheel (see DEVELOPERS.md).
WHEELS := $(wildcard /opt/wheels)
PIP_FLAGS := $(if $(WHEELS),--find-links $(WHEELS),)

.PHONY: demo test test-slow lint format bench clean

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and on its own, so the resolver never considers a CUDA build.
	$(BIN)/pip install -q $(PIP_FLAGS) "torch==2.13.0"
	$(BIN)/pip install -q $(PIP_FLAGS) -e ".[dev]"
	touch $(BIN)/activate

# the quickstart: photometry of the bundled templates, then the whole pipeline on an
# emulated field (jobs/quickstart.yaml: local Dask, local Ray); a rerun skips what is done
demo: $(BIN)/activate
	$(BIN)/jpasbatch demo --out demo_output/templates
	$(BIN)/jpasbatch run jobs/quickstart.yaml

lint: $(BIN)/activate
	$(BIN)/ruff check jpasbatch tests benchmarks
	$(BIN)/ruff format --check jpasbatch tests benchmarks

format: $(BIN)/activate
	$(BIN)/ruff check --fix jpasbatch tests benchmarks
	$(BIN)/ruff format jpasbatch tests benchmarks

test: lint
	$(BIN)/pytest -q

test-slow: $(BIN)/activate
	$(BIN)/pytest -q -m slow

bench: $(BIN)/activate
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) demo_output .pytest_cache
