"""Why /predict reads its multipart body itself: the three ways to get the file out of it.

Run from the repository root: ``python -m benchmarks.bench_multipart [--rounds N]``. The same
request (one MNIST digit as a PNG, framed as httpx frames it) goes through, in interleaved
rounds so that background load hits all three alike:

- ``starlette_form``: what a ``File()`` parameter costs before FastAPI's form validation:
  Starlette's ``Request.form()``, which spools every part into an ``UploadFile``;
- ``python_multipart``: ``app.api.uploads.read_uploads`` with the one-pass split switched off,
  so the body goes through python-multipart's streaming parser and our callbacks;
- ``one_pass``: ``read_uploads`` as the service runs it (``split_plain_body``).

The figure is the median over rounds of the mean microseconds per request within a round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
from starlette.requests import Request

from app.api import uploads
from digit_photos import encode_png

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "mnist_sample.npz"


def framed_request() -> tuple[bytes, str]:
    """One digit PNG as a multipart body, and its Content-Type, exactly as httpx sends them."""
    with np.load(SAMPLE) as sample:
        png = encode_png(sample["x_test"][0])
    request = httpx.Request("POST", "http://x/predict", files={"file": ("d.png", png)})
    return request.read(), request.headers["content-type"]


def asgi_request(body: bytes, content_type: str) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", content_type.encode())],
        "query_string": b"",
    }
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


async def starlette_form(body: bytes, content_type: str) -> None:
    form = await asgi_request(body, content_type).form()
    await form["file"].read()  # type: ignore[union-attr]
    await form.close()


async def one_pass(body: bytes, content_type: str) -> None:
    await uploads.read_uploads(
        asgi_request(body, content_type), "file", max_files=1, too_many_files="one"
    )


async def python_multipart(body: bytes, content_type: str) -> None:
    split = uploads.split_plain_body
    uploads.split_plain_body = lambda body, boundary: None  # type: ignore[assignment]
    try:
        await one_pass(body, content_type)
    finally:
        uploads.split_plain_body = split  # type: ignore[assignment]


WAYS: dict[str, Callable[[bytes, str], Awaitable[None]]] = {
    "starlette_form": starlette_form,
    "python_multipart": python_multipart,
    "one_pass": one_pass,
}


async def per_request_us(way: Callable[[bytes, str], Awaitable[None]], n: int) -> float:
    body, content_type = framed_request()
    start = time.perf_counter()
    for _ in range(n):
        await way(body, content_type)
    return (time.perf_counter() - start) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000, help="per way per round")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in WAYS}
    for _ in range(args.rounds):
        for name, way in WAYS.items():
            times[name].append(asyncio.run(per_request_us(way, args.requests)))
    best = statistics.median(times["one_pass"])
    print("| way | µs per request (median) | × one pass |")
    print("|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / best:.1f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
