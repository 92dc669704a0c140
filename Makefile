# Developer interface: `make demo`, `make test`, `make lint`, `make bench`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch 2.13.0 is the CPU build that lies on these machines. A GPU user who already has a CUDA torch
# in the venv sets TORCH_SPEC= (empty) so pip keeps theirs.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/pip install -q "$(TORCH_SPEC)")
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m amplify demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not gpu"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check amplify pipelines kernels tests
	$(BIN)/ruff format --check amplify pipelines kernels tests

bench: $(STAMP)
	$(BIN)/python -m amplify.bench

clean:
	rm -rf $(VENV) demo_out
