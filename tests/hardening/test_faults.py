"""Faults around a real uvicorn process: a corrupt model, a new model mid-serve, SIGTERM under load.

tests/app/test_server.py already covers a *missing* model directory (one line, non-zero exit);
here a model that exists but cannot be loaded must end the same way. A new version appearing
while serving is ignored: the model is loaded once, in the lifespan, and a restart is what picks
up the newest (which tests/app/runtime/test_loading.py checks for ``load_model``). SIGTERM while
requests are in flight lets them finish, refuses new connections, and exits once they are done
or after ``--timeout-graceful-shutdown`` at the latest, even if a client never finishes.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from digit_photos import encode_png
from service_harness.process import ServiceProcess
from tests.hardening.raw_http import file_part_head, raw_exchange, request_head
from tests.servers import serve, startup_failure_line

GRACE_S = 4  # --timeout-graceful-shutdown for these servers
# Lifespan shutdown (drain the batcher, stop its thread) and interpreter exit after the grace.
EXIT_SLACK_S = 6


def test_a_corrupt_model_stops_startup_with_one_line(model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "models" / "mnist"
    shutil.copytree(model_dir, root / "1")
    (root / "1" / "saved_model.pb").write_bytes(b"\x08\x01this is not a protobuf SavedModel")
    assert str(root / "1") in startup_failure_line(root)


@pytest.fixture(scope="module")
def served_copy(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, Path]]:
    """A server on a private copy of the fixture model (version 1), which tests may add to."""
    base = tmp_path_factory.mktemp("faults")
    root = base / "models" / "mnist"
    shutil.copytree(model_dir, root / "1")
    uvicorn_args = ["--timeout-graceful-shutdown", str(GRACE_S)]
    with serve(root, base / "server.log", uvicorn_args=uvicorn_args) as server:
        yield server, root


def test_a_new_version_appearing_while_serving_is_ignored_until_restart(
    served_copy: tuple[ServiceProcess, Path], mnist_sample
) -> None:
    server, root = served_copy
    png = encode_png(mnist_sample.x_test[0])
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/model").json()["version"] == "1"
        # Published the way training/export.py does: built aside, renamed into place.
        staging = root / ".staging-2"
        shutil.copytree(root / "1", staging)
        staging.rename(root / "2")
        time.sleep(1)
        versions = {
            http.get("/model").json()["version"],
            http.get("/health").json()["model_version"],
            *(
                http.post("/predict", files={"file": ("d.png", png)}).json()["model_version"]
                for _ in range(5)
            ),
        }
    assert versions == {"1"}


def _slow_upload(png: bytes, sigterm_sent: threading.Event) -> Iterator[bytes]:
    """Half of a /predict body, then (after SIGTERM, and a pause) the rest."""
    whole = file_part_head("b") + png + b"\r\n--b--\r\n"
    yield whole[: len(whole) // 2]
    sigterm_sent.wait(30)
    time.sleep(1.0)
    yield whole[len(whole) // 2 :]


def _never_finishing_upload(stop: threading.Event) -> Iterator[bytes]:
    yield file_part_head("b")
    while not stop.is_set():
        yield b"\x00" * 1024
        time.sleep(0.2)


def json_records(log: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def _connection_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_under_load_finishes_in_flight_requests_refuses_new_ones_and_exits_in_time(
    served_copy: tuple[ServiceProcess, Path], mnist_sample
) -> None:
    server, _root = served_copy
    pngs = [encode_png(d) for d in mnist_sample.x_test[:16]]
    labels = [int(y) for y in mnist_sample.y_test[:16]]
    sigterm_sent, stop_stuck = threading.Event(), threading.Event()
    slow_head = request_head(
        "/predict",
        "multipart/form-data; boundary=b",
        len(file_part_head("b") + pngs[0] + b"\r\n--b--\r\n"),
    )

    def load_client(index: int) -> list[str]:
        """Back-to-back requests on fresh connections until the server stops taking them."""
        outcomes = []
        while True:
            try:
                response = httpx.post(
                    f"{server.url}/predict",
                    files={"file": ("d.png", pngs[index])},
                    headers={"connection": "close"},
                    timeout=30,
                )
            except httpx.ConnectError:
                return [*outcomes, "refused"]
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # Connected, but closed before the request was read: still in the listen backlog
                # when the listener closed, or accepted with no request yet. Safe to retry.
                return [*outcomes, "closed unanswered"]
            except httpx.TransportError as exc:
                return [*outcomes, f"dropped: {type(exc).__name__}"]
            ok = response.status_code == 200 and response.json()["best_guess"] == labels[index]
            outcomes.append("ok" if ok else f"{response.status_code} {response.text[:80]}")

    log_offset = len(server.log_text())
    with ThreadPoolExecutor(24) as pool:
        slow = [
            pool.submit(raw_exchange, server.port, slow_head, _slow_upload(pngs[0], sigterm_sent))
            for _ in range(4)
        ]
        stuck_head = request_head("/predict", "multipart/form-data; boundary=b", 5_000_000)
        stuck = pool.submit(
            raw_exchange, server.port, stuck_head, _never_finishing_upload(stop_stuck), timeout_s=60
        )
        loads = [pool.submit(load_client, i) for i in range(16)]
        time.sleep(1.5)  # all of it in flight
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        sigterm_sent.set()
        refused_while_draining = False
        while server.process.poll() is None and time.monotonic() - signalled < GRACE_S:
            if _connection_refused(server.port):
                refused_while_draining = server.process.poll() is None
                break
            time.sleep(0.05)
        code = server.process.wait(timeout=GRACE_S + EXIT_SLACK_S)
        exited_after = time.monotonic() - signalled
        stop_stuck.set()
        slow_results = [f.result(timeout=30) for f in slow]
        stuck_result = stuck.result(timeout=60)
        load_results = [outcome for f in loads for outcome in f.result(timeout=30)]

    print(
        f"\nSIGTERM -> exit {code} after {exited_after:.1f} s; "
        f"load outcomes {dict(Counter(load_results))}"
    )
    # In flight when SIGTERM came, body still arriving: finished and answered.
    for exchange in slow_results:
        assert exchange.status == 200, exchange.response[:300]
    # New connections were refused while the server was still draining.
    assert refused_while_draining
    # Every request got its answer, or was refused or closed before the server read it...
    assert set(load_results) <= {"ok", "refused", "closed unanswered"}, sorted(set(load_results))
    assert load_results.count("ok") > 0
    # ...which the server's access log confirms: every /predict it handled was answered 200,
    # and every one of those answers reached its client.
    records = json_records(server.log_text()[log_offset:])
    handled = Counter(
        record["status"]
        for record in records
        if record["message"] == "request" and record["path"] == "/predict"
    )
    assert handled[200] == load_results.count("ok") + len(slow_results), handled
    # A client that never finishes holds shutdown for the grace period, not for ever: uvicorn
    # then cancels its request, answering uvicorn's own plain-text 500 if it still can.
    assert stuck_result.status in (None, 500)
    assert GRACE_S - 1 < exited_after < GRACE_S + EXIT_SLACK_S
    # uvicorn re-raises the signal once shut down: "terminated by SIGTERM", cleanly.
    assert code in (0, -signal.SIGTERM)
    messages = [record["message"] for record in records]
    assert "stopped" in messages  # the lifespan's shutdown ran: batcher drained and stopped
    errors = [record["message"].strip() for record in records if record["level"] == "error"]
    # The only errors are the cancelled never-ending upload's; nothing else failed.
    assert errors == [
        "Cancel 1 running task(s), timeout graceful shutdown exceeded",
        "Exception in ASGI application",
    ]
