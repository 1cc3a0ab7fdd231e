"""Accuracy and verdicts through the real service: digits and non-digits posted to ``/predict``.

``python -m benchmarks.accuracy_over_http`` (``make accuracy``) starts the service on the newest
model and posts:

- the 10,000 MNIST test digits as 28×28 PNGs;
- the same digits re-photographed by ``digit_photos`` (dark ink on uneven paper,
  off-centre, scaled, JPEG / PNG / transparent canvas / EXIF-rotated / palette / 16-bit / CMYK,
  one kind per digit in turn), and those photos with ``?preprocess=none`` (the naive resize);
- the first ``--notebook`` test digits (1,000 by default) written on notebook paper by
  ``digit_photos.notebook`` (ruled or squared, blue or black pens from hairline to marker,
  slight perspective, JPEG), with no shadow, a soft-edged and a hard-edged shadow, in two
  styles: ``tuned``, the photos the normaliser was developed against, and ``check``, drawn
  from other ranges, colours, papers and shadow shapes, which it never was;
- non-digits drawn by the *held-out* generators of ``training.negatives`` (kinds of letters,
  words, shapes, doodles, photo crops and noise the network never trained on), with a seed of
  their own, as photographed pages.

For the digits it reports accuracy, how often each verdict came, accuracy among the answers
whose verdict is ``digit``, the share that were confidently wrong (verdict ``digit`` and wrong),
and the calibration (ECE, 15 bins) of the served probabilities; for the non-digits, how often
each kind was turned away. It compares with the offline figures in the model's metadata.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from contract import METADATA_FILE
from digit_photos import KINDS, encode_png, photograph
from digit_photos.notebook import NOTEBOOK_KINDS, SHADOW_OF_KIND, STYLES, notebook_photo
from service_harness.process import serving

# The benchmark's own non-digits: the held-out generators, with a seed that neither training
# nor the choice of operating points used.
NEGATIVES_SEED = 7_000_000
# Notebook photos: a seed range per style and kind, apart from every other seed used here.
NOTEBOOK_SEED = 10_000_000


def notebook_seed(style: str, kind: str, i: int) -> int:
    return (
        NOTEBOOK_SEED * (1 + list(STYLES).index(style)) + 1_000_000 * NOTEBOOK_KINDS.index(kind) + i
    )


def _notebook_chunk(job: tuple[str, str, int, np.ndarray]) -> list[bytes]:
    style, kind, start, digits = job
    return [
        notebook_photo(
            d, SHADOW_OF_KIND[kind], notebook_seed(style, kind, start + i), style=STYLES[style]
        )
        for i, d in enumerate(digits)
    ]


def notebook_photos(digits: np.ndarray, style: str, kind: str) -> list[bytes]:
    """``digits`` on notebook paper, rendered on every core (a photo takes ~0.1 s)."""
    chunk = 100
    jobs = [(style, kind, i, digits[i : i + chunk]) for i in range(0, len(digits), chunk)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [photo for photos in pool.map(_notebook_chunk, jobs) for photo in photos]


@dataclass
class Answers:
    """What the service said for each image; ``status`` is the HTTP status."""

    status: np.ndarray
    guess: np.ndarray  # best guess (-1 on error)
    verdict: np.ndarray  # "digit" / "uncertain" / "not_a_digit", or "error"
    probabilities: np.ndarray  # (N, 10), zeros on error

    @property
    def ok(self) -> np.ndarray:
        return self.status == 200


async def classify(url: str, images: list[bytes], concurrency: int, params: dict) -> Answers:
    n = len(images)
    answers = Answers(
        status=np.zeros(n, dtype=np.int64),
        guess=np.full(n, -1, dtype=np.int64),
        verdict=np.full(n, "error", dtype=object),
        probabilities=np.zeros((n, 10)),
    )
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                r = await client.post("/predict", params=params, files={"file": ("d", images[i])})
                answers.status[i] = r.status_code
                if r.status_code == 200:
                    body = r.json()
                    answers.guess[i] = body.get("best_guess", body.get("digit"))
                    answers.verdict[i] = body.get("verdict", "digit")
                    answers.probabilities[i] = body["probabilities"]

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


def calibration_row(
    answers: Answers, labels: np.ndarray, temperature: float
) -> dict[str, dict[str, float]]:
    """ECE, NLL, Brier of the served probabilities, and of the same with the temperature undone.

    The service only ever returns calibrated probabilities; undoing the model's temperature
    (softmax(T * log p)) recovers what the network said before calibration.
    """
    from training.calibrate import apply_temperature, calibration_metrics

    ok = answers.ok
    served, y = answers.probabilities[ok], labels[ok]
    return {
        "before": calibration_metrics(apply_temperature(served, 1.0 / temperature), y),
        "after": calibration_metrics(served, y),
    }


def digit_row(answers: Answers, labels: np.ndarray) -> dict[str, float]:
    from training.calibrate import expected_calibration_error

    right = answers.guess == labels
    digit = answers.verdict == "digit"
    ok = answers.ok
    return {
        "accuracy": float(right.mean()),
        "digit": float(digit.mean()),
        "uncertain": float((answers.verdict == "uncertain").mean()),
        "not_a_digit": float((answers.verdict == "not_a_digit").mean()),
        "several_digits": float((answers.verdict == "several_digits").mean()),
        "errors": float((~ok).mean()),
        "accuracy_among_digit": float(right[digit].mean()) if digit.any() else 1.0,
        "confidently_wrong": float((digit & ~right).mean()),
        "ece": expected_calibration_error(answers.probabilities[ok], labels[ok])
        if ok.any()
        else float("nan"),
    }


def negative_pages(per_kind: int) -> tuple[list[bytes], np.ndarray]:
    from training.negatives import available_held_out_kinds, render_ink, to_page

    pages, kinds = [], []
    for kind in available_held_out_kinds():
        for i, ink in enumerate(render_ink(kind, per_kind, NEGATIVES_SEED, held_out=True)):
            buffer = io.BytesIO()
            Image.fromarray(to_page(ink, NEGATIVES_SEED + i)).save(buffer, "PNG")
            pages.append(buffer.getvalue())
            kinds.append(kind)
    return pages, np.array(kinds, dtype=object)


def render(digits: np.ndarray, make: Callable[[int, np.ndarray], bytes]) -> list[bytes]:
    return [make(i, d) for i, d in enumerate(digits)]


# The service as these benchmarks run it: one line per request would only slow it down.
QUIET = {"ACCESS_LOG": "false", "LOG_LEVEL": "WARNING"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy_over_http", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models/mnist"))
    )
    parser.add_argument("--limit", type=int, default=None, help="first N test digits only")
    parser.add_argument("--negatives", type=int, default=500, help="non-digits per kind")
    parser.add_argument(
        "--notebook", type=int, default=1000, help="notebook photos per style and kind (0: none)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    from training.data import load_mnist
    from training.evaluate import resolve_version_dir

    mnist = load_mnist()
    x, y = mnist.x_test[: args.limit], mnist.y_test[: args.limit]
    meta = json.loads((resolve_version_dir(args.model_dir) / METADATA_FILE).read_text())

    temperature = float(meta.get("calibration", {}).get("temperature", 1.0))
    digits: dict[str, dict[str, float]] = {}
    calibration: dict[str, dict[str, dict[str, float]]] = {}
    with serving(args.model_dir, settings=QUIET) as service:
        url = service.url
        pngs = render(x, lambda i, d: encode_png(d))
        photos = render(x, lambda i, d: photograph(d, KINDS[i % len(KINDS)], seed=i))
        for label, images, params in [
            ("MNIST test digits as 28×28 PNG", pngs, {}),
            ("re-photographed (7 kinds, full preprocessing)", photos, {}),
            ("re-photographed, `?preprocess=none`", photos, {"preprocess": "none"}),
        ]:
            t = time.perf_counter()
            answers = asyncio.run(classify(url, images, args.concurrency, params))
            digits[label] = {**digit_row(answers, y), "seconds": time.perf_counter() - t}
            if params == {}:
                calibration[label] = calibration_row(answers, y, temperature)
            if params == {} and images is photos:
                kinds = np.arange(len(y)) % len(KINDS)
                by_kind = {
                    k: float((answers.guess == y)[kinds == i].mean()) for i, k in enumerate(KINDS)
                }
            print(f"{label}: {digits[label]['accuracy']:.4f}", flush=True)

        notebook: dict[str, dict[str, float]] = {}
        n_notebook = min(args.notebook, len(y))
        for style in STYLES if n_notebook else ():
            for kind in NOTEBOOK_KINDS:
                images = notebook_photos(x[:n_notebook], style, kind)
                t = time.perf_counter()
                answers = asyncio.run(classify(url, images, args.concurrency, {}))
                label = f"{style}/{kind}"
                notebook[label] = {
                    **digit_row(answers, y[:n_notebook]),
                    "seconds": time.perf_counter() - t,
                }
                print(f"{label}: {notebook[label]['accuracy']:.4f}", flush=True)

        pages, page_kinds = negative_pages(args.negatives)
        answers = asyncio.run(classify(url, pages, args.concurrency, {}))
        negatives: dict[str, dict[str, float]] = {}
        for kind in dict.fromkeys(page_kinds.tolist()):
            m = page_kinds == kind
            confident = answers.probabilities[m].max(axis=1) >= 0.9
            negatives[kind] = {
                "count": int(m.sum()),
                "not_a_digit": float((answers.verdict[m] == "not_a_digit").mean()),
                "no_ink_422": float((answers.status[m] == 422).mean()),
                "turned_away": float(
                    ((answers.verdict[m] == "not_a_digit") | (answers.status[m] == 422)).mean()
                ),
                "uncertain": float((answers.verdict[m] == "uncertain").mean()),
                "several_digits": float((answers.verdict[m] == "several_digits").mean()),
                "digit": float((answers.verdict[m] == "digit").mean()),
                "digit_confidence_ge_0.9": float(
                    ((answers.verdict[m] == "digit") & confident).mean()
                ),
            }

    points = meta.get("operating_points", {})
    print(
        f"\nmodel {meta['version']} ({meta['arch']}), offline test accuracy "
        f"{meta['test_accuracy']:.4f}, operating points: not_a_digit below "
        f"{points.get('not_a_digit_below')}, uncertain below {points.get('uncertain_below')}; "
        f"{len(y)} digits over HTTP\n"
    )
    print(
        "| input | accuracy | verdict `digit` | `uncertain` | `not_a_digit` | `several_digits` "
        "| accuracy among `digit` | confidently wrong | ECE |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in digits.items():
        print(
            f"| {label} | {r['accuracy']:.2%} | {r['digit']:.2%} | {r['uncertain']:.2%} | "
            f"{r['not_a_digit']:.2%} | {r['several_digits']:.2%} | "
            f"{r['accuracy_among_digit']:.2%} | "
            f"{r['confidently_wrong']:.2%} | {r['ece']:.4f} |"
        )
    print(f"\n| calibration (temperature {temperature:.3f}) | ECE | equal-mass ECE | NLL | Brier |")
    print("|---|---:|---:|---:|---:|")
    for label, row in calibration.items():
        for when, m in row.items():
            print(
                f"| {label}, {when} | {m['ece']:.4f} | {m['ece_equal_mass']:.4f} | "
                f"{m['nll']:.4f} | {m['brier']:.4f} |"
            )
    print("\nre-photographed, by kind: " + ", ".join(f"{k} {v:.2%}" for k, v in by_kind.items()))
    if notebook:
        print(
            f"\n| notebook photos ({n_notebook} test digits each) | accuracy | verdict `digit` "
            "| `uncertain` | `not_a_digit` | `several_digits` | errors (422 no ink) "
            "| confidently wrong |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for label, r in notebook.items():
            print(
                f"| {label} | {r['accuracy']:.2%} | {r['digit']:.2%} | {r['uncertain']:.2%} | "
                f"{r['not_a_digit']:.2%} | {r['several_digits']:.2%} | {r['errors']:.2%} | "
                f"{r['confidently_wrong']:.2%} |"
            )
    print(
        "\n| non-digits (held-out generators) | images | turned away | `not_a_digit` "
        "| 422 no ink | `uncertain` | `several_digits` | `digit` | `digit` at confidence ≥ 0.9 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, r in negatives.items():
        print(
            f"| {kind} | {r['count']} | {r['turned_away']:.1%} | {r['not_a_digit']:.1%} | "
            f"{r['no_ink_422']:.1%} | {r['uncertain']:.1%} | {r['several_digits']:.1%} | "
            f"{r['digit']:.1%} | {r['digit_confidence_ge_0.9']:.1%} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "digits": digits,
                    "calibration": calibration,
                    "by_kind": by_kind,
                    "notebook": notebook,
                    "negatives": negatives,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
