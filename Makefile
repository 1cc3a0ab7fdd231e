# One entry point per task. `make run` and `make test` are the two commands a fresh machine needs.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
HOST   ?= 0.0.0.0
MODEL_DIR ?= models/mnist

.PHONY: help setup train train-seed evaluate serve run test test-slow test-browser test-container lint format bench bench-images clean image image-lite hadolint accuracy numbers tune-numbers soak fuzz audit

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip "setuptools>=78.1.1"
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

lint: setup  ## ruff lint + format check + mypy (app/, training/, contract/, service_harness/)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup  ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:  ## remove caches (keeps .venv and models)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# ---- container image and compose (docker, or ../shared/tools/containers-setup for podman)
IMAGE ?= mnist-service:latest

IMAGE_LITE ?= mnist-service:lite

image:  ## build the full Docker image $(IMAGE) (serves the SavedModel, trains) and print its size
	docker build -t $(IMAGE) .
	docker image ls $(IMAGE)

image-lite:  ## build the lean serving image $(IMAGE_LITE) (model.tflite on LiteRT, no TensorFlow)
	docker build --target api-lite -t $(IMAGE_LITE) .
	docker image ls $(IMAGE_LITE)

hadolint: setup  ## lint the Dockerfiles (the service, the load balancer)
	$(VENV)/bin/hadolint Dockerfile deploy/haproxy/Dockerfile

test-container: setup  ## build the full and lean images, compose up (quick training), predict, restart, replicas behind HAProxy: 2 min warm, ~12 cold
	@command -v docker >/dev/null || { echo "need docker: on these machines run ../shared/tools/containers-setup as root"; exit 1; }
	$(VENV)/bin/pytest -m container -v -s tests/container

test-browser: setup  ## the page end to end in headless Chromium (installs Debian's chromium if absent)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(VENV)/bin/pytest -m browser

bench: setup  ## load-test the service (/predict, /v2, /v1) beside the ceiling, naive and KServe references (needs a model; ~15 min)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	MODEL_DIR=$(MODEL_DIR) $(PY) -m benchmarks.run

bench-images: setup image image-lite  ## the lean image against the full one as containers: size, cold start, RSS, requests/s (~3 min)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	MODEL_DIR=$(MODEL_DIR) $(PY) -m benchmarks.images --full $(IMAGE) --lite $(IMAGE_LITE)

accuracy: setup  ## all 10,000 MNIST test digits (PNG and re-photographed) and held-out non-digits through POST /predict: accuracy, verdicts, calibration
	MODEL_DIR=$(MODEL_DIR) $(PY) -m benchmarks.accuracy_over_http

numbers: setup  ## photos of numbers written with MNIST test digits (separated, touching, overlapping; plain and notebook paper) through POST /read: exact-number, per-digit and length accuracy (~2 min)
	MODEL_DIR=$(MODEL_DIR) $(PY) -m benchmarks.numbers_over_http --per-kind 300

tune-numbers: setup  ## numbers written with the model's *validation* digits, read in process, with how each wrong one went wrong: where /read's segmentation is tuned (~1 min)
	MODEL_DIR=$(MODEL_DIR) $(PY) -m benchmarks.tune_numbers --per-kind 300

# ---- hardening: load soak, coverage-guided fuzzing, dependency audit (tests/hardening, fuzz/)
SOAK_SECONDS ?= 60
FUZZ_SECONDS ?= 60

soak: setup  ## 64 clients, valid + invalid uploads, vs uvicorn for $(SOAK_SECONDS) s, then a full queue; prints the figures
	SOAK_SECONDS=$(SOAK_SECONDS) $(VENV)/bin/pytest -m soak -s tests/hardening/test_soak.py

fuzz: setup  ## atheris on the upload decoder for $(FUZZ_SECONDS) s; new inputs and crashes go to build/fuzz/
	@$(PY) -c "import atheris" 2>/dev/null || { echo "atheris is not installed: it has wheels for Linux x86_64 only (elsewhere: CC=clang $(VENV)/bin/pip install atheris)"; exit 1; }
	mkdir -p build/fuzz/corpus
	$(PY) fuzz/fuzz_preprocess.py -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=10 \
		-artifact_prefix=build/fuzz/ build/fuzz/corpus fuzz/corpus

audit: setup  ## pip-audit of the installed environment (needs PyPI's JSON API or osv.dev: AUDIT_ARGS="-s osv")
	$(VENV)/bin/pip-audit --strict --skip-editable --progress-spinner off $(AUDIT_ARGS)
