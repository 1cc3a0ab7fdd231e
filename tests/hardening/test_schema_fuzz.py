"""Schemathesis against the app's own /openapi.json: every route, generated requests, real model.

Schemathesis reads the schema from the app in-process (ASGI), runs its lifespan (so the fixture
SavedModel is loaded and the batcher started), then for every operation sends requests that
follow the schema and requests that break it (wrong types, missing fields, unknown enum
values, junk multipart bodies). Every response must be a status the schema lists for that
route, never a 5xx, with a body and headers that match what the schema says.

The number of examples per operation is bounded (MAX_EXAMPLES) and the generation is
derandomised, so this runs in seconds and the same way each time; raise SCHEMA_FUZZ_EXAMPLES
for a longer search.

One built-in check is left out: ``positive_data_acceptance`` expects a schema-valid request
to succeed, but a schema cannot say "the file must be a readable image of a digit", so a
schema-valid upload of random bytes is rightly a 400. ``negative_data_rejection`` (requests
that break the schema must get a 4xx) applies except to multipart bodies; see below.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.main import create_app
from app.settings import Settings

MAX_EXAMPLES = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "100"))
# Markers of internals that must never reach a client.
LEAKS = ("Traceback", 'File "', "/work/", "/tmp/", "site-packages")


def _served_openapi() -> dict:
    """The schema ``create_app`` serves at /openapi.json; it does not depend on the model."""
    settings = Settings(MODEL_DIR=Path("models/mnist"), LOG_FORMAT="text", LOG_LEVEL="WARNING")
    return create_app(settings).openapi()


SERVED = _served_openapi()

# Where the app's answers and its schema disagree: found by this fuzzing, pinned by the xfail
# tests at the end of this module. The fuzzed copy of the schema includes them, so every other
# route and status keeps being checked; remove an entry once its xfail test passes.
KNOWN_GAPS: dict[tuple[str, str, str], dict] = {}


def _with_known_gaps(openapi: dict) -> dict:
    patched = copy.deepcopy(openapi)
    for (path, method, status), response in KNOWN_GAPS.items():
        patched["paths"][path][method]["responses"].setdefault(status, response)
    return patched


# Loaded from the dict rather than with ``from_fixture``: schemathesis' lazy fixture loader
# reads ``request.node._nodeid``, which pytest 9 no longer has. Requests still go to a started
# app in-process: ``call_and_validate(app=...)`` picks schemathesis' ASGI transport.
schema = schemathesis.openapi.from_dict(_with_known_gaps(SERVED))


@pytest.fixture(scope="module")
def started_app(service_settings) -> Iterator[FastAPI]:
    """The app serving the fixture model; schemathesis runs its lifespan on first use."""
    app = create_app(service_settings)
    yield app
    asgi.shutdown_lifespans()  # stop the batcher and release the model


def test_the_fuzzed_schema_is_the_one_the_app_serves(started_app: FastAPI) -> None:
    with asgi.get_client(started_app) as client:
        served = client.get("/openapi.json").json()
    assert served == SERVED
    assert {"/predict", "/predict/batch", "/health", "/health/ready", "/model"} <= set(
        served["paths"]
    )


def negative_data_rejection_outside_multipart(ctx, response, case: schemathesis.Case):
    """``negative_data_rejection``, except where only a multipart body was made invalid.

    A multipart part is bytes on the wire: a "file" generated as the integer 0 arrives as the
    file ``b"0"``, which is schema-valid, and the app rightly answers it per file (200 from
    /predict/batch with a 415 entry). Invalid query values are still checked here; missing
    multipart fields are covered by tests/app/test_api.py.
    """
    meta = case.meta
    if meta is not None and case.media_type == "multipart/form-data":
        negated = {where for where, part in meta.components.items() if part.mode.is_negative}
        if negated <= {ParameterLocation.BODY}:
            return None
    return negative_data_rejection(ctx, response, case)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_route_answers_as_documented_and_never_5xx(
    case: schemathesis.Case, started_app: FastAPI
) -> None:
    response = case.call_and_validate(
        app=started_app,
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
        additional_checks=[negative_data_rejection_outside_multipart],
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        for leak in LEAKS:
            assert leak not in response.text


def test_fuzzing_reached_every_route_and_no_5xx_was_recorded(started_app: FastAPI) -> None:
    """Runs after the generated tests: the app's own request counters show what they did."""
    with asgi.get_client(started_app) as client:
        metrics = client.get("/metrics").text
    counts: dict[tuple[str, str], float] = {}
    for route, status, value in re.findall(
        r'http_requests_total\{method="[A-Z]+",route="([^"]+)",status="(\d+)"\} (\S+)', metrics
    ):
        counts[route, status] = counts.get((route, status), 0) + float(value)
    if not any(route.startswith("/predict") for route, _ in counts):
        pytest.skip("run together with the generated tests above")
    print(f"\nschemathesis requests by (route, status): {dict(sorted(counts.items()))}")
    assert {route for route, _ in counts} >= {"/predict", "/predict/batch", "/health", "/model"}
    assert not [key for key in counts if key[1].startswith("5")]


def test_batch_documents_the_400_it_gives_malformed_multipart(started_app: FastAPI) -> None:
    with asgi.get_client(started_app) as client:
        response = client.post(
            "/predict/batch",
            data=b'--x\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\n',
            headers={"content-type": "multipart/form-data; boundary=not-x"},
        )
    assert response.status_code < 500
    assert str(response.status_code) in SERVED["paths"]["/predict/batch"]["post"]["responses"]
