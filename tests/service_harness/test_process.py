"""``ServiceProcess`` on stand-in commands: what it says when a server fails, and how it stops."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from service_harness.process import NotReadyError, ServiceProcess, cpu_seconds, free_port, rss_mib


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_server_that_exits_is_reported_with_its_exit_code_and_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    command = python("import sys; print('Cannot start: no model'); sys.exit(3)")
    with (
        ServiceProcess(command, port=free_port(), log=log) as server,
        pytest.raises(NotReadyError) as failure,
    ):
        server.wait_until_ready(timeout_s=30)
    assert "exited with 3" in str(failure.value)
    assert "Cannot start: no model" in str(failure.value)


def test_a_server_that_never_gets_ready_is_reported_after_the_timeout(tmp_path: Path) -> None:
    command = python("import time; print('still loading', flush=True); time.sleep(60)")
    with ServiceProcess(command, port=free_port(), log=tmp_path / "server.log") as server:
        started = time.perf_counter()
        with pytest.raises(NotReadyError) as failure:
            server.wait_until_ready(timeout_s=1, poll_s=0.05)
        assert time.perf_counter() - started < 10
        assert "not ready after 1 s" in str(failure.value)
        assert "still loading" in str(failure.value)
    assert server.process.returncode is not None  # stopped on leaving the block


def test_ready_is_whatever_the_check_says_and_returns_the_time_since_start() -> None:
    checks: list[str] = []

    def third_time_lucky(url: str) -> bool:
        checks.append(url)
        return len(checks) == 3

    port = free_port()
    with ServiceProcess(python("import time; time.sleep(60)"), port=port) as server:
        seconds = server.wait_until_ready(timeout_s=30, is_ready=third_time_lucky, poll_s=0.01)
        assert seconds > 0
        assert checks == [f"http://127.0.0.1:{port}"] * 3
        assert rss_mib(server.pid) > 1
        assert cpu_seconds(server.pid) >= 0


def test_stop_interrupts_then_kills_a_server_that_ignores_sigint() -> None:
    polite = python("import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    pass")
    deaf = python(
        "import signal, sys, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)"
    )
    server = ServiceProcess(polite, port=free_port())
    time.sleep(0.5)  # past the interpreter's start, so SIGINT meets the try block
    assert server.stop() == 0
    server = ServiceProcess(deaf, port=free_port())
    server.wait_until_ready(timeout_s=30, is_ready=lambda _url: "ready" in server.log_text())
    assert server.stop(timeout_s=0.5) == -signal.SIGKILL
    assert not server.log.exists()  # its own temporary log is removed


def test_the_processes_gone_read_as_nothing() -> None:
    server = ServiceProcess(python("pass"), port=free_port())
    server.process.wait()
    pid = server.pid
    server.stop()
    assert (rss_mib(pid), cpu_seconds(pid)) == (0.0, 0.0)
