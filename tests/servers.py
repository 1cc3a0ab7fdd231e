"""Starting the service as a real uvicorn process: shared by the end-to-end and hardening tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(model_dir: Path, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "MODEL_DIR": str(model_dir),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **(settings or {}),
    }


def uvicorn_command(port: int, uvicorn_args: Sequence[str] = ()) -> list[str]:
    host = ["--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "uvicorn", "app.main:app", *host, *uvicorn_args]


def startup_failure_line(model_dir: Path) -> str:
    """Start a server on ``model_dir`` that must refuse to start; return its one error line.

    Asserts what an operator relies on: a non-zero exit, no traceback, exactly one line.
    """
    completed = subprocess.run(
        uvicorn_command(free_port()),
        cwd=REPO,
        env=server_env(model_dir),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_S,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "Cannot start" in line]
    assert len(lines) == 1, output
    return lines[0]


@contextmanager
def uvicorn_process(
    model_dir: Path,
    log: Path,
    settings: Mapping[str, str] | None = None,
    uvicorn_args: Sequence[str] = (),
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A uvicorn serving ``model_dir``; its output goes to ``log`` (a pipe could fill up)."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            uvicorn_command(port, uvicorn_args),
            cwd=REPO,
            env=server_env(model_dir, settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield process, f"http://127.0.0.1:{port}"
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_until_ready(process: subprocess.Popen[str], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(f"server not ready after {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")
