"""Load-test the real service beside its references, in one run, and publish the figures.

``python -m benchmarks.run`` (``make bench``) starts each server as a real process, drives it with
``wrk`` (C, epoll; ``request.lua`` posts a prebuilt body) at several concurrencies and request
kinds, samples the server's RSS, and writes a markdown table, JSON and a PNG plot under
``benchmarks/results/``. A benchmark point is (server, request kind, concurrency). The servers:

- ``service``: the real app (``app.main:app``), dynamic batching and MNIST-style normalisation;
- ``ceiling``: the same FastAPI multipart endpoint returning a constant (upper bound of the stack);
- ``naive``: the tutorial's ``model.predict`` per request on the same SavedModel (the baseline);
- ``service-savedmodel``: the real app calling the SavedModel signature instead of its TFLite copy
  (``INFERENCE_BACKEND=savedmodel``), to show what the TFLite backend buys;
- ``service-litert``: the real app serving ``model.tflite`` alone without TensorFlow
  (``INFERENCE_BACKEND=litert``, what the lean image runs), to show what a lean replica costs;
- ``kserve``: KServe's own ModelServer doing the same job on the same ``model.tflite``
  (``benchmarks.kserve_peer``), the off-the-shelf way to serve this model.

The request kinds (``REQUEST_KINDS``) all carry the same MNIST test digit: multipart uploads to
``/predict``, Open Inference Protocol v2 bodies with binary tensors built by Triton's own client,
and TF Serving / KServe v1 JSON with the PNG in base64. The JSON results keep the key ``image``
for the request kind, which is what the README's tables and the tests read.

Sweeps are repeated and interleaved so the ratios are taken side by side on a noisy machine;
each figure is the median over the repeats. ``--servers`` runs a subset for quick checks.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageFilter

from service_harness.process import NotReadyError, ServiceProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).with_name("request.lua")
BOUNDARY = "----mnist-bench-boundary"


@dataclass(frozen=True)
class RequestKind:
    """One kind of request, as bytes on the wire: what wrk sends on every request of a point."""

    path: str
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()

    def header_args(self) -> list[str]:
        """The extra headers as request.lua's ``Name: value`` arguments."""
        return [f"{name}: {value}" for name, value in self.headers]

    def all_headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, **dict(self.headers)}


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server; ``warmup`` names a request kind it serves (readiness probe)."""

    command: Callable[[Path, int], list[str]]
    warmup: str = "png28"
    env: dict[str, str] = field(default_factory=dict)


def uvicorn_command(app: str) -> Callable[[Path, int], list[str]]:
    def command(model_dir: Path, port: int) -> list[str]:
        # model_dir reaches the app through MODEL_DIR in the environment
        return [
            *(sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", "1", "--no-access-log", "--log-level", "warning"),
        ]

    return command


def kserve_command(model_dir: Path, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "benchmarks.kserve_peer", "--model-dir", str(model_dir)),
        *("--http-port", str(port)),
    ]


SERVERS: dict[str, ServerSpec] = {  # run in this order in every repeat: ceiling before service
    "ceiling": ServerSpec(uvicorn_command("benchmarks.ceiling_app:app")),
    "service": ServerSpec(uvicorn_command("app.main:app")),
    "service-savedmodel": ServerSpec(
        uvicorn_command("app.main:app"), env={"INFERENCE_BACKEND": "savedmodel"}
    ),
    "service-litert": ServerSpec(
        uvicorn_command("app.main:app"), env={"INFERENCE_BACKEND": "litert"}
    ),
    "naive": ServerSpec(uvicorn_command("benchmarks.naive_app:app")),
    "kserve": ServerSpec(kserve_command, warmup="v1-b64"),
}


@dataclass
class Point:
    server: str
    image: str
    concurrency: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int
    peak_rss_mb: float
    cpu_us_per_request: float


# ---------------------------------------------------------------------------- test images


def sample_digit(index: int = 0) -> np.ndarray:
    with np.load(ROOT / "tests" / "data" / "mnist_sample.npz") as f:
        return f["x_test"][index]


def png_28(digit: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(digit).save(buf, format="PNG")
    return buf.getvalue()


def phone_photo_jpeg(digit: np.ndarray, size: tuple[int, int] = (1000, 750)) -> bytes:
    """Dark ink on unevenly lit paper, digit ~300 px and off-centre: a phone photo's shape."""
    rng = np.random.default_rng(0)
    w, h = size
    ink = Image.fromarray(255 - digit).resize((300, 300), Image.Resampling.BICUBIC)
    ink = ink.filter(ImageFilter.GaussianBlur(2))
    paper = np.linspace(225, 175, w, dtype=np.float32)[None, :] * np.ones((h, 1), np.float32)
    paper += rng.normal(0, 4, (h, w)).astype(np.float32)
    page = Image.fromarray(paper.clip(0, 255).astype(np.uint8))
    page.paste(
        Image.fromarray(np.minimum(np.asarray(page.crop((520, 300, 820, 600))), np.asarray(ink))),
        (520, 300),
    )
    buf = io.BytesIO()
    page.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def multipart(data: bytes, filename: str, content_type: str) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def number_photo_jpeg(size: tuple[int, int] = (1000, 750)) -> bytes:
    """A 6-digit number (sample test digits, ~130 px tall) on unevenly lit paper: a phone
    photo of a meter reading's shape, for POST /read."""
    rng = np.random.default_rng(1)
    w, h = size
    paper = np.linspace(225, 180, w, dtype=np.float32)[None, :] * np.ones((h, 1), np.float32)
    paper += rng.normal(0, 4, (h, w)).astype(np.float32)
    page = paper.clip(0, 255).astype(np.uint8)
    with np.load(ROOT / "tests" / "data" / "mnist_sample.npz") as f:
        digits = [f["x_test"][int(np.flatnonzero(f["y_test"] == d)[0])] for d in (2, 0, 2, 6, 1, 9)]
    for i, digit in enumerate(digits):
        ink = cv2.GaussianBlur(cv2.resize(255 - digit, (180, 180), cv2.INTER_CUBIC), (5, 5), 0)
        x, y = 60 + i * 145, 280 + int(rng.integers(-12, 12))
        page[y : y + 180, x : x + 180] = np.minimum(page[y : y + 180, x : x + 180], ink)
    buf = io.BytesIO()
    Image.fromarray(page).convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def upload(data: bytes, filename: str, content_type: str, path: str = "/predict") -> RequestKind:
    return RequestKind(
        path=path,
        body=multipart(data, filename, content_type),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )


def oip_binary(path: str, inputs: list[Any], outputs: list[Any]) -> RequestKind:
    """An OIP v2 request with the binary tensor extension, built by Triton's HTTP client.

    Built by the reference client rather than by hand so that the service is measured on the
    bytes such a client really sends (JSON header, then raw tensors, header length in a header).
    """
    from tritonclient.http import InferenceServerClient

    body, json_size = InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    headers = () if json_size is None else (("Inference-Header-Content-Length", str(json_size)),)
    return RequestKind(
        path=path, body=body, content_type="application/octet-stream", headers=headers
    )


def oip_image(png: bytes) -> RequestKind:
    """``mnist-image``: the encoded PNG as a BYTES tensor; the server decodes and normalises."""
    from tritonclient.http import InferInput, InferRequestedOutput

    image = InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([png], dtype=np.object_), binary_data=True)
    outputs = [
        InferRequestedOutput(name, binary_data=True)
        for name in ("digit", "probabilities", "verdict")
    ]
    return oip_binary("/v2/models/mnist-image/infer", [image], outputs)


def oip_fp32(digit: np.ndarray) -> RequestKind:
    """``mnist``: the model's own input, the same digit / 255 as float32 [1,28,28,1]."""
    from tritonclient.http import InferInput, InferRequestedOutput

    pixels = (digit.astype(np.float32) / np.float32(255)).reshape(1, 28, 28, 1)
    image = InferInput("image", list(pixels.shape), "FP32")
    image.set_data_from_numpy(pixels, binary_data=True)
    outputs = [InferRequestedOutput("probabilities", binary_data=True)]
    return oip_binary("/v2/models/mnist/infer", [image], outputs)


def v1_b64(png: bytes) -> RequestKind:
    """TF Serving / KServe v1 ``:predict`` JSON, the image as ``{"b64": ...}``."""
    instance = {"image": {"b64": base64.b64encode(png).decode("ascii")}}
    return RequestKind(
        path="/v1/models/mnist-image:predict",
        body=json.dumps({"instances": [instance]}).encode(),
        content_type="application/json",
    )


def request_kinds(digit: np.ndarray, jpeg: bytes) -> dict[str, RequestKind]:
    """Every request kind, all carrying ``digit``: the names are the results' ``image`` key."""
    png = png_28(digit)
    return {
        "png28": upload(png, "digit.png", "image/png"),
        "jpeg1000x750": upload(jpeg, "photo.jpg", "image/jpeg"),
        "read-6digits": upload(number_photo_jpeg(), "number.jpg", "image/jpeg", path="/read"),
        "oip-image": oip_image(png),
        "oip-fp32": oip_fp32(digit),
        "v1-b64": v1_b64(png),
    }


# ---------------------------------------------------------------------------- servers


def post(base_url: str, kind: RequestKind, timeout: float = 5.0) -> int:
    req = urllib.request.Request(
        base_url + kind.path, data=kind.body, method="POST", headers=kind.all_headers()
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class Server:
    """One server process; ``cold_start_s`` is process start to first successful request.

    Ready means it answered ``warmup`` with 200 (the references have no /health/ready); its
    output goes to ``log``, not to a pipe nobody reads during the load.
    """

    def __init__(self, name: str, model_dir: Path, warmup: RequestKind, log: Path) -> None:
        spec = SERVERS[name]
        self.name = name
        port = free_port()
        env = {
            **os.environ,
            "MODEL_DIR": str(model_dir),
            "ACCESS_LOG": "false",
            "LOG_LEVEL": "WARNING",
            "KSERVE_LOGLEVEL": "WARNING",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **spec.env,
        }
        self.process = ServiceProcess(spec.command(model_dir, port), port=port, env=env, log=log)
        self.url = self.process.url
        try:
            self.cold_start_s = self.process.wait_until_ready(
                120, lambda url: post(url, warmup, timeout=2) == 200, poll_s=0.02
            )
        except NotReadyError as exc:
            self.process.stop()
            raise NotReadyError(f"{name} did not start: {exc}") from None

    def rss_mb(self) -> float:
        return self.process.rss_mib()

    def cpu_seconds(self) -> float:
        return self.process.cpu_seconds()

    def stop(self) -> None:
        self.process.stop(timeout_s=20)


def run_wrk(
    server: Server, kind: RequestKind, body_file: Path, concurrency: int, duration: float
) -> dict:
    threads = max(1, min(2, concurrency))
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(concurrency),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        server.url + kind.path,
        "--",
        str(body_file),
        kind.content_type,
        *kind.header_args(),
    ]
    peak = [server.rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak.append(server.rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    cpu_before = server.cpu_seconds()
    sampler.start()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60)
    stop.set()
    sampler.join()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = max(peak)
    cpu = server.cpu_seconds() - cpu_before
    result["cpu_us_per_request"] = cpu / max(1, result["requests"]) * 1e6
    return result


# ---------------------------------------------------------------------------- the run


def plan(smoke: bool) -> list[tuple[str, str, int]]:
    """(server, request kind, clients) points; each server runs its own in this order."""
    if smoke:
        return [
            ("ceiling", "png28", 8),
            ("service", "png28", 1),
            ("service", "png28", 8),
            ("service", "jpeg1000x750", 8),
            ("service", "read-6digits", 1),
            ("service", "oip-image", 8),
            ("service", "oip-fp32", 8),
            ("service", "v1-b64", 8),  # so the service / KServe v1 ratio has a smoke value too
            ("naive", "png28", 1),
            ("kserve", "v1-b64", 8),
        ]
    points: list[tuple[str, str, int]] = []
    for c in (1, 8, 32, 64):
        points.append(("ceiling", "png28", c))
        points.append(("service", "png28", c))
        points.append(("service", "jpeg1000x750", c))
        points.append(("service", "oip-image", c))
        points.append(("service", "oip-fp32", c))
    points.append(("service", "v1-b64", 32))
    points += [("service", "read-6digits", c) for c in (1, 8)]
    points += [("service-savedmodel", "png28", 1), ("service-savedmodel", "png28", 32)]
    points += [("service-litert", "png28", c) for c in (1, 32)]
    points.append(("service-litert", "jpeg1000x750", 32))
    points += [("naive", "png28", 1), ("naive", "png28", 32)]
    points += [("kserve", "v1-b64", c) for c in (1, 8, 32, 64)]
    return points


def median_point(runs: list[dict], server: str, image: str, c: int) -> Point:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return Point(
        server=server,
        image=image,
        concurrency=c,
        rps=med("rps"),
        p50_ms=med("p50_us") / 1000,
        p95_ms=med("p95_us") / 1000,
        p99_ms=med("p99_us") / 1000,
        errors=int(sum(r["errors"] for r in runs)),
        requests=int(sum(r["requests"] for r in runs)),
        peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
        cpu_us_per_request=med("cpu_us_per_request"),
    )


def preprocessing_cost_ms(jpeg: bytes, repeats: int = 30) -> float:
    from app.imaging.prepare import preprocess_image

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        preprocess_image(jpeg)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def ratio(runs: list[dict] | None, references: list[dict] | None) -> float | None:
    """Median over repeats of the requests/s ratio within each repeat (minutes apart at most),
    which the machine's drifting load disturbs less than a ratio of two medians."""
    if not runs or not references:
        return None
    return statistics.median(
        run["rps"] / reference["rps"]
        for run, reference in zip(runs, references, strict=False)
        if reference["rps"]
    )


def render_markdown(points: list[Point], cold: dict[str, float], meta: dict) -> str:
    lines = [
        f"Run {meta['created']}: {meta['repeats']} interleaved repeats of {meta['duration_s']} s "
        f"per point, medians; wrk on the same {os.cpu_count()}-core machine; one uvicorn worker.",
        "",
        "| server | image | clients | requests/s | p50 ms | p95 ms | p99 ms | errors "
        "| peak RSS MB | server CPU µs/request |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p.server} | {p.image} | {p.concurrency} | {p.rps:,.0f} | {p.p50_ms:.1f} | "
            f"{p.p95_ms:.1f} | {p.p99_ms:.1f} | {p.errors} | {p.peak_rss_mb:.0f} | "
            f"{p.cpu_us_per_request:.0f} |"
        )
    lines += ["", "| ratio (within each repeat, median) | value |", "|---|---:|"]
    for label, value in meta["ratios"].items():
        lines.append(f"| {label} | {value:.2f}× |" if value is not None else f"| {label} | n/a |")
    lines += ["", "| cold start (process start → first prediction) | seconds |", "|---|---:|"]
    lines += [f"| {name} | {s:.2f} |" for name, s in cold.items()]
    if meta.get("jpeg_share") is not None:
        lines += [
            "",
            f"Decode + normalise of the 1000×750 JPEG: {meta['jpeg_preprocess_ms']:.2f} ms per "
            f"image in-process, {meta['jpeg_share']:.0%} of the service's per-request time at 1 client.",
        ]
    return "\n".join(lines) + "\n"


def plot(points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(11, 4))
    series: dict[str, list[Point]] = {}
    for p in points:
        series.setdefault(f"{p.server} / {p.image}", []).append(p)
    for label, ps in series.items():
        ps.sort(key=lambda p: p.concurrency)
        xs = [p.concurrency for p in ps]
        ax_rps.plot(xs, [p.rps for p in ps], marker="o", label=label)
        ax_p99.plot(xs, [p.p99_ms for p in ps], marker="o", label=label)
    for ax, title in ((ax_rps, "requests/s"), (ax_p99, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_rps.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models/mnist"))
    )
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of load per point")
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved sweeps; medians reported"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: proves the harness works"
    )
    parser.add_argument(
        "--servers",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(SERVERS),
        help=f"comma list, a subset of {','.join(SERVERS)} (default: all)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    if args.smoke:
        args.duration, args.repeats = 1.0, 1
    if not shutil.which("wrk"):
        print("error: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    if not args.model_dir.exists():
        print(f"error: no model at {args.model_dir}; run `make train` first", file=sys.stderr)
        return 2

    digit = sample_digit(0)
    jpeg = phone_photo_jpeg(digit)
    kinds = request_kinds(digit, jpeg)
    points = [p for p in plan(args.smoke) if p[0] in args.servers]
    raw: dict[tuple[str, str, int], list[dict]] = {p: [] for p in points}
    cold: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bodies = {}
        for name, kind in kinds.items():
            bodies[name] = Path(tmp) / f"{name}.body"
            bodies[name].write_bytes(kind.body)
        for repeat in range(args.repeats):
            for name in SERVERS:
                mine = [p for p in points if p[0] == name]
                if not mine:
                    continue
                log = Path(tmp) / f"{name}-{repeat + 1}.log"
                server = Server(name, args.model_dir, kinds[SERVERS[name].warmup], log)
                cold.setdefault(name, []).append(server.cold_start_s)
                try:
                    for _, image, c in mine:
                        r = run_wrk(server, kinds[image], bodies[image], c, args.duration)
                        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
                        r["errors"] = sum(
                            r[k]
                            for k in (
                                "connect_errors",
                                "read_errors",
                                "write_errors",
                                "non_2xx",
                                "timeouts",
                            )
                        )
                        raw[(name, image, c)].append(r)
                        print(
                            f"[{repeat + 1}/{args.repeats}] {name:18} {image:12} c={c:<3} "
                            f"{r['rps']:8.0f} req/s  p99 {r['p99_us'] / 1000:7.1f} ms  "
                            f"errors {r['errors']}",
                            flush=True,
                        )
                finally:
                    server.stop()

    results = [median_point(runs, *key) for key, runs in raw.items()]
    find = {(p.server, p.image, p.concurrency): p for p in results}
    c = 8 if args.smoke else 32  # the goal's concurrency; the smoke plan is smaller
    c_naive = 1 if args.smoke else 32
    jpeg_ms = preprocessing_cost_ms(jpeg)
    service_jpeg_1 = find.get(("service", "jpeg1000x750", 1))
    meta = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": args.duration,
        "repeats": args.repeats,
        "smoke": args.smoke,
        "ratios": {
            f"service / ceiling, 28×28 PNG, {c} clients": ratio(
                raw.get(("service", "png28", c)), raw.get(("ceiling", "png28", c))
            ),
            f"service / naive, 28×28 PNG, {c_naive} clients": ratio(
                raw.get(("service", "png28", c_naive)), raw.get(("naive", "png28", c_naive))
            ),
            f"OIP mnist-image (binary BYTES) / predict, 28×28 PNG, {c} clients": ratio(
                raw.get(("service", "oip-image", c)), raw.get(("service", "png28", c))
            ),
            f"OIP mnist FP32 (binary) / predict, 28×28 PNG, {c} clients": ratio(
                raw.get(("service", "oip-fp32", c)), raw.get(("service", "png28", c))
            ),
            f"service /predict / KServe ModelServer (v1 b64), same PNG, {c} clients": ratio(
                raw.get(("service", "png28", c)), raw.get(("kserve", "v1-b64", c))
            ),
            f"service-litert (no TensorFlow) / service, 28×28 PNG, {c} clients": ratio(
                raw.get(("service-litert", "png28", c)), raw.get(("service", "png28", c))
            ),
            f"service v1-b64 / KServe v1-b64, {c} clients": ratio(
                raw.get(("service", "v1-b64", c)), raw.get(("kserve", "v1-b64", c))
            ),
        },
        "requests": {
            name: {
                "path": kind.path,
                "content_type": kind.content_type,
                "headers": dict(kind.headers),
                "body_bytes": len(kind.body),
            }
            for name, kind in kinds.items()
        },
        "jpeg_preprocess_ms": jpeg_ms,
        "jpeg_share": (jpeg_ms / (1000 / service_jpeg_1.rps)) if service_jpeg_1 else None,
    }
    cold_median = {name: statistics.median(v) for name, v in cold.items()}
    table = render_markdown(results, cold_median, meta)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / (f"smoke-{stamp}" if args.smoke else stamp)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(
        json.dumps(
            {"meta": meta, "cold_start_s": cold_median, "points": [asdict(p) for p in results]},
            indent=2,
        )
    )
    plot(results, out / "plot.png")
    print("\n" + table + f"\nwritten to {out}/ (results.md, results.json, plot.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
