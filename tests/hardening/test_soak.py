"""The load soak (``make soak``): minutes, not seconds, so it is outside the default suite.

The load client is ``service_harness.soak``; this asserts what it counted.

SOAK_SECONDS (default 60) and SOAK_CLIENTS (default 64) size the run. The summary is printed
(``pytest -s``) in the form the README's Reliability section quotes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service_harness.soak import QUEUE_FULL_SETTINGS, SOAK_SETTINGS, run_queue_full, run_soak
from tests.servers import serve

pytestmark = [pytest.mark.soak, pytest.mark.timeout(900)]

# Allowed RSS growth from the end of warm-up to the end of the run: a leak of even a few KB
# per request would pass this within a minute at the request rates of this machine.
RSS_GROWTH_LIMIT_MIB = 48.0

SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "64"))


def test_mixed_uploads_at_64_clients_get_no_5xx_and_memory_stays_flat(
    model_root: Path, mnist_sample, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with serve(model_root, log, settings=SOAK_SETTINGS) as server:
        result = run_soak(server, mnist_sample.x_test, seconds=SECONDS, clients=CLIENTS)
        alive = server.process.poll() is None
    print("\n" + result.summary())

    assert alive
    assert result.requests > CLIENTS  # every client got through more than one request
    assert result.server_errors == [], result.server_errors[:5]
    assert result.dropped == [], result.dropped[:5]
    assert result.unexpected == [], result.unexpected[:5]
    # Every kind in the mix was exercised, so "no 5xx" covers the error paths too.
    assert {o.status for o in result.outcomes} >= {200, 400, 413, 415, 422}
    assert result.rss_end_mib - result.rss_start_mib < RSS_GROWTH_LIMIT_MIB
    records = log.read_text()
    assert "Traceback" not in records
    assert "unhandled error" not in records


def test_a_full_queue_answers_503_with_retry_after_and_nothing_else_fails(
    model_root: Path, mnist_sample, tmp_path: Path
) -> None:
    with serve(model_root, tmp_path / "server.log", settings=QUEUE_FULL_SETTINGS) as server:
        result = run_queue_full(
            server, mnist_sample.x_test, seconds=min(10.0, SECONDS), clients=CLIENTS
        )
        after = server.process.poll() is None
    print("\n" + result.summary())

    assert after
    statuses = {o.status for o in result.outcomes}
    assert statuses == {200, 503}  # overload is refused, never dropped, never a 500
    assert len(result.refused) > 0
    assert {o.retry_after for o in result.refused} == {"1"}
    assert all("busy" in o.error.lower() for o in result.refused)
