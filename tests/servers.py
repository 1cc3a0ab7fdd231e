"""The service as a real uvicorn process in tests: ``service_harness`` with pytest's failures.

``uvicorn_process`` starts one and leaves the waiting to the test, ``wait_until_ready`` waits,
``serve`` does both; a server that exits or never gets ready fails the test with its log's
tail. ``startup_failure_line`` checks a server that must refuse to start.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from service_harness.process import (
    REPO,
    STARTUP_TIMEOUT_S,
    NotReadyError,
    ServiceProcess,
    free_port,
    service_env,
    start_service,
    uvicorn_command,
)


def startup_failure_line(model_dir: Path) -> str:
    """Start a server on ``model_dir`` that must refuse to start; return its one error line.

    Asserts what an operator relies on: a non-zero exit, no traceback, exactly one line.
    """
    completed = subprocess.run(
        uvicorn_command(free_port()),
        cwd=REPO,
        env=service_env(model_dir),
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
) -> Iterator[ServiceProcess]:
    """A uvicorn serving ``model_dir``, not yet awaited; stopped on exit if still running."""
    with start_service(model_dir, log, settings=settings, uvicorn_args=uvicorn_args) as service:
        yield service


def wait_until_ready(service: ServiceProcess, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Fail the test, with the server's log tail, unless it gets ready in time."""
    try:
        service.wait_until_ready(timeout_s)
    except NotReadyError as exc:
        pytest.fail(str(exc), pytrace=False)


@contextmanager
def serve(
    model_dir: Path,
    log: Path,
    *,
    settings: Mapping[str, str] | None = None,
    uvicorn_args: Sequence[str] = (),
) -> Iterator[ServiceProcess]:
    """A ready uvicorn serving ``model_dir``, stopped on exit."""
    with uvicorn_process(model_dir, log, settings, uvicorn_args) as service:
        wait_until_ready(service)
        yield service
