"""The soak's load client: a running server under a bounded load of valid and invalid uploads.

``run_soak`` drives CLIENTS concurrent clients for a fixed time, each picking uploads from a
weighted mix (MNIST PNGs, photographed JPEGs, batches, and every kind of bad request with the
status it must get), and reports what came back: statuses per kind, 5xx, dropped connections,
the server's RSS at start and end, latency percentiles. ``run_queue_full`` does the same
against a server whose queue holds almost nothing, to show overload is a clean 503 with
Retry-After rather than a queue that grows.

    python -m service_harness.soak --model-dir models/mnist [--seconds 60] [--clients 64]

prints the summary the README quotes; ``make soak`` runs tests/hardening/test_soak.py, which
asserts it against the fixture model.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import struct
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from digit_photos import encode_png, photograph
from service_harness.process import MIB, REPO, ServiceProcess, rss_mib, serving

SAMPLE_PATH = REPO / "tests" / "data" / "mnist_sample.npz"

# The soak server's body limit: low enough that an over-limit upload is cheap to send often.
SOAK_MAX_UPLOAD_BYTES = MIB
# RSS is compared after this warm-up: the first seconds of load grow the allocator's arenas
# and TensorFlow's per-batch-size caches once, which is not a leak.
WARMUP_S = 5.0


# --- what the clients send --------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One kind of request in the mix, with the only status it may get."""

    kind: str
    expected: int
    weight: int
    method: str = "POST"
    path: str = "/predict"
    files: tuple[tuple[str, tuple[str, bytes]], ...] = ()
    content: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


def _png(array: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", **options)
    return buffer.getvalue()


def png_bomb(side: int = 50_000) -> bytes:
    """A PNG header claiming ``side`` x ``side`` pixels, followed by almost nothing."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
        + chunk(b"IEND", b"")
    )


def request_mix(digits: np.ndarray, max_upload_bytes: int = SOAK_MAX_UPLOAD_BYTES) -> list[Request]:
    """Weighted requests: about five in six should succeed, the rest must fail cleanly."""
    pngs = [encode_png(d) for d in digits[:32]]
    # Photos at a fixed, moderate size: preprocessing cost should not dominate the run.
    photos = [photograph(d, "jpeg", seed=i, size=(480, 360)) for i, d in enumerate(digits[:8])]
    canvases = [photograph(d, "rgba", seed=i, size=(280, 280)) for i, d in enumerate(digits[:4])]
    one = pngs[0]
    requests = [
        Request(f"mnist-png-{i}", 200, 2, files=(("file", ("d.png", p)),))
        for i, p in enumerate(pngs)
    ]
    requests += [
        Request(f"photo-jpeg-{i}", 200, 2, files=(("file", ("p.jpg", p)),))
        for i, p in enumerate(photos)
    ]
    requests += [
        Request(f"canvas-rgba-{i}", 200, 2, files=(("file", ("c.png", c)),))
        for i, c in enumerate(canvases)
    ]
    requests += [
        Request(
            "batch-8",
            200,
            4,
            path="/predict/batch",
            files=tuple(("files", ("d.png", p)) for p in pngs[:8]),
        ),
        Request(
            "batch-mixed",
            200,
            2,
            path="/predict/batch",
            files=(
                ("files", ("d.png", one)),
                ("files", ("e.png", b"")),
                ("files", ("t.txt", b"hello")),
            ),
        ),
        Request("empty-file", 400, 4, files=(("file", ("e.png", b"")),)),
        Request("text-as-png", 415, 3, files=(("file", ("t.png", b"just some text\n")),)),
        Request("truncated-png", 400, 3, files=(("file", ("t.png", one[: len(one) // 2])),)),
        Request(
            "blank-png", 422, 3, files=(("file", ("b.png", _png(np.zeros((28, 28), np.uint8)))),)
        ),
        Request("png-bomb", 413, 2, files=(("file", ("b.png", png_bomb())),)),
        Request(
            "over-limit-body",
            413,
            1,
            files=(("file", ("big.png", np.random.default_rng(0).bytes(max_upload_bytes))),),
        ),
        Request("missing-field", 422, 2, files=(("image", ("d.png", one)),)),
        Request(
            "bad-query", 422, 1, path="/predict?preprocess=bogus", files=(("file", ("d.png", one)),)
        ),
        Request(
            "no-boundary",
            400,
            1,
            content=b"--x\r\n\r\n",
            headers=(("content-type", "multipart/form-data"),),
        ),
        Request("ready", 200, 2, method="GET", path="/health/ready"),
        Request("model", 200, 1, method="GET", path="/model"),
    ]
    return requests


# --- running the load -------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    expected: int
    status: int | None  # None: the connection failed (dropped, reset, refused, timed out)
    seconds: float
    started: float
    error: str = ""
    retry_after: str | None = None


@dataclass
class SoakResult:
    seconds: float
    clients: int
    outcomes: list[Outcome]
    rss_idle_mib: float
    rss_start_mib: float
    rss_end_mib: float
    rss_peak_mib: float
    rss_samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.outcomes)

    @property
    def server_errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is not None and o.status >= 500]

    @property
    def dropped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is None]

    @property
    def unexpected(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is not None and o.status != o.expected]

    def statuses(self) -> Counter[int | None]:
        return Counter(o.status for o in self.outcomes)

    def latency_ms(self, predicate: Callable[[Outcome], bool] = lambda o: True) -> dict[str, float]:
        values = np.array([o.seconds for o in self.outcomes if o.status and predicate(o)]) * 1000
        if values.size == 0:
            return {}
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return {"p50": p50, "p90": p90, "p99": p99, "max": float(values.max())}

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses().items(), key=str))
        all_ms = self.latency_ms()
        ok_ms = self.latency_ms(lambda o: o.status == 200 and o.kind.startswith("mnist-png"))
        err_ms = self.latency_ms(lambda o: o.status is not None and o.status >= 400)

        def fmt(ms: dict[str, float]) -> str:
            return " / ".join(f"{k} {v:.1f}" for k, v in ms.items()) + " ms"

        return "\n".join(
            [
                f"soak: {self.clients} clients for {self.seconds:.0f} s, "
                f"{self.requests} requests ({self.requests / self.seconds:.0f}/s)",
                f"  statuses: {statuses}",
                f"  5xx: {len(self.server_errors)}, dropped connections: {len(self.dropped)}, "
                f"unexpected statuses: {len(self.unexpected)}",
                f"  server RSS: idle {self.rss_idle_mib:.0f} MiB, after {WARMUP_S:.0f} s warm-up "
                f"{self.rss_start_mib:.0f} MiB, end {self.rss_end_mib:.0f} MiB "
                f"({self.rss_end_mib - self.rss_start_mib:+.1f}), peak {self.rss_peak_mib:.0f} MiB",
                f"  latency, all requests: {fmt(all_ms)}",
                f"  latency, 28x28 PNG -> 200: {fmt(ok_ms)}",
                f"  latency, refused (4xx): {fmt(err_ms)}",
                "  by kind (requests, status, p50 / p99 ms):",
                *self.by_kind(),
            ]
        )

    def by_kind(self) -> list[str]:
        groups: dict[str, list[Outcome]] = {}
        for outcome in self.outcomes:
            groups.setdefault(outcome.kind.rstrip("-0123456789"), []).append(outcome)
        lines = []
        for kind, outcomes in sorted(groups.items(), key=lambda item: -len(item[1])):
            ms = np.array([o.seconds for o in outcomes]) * 1000
            statuses = "/".join(str(s) for s in sorted({o.status for o in outcomes}, key=str))
            p50, p99 = np.percentile(ms, [50, 99])
            lines.append(
                f"    {kind:16s} {len(outcomes):6d}  {statuses:5s} {p50:7.1f} / {p99:7.1f}"
            )
        return lines


BOUNDARY = "soak-0c5e1f9a7d3b4e8f"


def encode_request(request: Request, host: str = "127.0.0.1") -> bytes:
    """The whole HTTP/1.1 request, built once: the clients only write bytes and parse answers."""
    headers = dict(request.headers)
    if request.method == "GET":
        body = b""
    elif request.content is not None:
        body = request.content
    else:
        body = (
            b"".join(
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                + data
                + b"\r\n"
                for field, (filename, data) in request.files
            )
            + f"--{BOUNDARY}--\r\n".encode()
        )
        headers["content-type"] = f"multipart/form-data; boundary={BOUNDARY}"
    if request.method != "GET":
        headers["content-length"] = str(len(body))
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def drive(
    url: str,
    requests: Sequence[Request],
    *,
    seconds: float,
    clients: int,
    seed: int = 0,
) -> list[Outcome]:
    """``clients`` concurrent clients, each sending random picks from ``requests`` until time.

    Each client keeps one connection alive, as a browser or SDK would, and reconnects only
    when the server says ``Connection: close``. Requests are prebuilt bytes over asyncio
    streams: an HTTP client library here would spend more CPU than the server under test.
    A connection that fails or closes before a complete response is a dropped connection.
    """
    host, port = url.removeprefix("http://").split(":")
    encoded = {r.kind: encode_request(r) for r in requests}
    weights = [r.weight for r in requests]
    outcomes: list[Outcome] = []
    deadline = time.perf_counter() + seconds

    async def exchange(
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], data: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        reader, writer = connection

        async def send() -> None:
            writer.write(data)
            await writer.drain()

        # Written while the answer is read: a server may answer (413) before the body is in.
        sending = asyncio.create_task(send())
        try:
            return await read_response(reader)
        finally:
            if not sending.done():
                sending.cancel()
            with suppress(asyncio.CancelledError, OSError):
                await sending

    async def client_loop(rng: random.Random) -> None:
        connection = None
        while time.perf_counter() < deadline:
            request = rng.choices(requests, weights)[0]
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, int(port))
                status, headers, body = await asyncio.wait_for(
                    exchange(connection, encoded[request.kind]), 60
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                outcomes.append(
                    Outcome(
                        request.kind,
                        request.expected,
                        None,
                        time.perf_counter() - started,
                        started,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                )
                if connection is not None:
                    connection[1].close()
                connection = None
                continue
            outcomes.append(
                Outcome(
                    request.kind,
                    request.expected,
                    status,
                    time.perf_counter() - started,
                    started,
                    retry_after=headers.get("retry-after"),
                    error=body.decode("utf-8", "replace") if status >= 500 else "",
                )
            )
            if headers.get("connection", "").lower() == "close":
                connection[1].close()
                connection = None
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(client_loop(random.Random(seed * 1000 + i)) for i in range(clients)))
    return outcomes


async def _sample_rss(
    pid: int, samples: list[tuple[float, float]], stop_event: asyncio.Event
) -> None:
    begun = time.perf_counter()
    while not stop_event.is_set():
        samples.append((time.perf_counter() - begun, rss_mib(pid)))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), 0.5)


def run_soak(
    server: ServiceProcess, digits: np.ndarray, *, seconds: float, clients: int
) -> SoakResult:
    """Warm up for WARMUP_S, then load the server for ``seconds`` more; RSS sampled throughout."""
    requests = request_mix(digits)

    async def scenario() -> SoakResult:
        samples: list[tuple[float, float]] = []
        stop_event = asyncio.Event()
        idle = server.rss_mib()
        sampler = asyncio.create_task(_sample_rss(server.pid, samples, stop_event))
        await drive(server.url, requests, seconds=WARMUP_S, clients=clients, seed=1)
        start = server.rss_mib()
        outcomes = await drive(server.url, requests, seconds=seconds, clients=clients, seed=2)
        end = server.rss_mib()
        stop_event.set()
        await sampler
        return SoakResult(
            seconds=seconds,
            clients=clients,
            outcomes=outcomes,
            rss_idle_mib=idle,
            rss_start_mib=start,
            rss_end_mib=end,
            rss_peak_mib=server.peak_rss_mib(),
            rss_samples=samples,
        )

    return asyncio.run(scenario())


@dataclass
class QueueFullResult:
    outcomes: list[Outcome]

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 503]

    def summary(self) -> str:
        counts = Counter(o.status for o in self.outcomes)
        retry = Counter(o.retry_after for o in self.refused)
        return (
            f"queue full (QUEUE_MAX=1): {len(self.outcomes)} requests, statuses "
            f"{dict(sorted(counts.items(), key=str))}, Retry-After on 503s: {dict(retry)}"
        )


def run_queue_full(
    server: ServiceProcess, digits: np.ndarray, *, seconds: float, clients: int
) -> QueueFullResult:
    """Valid uploads only, at a server that queues at most one image: the excess gets 503."""
    requests = [
        Request(f"mnist-png-{i}", 200, 1, files=(("file", ("d.png", encode_png(d))),))
        for i, d in enumerate(digits[:16])
    ]
    outcomes = asyncio.run(drive(server.url, requests, seconds=seconds, clients=clients, seed=3))
    return QueueFullResult(outcomes)


# Both servers are started with these; the queue-full one adds QUEUE_FULL_SETTINGS.
SOAK_SETTINGS = {"MAX_UPLOAD_BYTES": str(SOAK_MAX_UPLOAD_BYTES), "ACCESS_LOG": "false"}
QUEUE_FULL_SETTINGS = {**SOAK_SETTINGS, "QUEUE_MAX": "1", "BATCH_MAX_SIZE": "1"}


def load_digits() -> np.ndarray:
    with np.load(SAMPLE_PATH) as sample:
        return sample["x_test"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service_harness.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models/mnist"))
    )
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 60)))
    parser.add_argument("--clients", type=int, default=int(os.environ.get("SOAK_CLIENTS", 64)))
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args(argv)
    digits = load_digits()
    with serving(
        args.model_dir, args.log_dir / "soak-server.log", settings=SOAK_SETTINGS
    ) as server:
        result = run_soak(server, digits, seconds=args.seconds, clients=args.clients)
    print(result.summary())
    with serving(
        args.model_dir, args.log_dir / "queue-full-server.log", settings=QUEUE_FULL_SETTINGS
    ) as server:
        full = run_queue_full(server, digits, seconds=min(10.0, args.seconds), clients=args.clients)
    print(full.summary())
    return 0 if not (result.server_errors or result.dropped or result.unexpected) else 1


if __name__ == "__main__":
    sys.exit(main())
