"""Accuracy through the real service: every MNIST test digit posted to ``POST /predict``.

``python -m benchmarks.accuracy_over_http`` (``make accuracy``) starts the service on the newest
model, posts the 10,000 test digits as 28×28 PNGs, then the same digits re-photographed by
``tests/photograph.py`` (dark ink on uneven paper, off-centre, scaled, JPEG / PNG / transparent
canvas / EXIF-rotated / palette / 16-bit / CMYK, one kind per digit in turn), and also the photos
with ``?preprocess=none`` (the naive resize). It compares with the offline accuracy in the
model's ``metadata.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from benchmarks.run import ROOT, free_port
from tests.photograph import KINDS, encode_png, photograph


async def classify(url: str, images: list[bytes], concurrency: int, params: dict) -> np.ndarray:
    """Predicted digit per image (-1 where the service answered an error)."""
    out = np.full(len(images), -1, dtype=np.int64)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(images)):
        queue.put_nowait(i)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                r = await client.post("/predict", params=params, files={"file": ("d", images[i])})
                if r.status_code == 200:
                    out[i] = r.json()["digit"]

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def render(digits: np.ndarray, make: Callable[[int, np.ndarray], bytes]) -> list[bytes]:
    return [make(i, d) for i, d in enumerate(digits)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy_over_http", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models/mnist"))
    )
    parser.add_argument("--limit", type=int, default=None, help="first N test digits only")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)

    from training.data import load_mnist
    from training.evaluate import resolve_version_dir

    mnist = load_mnist()
    x, y = mnist.x_test[: args.limit], mnist.y_test[: args.limit]
    meta = json.loads((resolve_version_dir(args.model_dir) / "metadata.json").read_text())

    port = free_port()
    env = {
        **os.environ,
        "MODEL_DIR": str(args.model_dir),
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        rows = []
        pngs = render(x, lambda i, d: encode_png(d))
        photos = render(x, lambda i, d: photograph(d, KINDS[i % len(KINDS)], seed=i))
        for label, images, params in [
            ("MNIST test digits as 28×28 PNG", pngs, {}),
            ("re-photographed (7 kinds, full preprocessing)", photos, {}),
            ("re-photographed, `?preprocess=none`", photos, {"preprocess": "none"}),
        ]:
            t = time.perf_counter()
            predicted = asyncio.run(classify(url, images, args.concurrency, params))
            seconds = time.perf_counter() - t
            acc = float((predicted == y).mean())
            rows.append((label, acc, int((predicted < 0).sum()), seconds))
            if params == {} and images is photos:
                kinds = np.arange(len(y)) % len(KINDS)
                by_kind = {
                    k: float((predicted == y)[kinds == i].mean()) for i, k in enumerate(KINDS)
                }
            print(f"{label}: {acc:.4f} ({seconds:.0f} s)", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print(
        f"\nmodel {meta['version']} ({meta['arch']}), offline test accuracy {meta['test_accuracy']:.4f}, "
        f"{len(y)} digits over HTTP\n"
    )
    print("| input | accuracy | errors | seconds |\n|---|---:|---:|---:|")
    for label, acc, errors, seconds in rows:
        print(f"| {label} | {acc:.2%} | {errors} | {seconds:.0f} |")
    print("\nre-photographed, by kind: " + ", ".join(f"{k} {v:.2%}" for k, v in by_kind.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
