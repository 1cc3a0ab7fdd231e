# One entry point per task. `make run` and `make test` are the two commands a fresh machine needs.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
HOST   ?= 0.0.0.0
MODEL_DIR ?= models/mnist

.PHONY: help setup train train-seed evaluate serve run test test-slow test-browser test-container lint format bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  ## create .venv and install the project with dev extras

train: setup  ## train the default model into models/mnist/<n>/ (about 10 min on 2 cores)
	$(PY) -m training --out $(MODEL_DIR)

train-seed: setup  ## train the seed tutorial network (reference, about 1 min)
	$(PY) -m training --arch seed --out $(MODEL_DIR)

evaluate: setup  ## evaluate the newest model through its serving signature
	$(PY) -m training.evaluate $(MODEL_DIR)

serve: setup  ## serve the newest model on $(PORT)
	MODEL_DIR=$(MODEL_DIR) $(VENV)/bin/uvicorn app.main:app --host $(HOST) --port $(PORT)

run: setup  ## everything: install, fetch data, train once if no model yet, serve on $(PORT)
	$(PY) -m training --if-missing --out $(MODEL_DIR)
	MODEL_DIR=$(MODEL_DIR) $(VENV)/bin/uvicorn app.main:app --host $(HOST) --port $(PORT)

test: setup  ## the whole default test suite
	$(VENV)/bin/pytest

test-slow: setup  ## tests that need the full 60k MNIST
	$(VENV)/bin/pytest -m slow

lint: setup  ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup  ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:  ## remove caches (keeps .venv and models)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
