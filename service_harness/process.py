"""A server process started, awaited and stopped: ``ServiceProcess`` and ``serving``.

The process writes stdout and stderr to a file, never a pipe: nobody reads a pipe while the
server is under load, and a server that logs (a traceback per failing request, say) would
block on a full one. When it exits early or does not answer in time, ``NotReadyError`` says
so with the log's tail; tests turn that into ``pytest.fail``, scripts let it end them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
MIB = 1024 * 1024


class NotReadyError(RuntimeError):
    """The server exited before it was ready, or was not ready in time; ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def uvicorn_command(
    port: int, app: str = "app.main:app", uvicorn_args: Sequence[str] = ()
) -> list[str]:
    """``python -m uvicorn app --host 127.0.0.1 --port port ...`` with this interpreter."""
    host = ["--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "uvicorn", app, *host, *uvicorn_args]


def service_env(model_dir: Path, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment, serving ``model_dir``, JSON logs at INFO; ``settings`` on top."""
    return {
        **os.environ,
        "MODEL_DIR": str(model_dir),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **(settings or {}),
    }


def health_ready(url: str) -> bool:
    """Whether ``GET /health/ready`` answers 200 (not listening yet is not ready)."""
    with suppress(httpx.TransportError):
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    return False


# --- what the process uses --------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` now; 0 once the process is gone."""
    try:
        return psutil.Process(pid).memory_info().rss / MIB
    except psutil.Error:
        return 0.0


def peak_rss_mib(pid: int) -> float:
    """The highest RSS ``pid`` has had since it started; 0 once it is gone (Linux).

    The kernel's own high-water mark (VmHWM), which a sampled maximum can miss. psutil has no
    peak RSS on Linux (psutil issue 383), so this one figure is read from /proc.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` (all its threads) has used so far; 0 once it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


# --- the process ------------------------------------------------------------------------------


class ServiceProcess:
    """A server started with ``command`` on ``port``; stop it with ``stop`` or ``with``.

    Output goes to ``log``, or to a temporary file removed by ``stop`` when none is given.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        cwd: Path = REPO,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._own_log = log is None
        if log is None:
            handle, name = tempfile.mkstemp(prefix="service-", suffix=".log")
            os.close(handle)
            log = Path(name)
        self.log = log
        with log.open("wb") as out:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def wait_until_ready(
        self,
        timeout_s: float = STARTUP_TIMEOUT_S,
        is_ready: Callable[[str], bool] = health_ready,
        poll_s: float = 0.2,
    ) -> float:
        """Poll ``is_ready(url)`` until it holds; return the seconds since the process started.

        Raises ``NotReadyError`` (with the log's tail) if the process exits first or time runs out.
        """
        deadline = self.started + timeout_s
        while True:
            if self.process.poll() is not None:
                raise NotReadyError(
                    f"the server exited with {self.process.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            if is_ready(self.url):
                return time.perf_counter() - self.started
            if time.perf_counter() > deadline:
                raise NotReadyError(
                    f"the server was not ready after {timeout_s:.0f} s:\n" + self.log_tail()
                )
            time.sleep(poll_s)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGINT (a graceful stop for uvicorn), then SIGKILL after ``timeout_s``; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._own_log:
            self.log.unlink(missing_ok=True)
        return self.process.returncode

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_service(
    model_dir: Path,
    log: Path | None = None,
    *,
    settings: Mapping[str, str] | None = None,
    uvicorn_args: Sequence[str] = (),
) -> ServiceProcess:
    """``uvicorn app.main:app`` serving ``model_dir`` on a free port, not yet awaited."""
    port = free_port()
    return ServiceProcess(
        uvicorn_command(port, uvicorn_args=uvicorn_args),
        port=port,
        env=service_env(model_dir, settings),
        log=log,
    )


@contextmanager
def serving(
    model_dir: Path,
    log: Path | None = None,
    *,
    settings: Mapping[str, str] | None = None,
    uvicorn_args: Sequence[str] = (),
    timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[ServiceProcess]:
    """``start_service``, ready (``/health/ready`` answers 200) on entry, stopped on exit."""
    with start_service(model_dir, log, settings=settings, uvicorn_args=uvicorn_args) as service:
        service.wait_until_ready(timeout_s)
        yield service
