"""Write the seed corpus in fuzz/corpus: one small file per format and mode an upload may use.

Each seed starts with the harness's route byte (0x01: ?preprocess=full, 0x00: none) followed by
the file. Run once; the files are kept in the repo (a few KB in all).

    .venv/bin/python fuzz/make_corpus.py
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

CORPUS = Path(__file__).parent / "corpus"
SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "mnist_sample.npz"


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def main() -> None:
    with np.load(SAMPLE) as sample:
        digit = sample["x_test"][0]
    grey = Image.fromarray(digit)
    paper = Image.fromarray(255 - np.pad(digit, 10, constant_values=0))  # dark on light, 48x48
    rgb = Image.merge("RGB", (paper, paper, paper.point(lambda v: v * 0.9)))
    rgba = Image.merge("RGBA", (*Image.new("RGB", grey.size).split(), grey))  # canvas export
    sixteen = Image.fromarray(digit.astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    seeds = {
        "mnist.png": encode(grey, "PNG"),
        "paper-rgb.png": encode(rgb, "PNG"),
        "canvas-rgba.png": encode(rgba, "PNG"),
        "palette-transparent.png": encode(rgb.quantize(8), "PNG", transparency=0),
        "grey16.png": encode(sixteen, "PNG"),
        "bilevel.png": encode(grey.convert("1"), "PNG"),
        "paper.jpg": encode(rgb, "JPEG", quality=70),
        "rotated-exif.jpg": encode(rgb, "JPEG", quality=70, exif=exif.tobytes()),
        "cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG", quality=70),
        "digit.gif": encode(grey, "GIF"),
        "digit.bmp": encode(grey, "BMP"),
        "digit.tif": encode(grey, "TIFF"),
        "digit-la.tif": encode(Image.merge("LA", (grey, grey)), "TIFF", compression="tiff_lzw"),
        "lossless.webp": encode(grey, "WEBP", lossless=True),
        "lossy.webp": encode(rgb, "WEBP", quality=50),
    }
    CORPUS.mkdir(exist_ok=True)
    for name, data in seeds.items():
        (CORPUS / name).write_bytes(b"\x01" + data)
    (CORPUS / "naive-mnist.png").write_bytes(b"\x00" + seeds["mnist.png"])
    total = sum(p.stat().st_size for p in CORPUS.iterdir())
    print(f"{len(seeds) + 1} seeds, {total:,} bytes in {CORPUS}")


if __name__ == "__main__":
    main()
