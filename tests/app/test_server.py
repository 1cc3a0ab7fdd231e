"""End to end: ``uvicorn app.main:app`` as a real process, spoken to over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from digit_photos import encode_png
from tests.servers import (
    REPO,
    startup_failure_line,
    uvicorn_process,
    wait_until_ready,
)


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_uvicorn_serves_predictions_over_http(
    model_root: Path, mnist_sample, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    digit, label = mnist_sample.x_test[0], int(mnist_sample.y_test[0])
    with uvicorn_process(model_root, log) as server:
        wait_until_ready(server)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            live = http.get("/health/live")
            predicted = http.post("/predict", files={"file": ("seven.png", encode_png(digit))})
            refused = http.post("/predict", files={"file": ("x.png", b"")})
            metrics = http.get("/metrics").text
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=30) == 0  # graceful: drained and stopped

    assert live.json() == {"status": "alive"}
    assert predicted.status_code == 200
    answer = predicted.json()
    assert answer["best_guess"] == label
    assert answer["model_version"] == "1"
    assert refused.status_code == 400
    assert 'http_requests_total{method="POST",route="/predict",status="200"} 1.0' in metrics

    records = json_lines(log.read_text())
    messages = [record["message"] for record in records]
    assert "model ready" in messages
    assert "stopped" in messages
    access = [r for r in records if r["message"] == "request" and r["route"] == "/predict"]
    assert [(r["status"], r.get("best_guess")) for r in access] == [(200, label), (400, None)]
    # The log line says what the client was told: the verdict, and the digit (null or not).
    assert (access[0]["verdict"], access[0]["digit"]) == (answer["verdict"], answer["digit"])
    assert "verdict" not in access[1]
    # Startup says which operating points it judges by, and where they came from.
    ready = next(record for record in records if record["message"] == "model ready")
    fitted = json.loads((model_root / "1" / "metadata.json").read_text()).get("operating_points")
    assert ready["operating_points_from"] == ("default" if fitted is None else "metadata")
    if fitted is not None:
        assert ready["uncertain_below"] == fitted["uncertain_below"]


def test_operating_points_that_do_not_fit_stop_startup_with_one_line(
    model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOT_A_DIGIT_BELOW", "0.95")
    monkeypatch.setenv("UNCERTAIN_BELOW", "0.6")
    line = startup_failure_line(model_root)
    assert "Cannot start: Invalid operating points" in line
    assert "NOT_A_DIGIT_BELOW=0.95 (from the settings)" in line


def test_a_missing_model_stops_startup_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "mnist"
    line = startup_failure_line(missing)
    assert str(missing) in line
    assert "make train" in line


def test_importing_the_app_loads_nothing() -> None:
    probe = "import sys, app.main; print('tensorflow' in sys.modules, app.main.app.state.service.loaded)"
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env={**os.environ, "MODEL_DIR": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert completed.stdout.split() == ["False", "None"]
