"""Reading whole numbers through the real service: photos of MNIST test numbers posted to ``/read``.

``python -m benchmarks.numbers_over_http`` starts the service on the newest model (or uses
``--url``) and posts photos of handwritten numbers drawn by ``digit_photos.numbers`` from the
MNIST *test* digits, ``--per-kind`` of each kind, the lengths in turn:

- separated digits (gaps of 0.17-0.6 digit heights), 2-6 digits, on plain paper;
- the same numbers in the same frames on notebook paper (ruled or squared, slight perspective),
  and with a shadow across the page, so the three rows compare;
- touching digits (strokes slid together until they merge), 2-4 digits, plain paper;
- overlapping digits (ink boxes overlapping by 0.12-0.25 heights), 2-4 digits, plain paper;
- longer numbers, 7-10 separated digits, plain paper.

It reports, per kind and per length: the exact-number accuracy (the answer's ``number`` is the
text), the reading accuracy (the digits' best guesses, left to right, are the text, whatever
the verdict), the length accuracy (as many digits found as written), the per-digit accuracy
(a written digit counts as read when a found digit's box overlaps its ink box, IoU ≥ 0.3, one to
one, and its best guess is right), how often each verdict came, and the reading accuracy
against coverage when a number is accepted only if its least confident digit reaches a
threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.accuracy_over_http import QUIET
from digit_photos.numbers import NumberPhoto, number_digits, number_photo
from service_harness.process import serving

# Numbers: a seed range per group of numbers, apart from every other benchmark seed.
NUMBERS_SEED = 20_000_000
MATCH_IOU = 0.3
THRESHOLDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Kind:
    name: str
    spacing: str
    paper: str
    lengths: tuple[int, ...]
    group: int  # kinds in one group get the same numbers (digits and seeds)


KINDS: tuple[Kind, ...] = (
    Kind("separated, plain, 2-6", "separated", "plain", (2, 3, 4, 5, 6), 0),
    Kind("separated, notebook, 2-6", "separated", "notebook", (2, 3, 4, 5, 6), 0),
    Kind("separated, notebook + shadow, 2-6", "separated", "notebook_shadow", (2, 3, 4, 5, 6), 0),
    Kind("touching, plain, 2-4", "touching", "plain", (2, 3, 4), 1),
    Kind("overlapping, plain, 2-4", "overlapping", "plain", (2, 3, 4), 2),
    Kind("separated, plain, 7-10", "separated", "plain", (7, 8, 9, 10), 3),
)


def number_seed(kind: Kind, i: int) -> int:
    return NUMBERS_SEED + 1_000_000 * kind.group + i


def _render_chunk(job: tuple[str, str, list[tuple[int, np.ndarray, list[int]]]]) -> list:
    spacing, paper, items = job
    return [number_photo(digits, labels, spacing, paper, seed) for seed, digits, labels in items]


def render_kind(kind: Kind, count: int, images: np.ndarray, labels: np.ndarray) -> list:
    """``count`` photos of ``kind``, rendered on every core."""
    items = []
    for i in range(count):
        seed = number_seed(kind, i)
        length = kind.lengths[i % len(kind.lengths)]
        digits, drawn = number_digits(np.random.default_rng(seed), images, labels, length)
        items.append((seed, digits, drawn))
    chunk = 25
    jobs = [(kind.spacing, kind.paper, items[i : i + chunk]) for i in range(0, count, chunk)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [photo for photos in pool.map(_render_chunk, jobs) for photo in photos]


# --- scoring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """What one answer got right about one photo."""

    status: int
    verdict: str  # "number" / "uncertain" / "no_number", or "error"
    length: int  # digits written
    exact: bool  # the answer's ``number`` is the text
    reading: bool  # the digits' best guesses, left to right, are the text
    length_right: bool  # as many digits found as written
    digits_right: int  # written digits matched by box to a found digit with the right guess
    min_confidence: float  # of the digits found; 0 when none


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def match(true_boxes: Sequence[Box], found_boxes: Sequence[Box]) -> dict[int, int]:
    """Written digit -> found digit, one to one, greedily by IoU (at least ``MATCH_IOU``)."""
    pairs = sorted(
        ((iou(t, f), i, j) for i, t in enumerate(true_boxes) for j, f in enumerate(found_boxes)),
        reverse=True,
    )
    matched: dict[int, int] = {}
    used: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < MATCH_IOU:
            break
        if i not in matched and j not in used:
            matched[i] = j
            used.add(j)
    return matched


def _box(found: dict[str, Any]) -> Box:
    b = found["box"]
    return (b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"])


def score(photo: NumberPhoto, status: int, body: dict[str, Any] | None) -> Score:
    """Score one ``/read`` answer (``body``, the JSON; None on an error) against ``photo``."""
    n = len(photo.text)
    if status != 200 or body is None:
        return Score(status, "error", n, False, False, False, 0, 0.0)
    found = sorted(body.get("digits") or [], key=lambda d: d["box"]["x"])
    guesses = [int(d["best_guess"]) for d in found]
    matched = match(photo.boxes, [_box(d) for d in found])
    right = sum(guesses[j] == int(photo.text[i]) for i, j in matched.items())
    reading = "".join(map(str, guesses))
    return Score(
        status=status,
        verdict=str(body.get("verdict")),
        length=n,
        exact=body.get("number") == photo.text,
        reading=reading == photo.text,
        length_right=len(found) == n,
        digits_right=right,
        min_confidence=min((float(d["confidence"]) for d in found), default=0.0),
    )


def summary(scores: Sequence[Score]) -> dict[str, float]:
    """One row of figures over ``scores``."""
    if not scores:
        return {"photos": 0}
    exact = np.array([s.exact for s in scores])
    number = np.array([s.verdict == "number" for s in scores])
    return {
        "photos": len(scores),
        "exact": float(exact.mean()),
        "reading": float(np.mean([s.reading for s in scores])),
        "length": float(np.mean([s.length_right for s in scores])),
        "per_digit": sum(s.digits_right for s in scores) / sum(s.length for s in scores),
        "number": float(number.mean()),
        "uncertain": float(np.mean([s.verdict == "uncertain" for s in scores])),
        "no_number": float(np.mean([s.verdict == "no_number" for s in scores])),
        "errors": float(np.mean([s.verdict == "error" for s in scores])),
        "exact_among_number": float(exact[number].mean()) if number.any() else float("nan"),
        "confidently_wrong": float((number & ~exact).mean()),
    }


def coverage_curve(
    scores: Sequence[Score], thresholds: Sequence[float] = THRESHOLDS
) -> dict[str, dict[str, float]]:
    """Accept a number when its least confident digit reaches t: coverage and accuracy."""
    confidence = np.array([s.min_confidence for s in scores])
    reading = np.array([s.reading for s in scores])
    ok = np.array([s.verdict != "error" for s in scores])
    curve = {}
    for t in thresholds:
        accepted = ok & (confidence >= t)
        curve[f"{t:g}"] = {
            "coverage": float(accepted.mean()) if len(scores) else 0.0,
            "accuracy": float(reading[accepted].mean()) if accepted.any() else float("nan"),
        }
    number = np.array([s.verdict == "number" for s in scores])
    curve["verdict number"] = {
        "coverage": float(number.mean()) if len(scores) else 0.0,
        "accuracy": float(reading[number].mean()) if number.any() else float("nan"),
    }
    return curve


# --- over HTTP ------------------------------------------------------------------------------


async def read_all(url: str, photos: Sequence[NumberPhoto], concurrency: int) -> list[Score]:
    scores: list[Score | None] = [None] * len(photos)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(photos)):
        queue.put_nowait(i)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                photo = photos[i]
                name, kind = (
                    ("n.png", "image/png") if photo.format == "png" else ("n.jpg", "image/jpeg")
                )
                try:
                    r = await client.post("/read", files={"file": (name, photo.data, kind)})
                except httpx.HTTPError:
                    scores[i] = score(photo, 0, None)
                    continue
                body = r.json() if r.status_code == 200 else None
                scores[i] = score(photo, r.status_code, body)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [s for s in scores if s is not None]


def _pct(value: float) -> str:
    return "–" if value != value else f"{value:.1%}"  # NaN: nothing to measure


def print_tables(results: dict[str, Any]) -> None:
    kinds = results["kinds"]
    print(
        "\n| kind | photos | exact number | reading (best guesses) | length | per digit "
        "| `number` | `uncertain` | `no_number` | errors | exact among `number` "
        "| confidently wrong | photos/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in kinds.items():
        s = r["all"]
        print(
            f"| {name} | {s['photos']} | {_pct(s['exact'])} | {_pct(s['reading'])} | "
            f"{_pct(s['length'])} | {_pct(s['per_digit'])} | {_pct(s['number'])} | "
            f"{_pct(s['uncertain'])} | {_pct(s['no_number'])} | {_pct(s['errors'])} | "
            f"{_pct(s['exact_among_number'])} | {_pct(s['confidently_wrong'])} | "
            f"{r['photos_per_s']:.1f} |"
        )
    lengths = sorted({int(n) for r in kinds.values() for n in r["by_length"]})
    for metric, title in (("exact", "exact-number accuracy"), ("per_digit", "per-digit accuracy")):
        print(f"\n| {title} by length | " + " | ".join(map(str, lengths)) + " |")
        print("|---|" + "---:|" * len(lengths))
        for name, r in kinds.items():
            cells = [
                _pct(r["by_length"][str(n)][metric]) if str(n) in r["by_length"] else ""
                for n in lengths
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        "\n| accept when every digit's confidence ≥ t: coverage / reading accuracy | "
        + " | ".join(kinds)
        + " |"
    )
    print("|---|" + "---:|" * len(kinds))
    for t in next(iter(kinds.values()))["coverage"]:
        cells = [
            f"{_pct(r['coverage'][t]['coverage'])} / {_pct(r['coverage'][t]['accuracy'])}"
            for r in kinds.values()
        ]
        label = t if t == "verdict number" else f"t = {t}"
        print(f"| {label} | " + " | ".join(cells) + " |")


def evaluate(scores: Sequence[Score]) -> dict[str, Any]:
    by_length = {
        str(n): summary([s for s in scores if s.length == n])
        for n in sorted({s.length for s in scores})
    }
    return {"all": summary(scores), "by_length": by_length, "coverage": coverage_curve(scores)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.numbers_over_http", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models/mnist"))
    )
    parser.add_argument(
        "--url", default=None, help="a service already running there (default: start one)"
    )
    parser.add_argument("--per-kind", type=int, default=200, help="photos per kind")
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=None,
        metavar="N",
        help="only these kinds, by number: "
        + "; ".join(f"{i}: {k.name}" for i, k in enumerate(KINDS)),
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    kinds = [KINDS[int(i)] for i in args.kinds] if args.kinds else list(KINDS)

    from training.data import load_mnist

    mnist = load_mnist()
    results: dict[str, Any] = {"per_kind": args.per_kind, "kinds": {}}
    with ExitStack() as stack:
        url = args.url
        if url is None:
            url = stack.enter_context(serving(args.model_dir, settings=QUIET)).url
        probe = httpx.post(f"{url}/read", files={"file": ("x.png", b"")}, timeout=60)
        if probe.status_code in (404, 405):
            print(f"{url}/read answers {probe.status_code}: this service has no POST /read")
            return 1
        for kind in kinds:
            t = time.perf_counter()
            photos = render_kind(kind, args.per_kind, mnist.x_test, mnist.y_test)
            rendered = time.perf_counter() - t
            t = time.perf_counter()
            scores = asyncio.run(read_all(url, photos, args.concurrency))
            seconds = time.perf_counter() - t
            results["kinds"][kind.name] = {
                **evaluate(scores),
                "kind": asdict(kind),
                "photos_per_s": len(photos) / seconds,
                "render_seconds": rendered,
            }
            first = results["kinds"][kind.name]["all"]
            print(
                f"{kind.name}: exact {first['exact']:.2%}, per digit {first['per_digit']:.2%} "
                f"({seconds:.0f} s)",
                flush=True,
            )
        health = httpx.get(f"{url}/health/ready", timeout=10)
        results["service"] = health.json() if health.status_code == 200 else {}

    print(
        f"\n{args.per_kind} photos per kind of MNIST test digits; per digit: IoU ≥ {MATCH_IOU} "
        "between a found box and the written digit's ink box, one to one"
    )
    print_tables(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
