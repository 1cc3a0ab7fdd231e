"""The model's view of a digit as a PNG: what ``?include=preprocessed`` sends back."""

from __future__ import annotations

import base64

import cv2
import numpy as np


def to_png_bytes(x: np.ndarray) -> bytes:
    """Encode a (28, 28) or (28, 28, 1) image in [0, 1] as an 8-bit greyscale PNG."""
    pixels = np.asarray(x, dtype=np.float32)
    if pixels.ndim == 3:
        pixels = pixels[..., 0]
    gray = np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", gray)
    if not ok:
        raise ValueError(f"could not encode an array of shape {x.shape} as PNG")
    return encoded.tobytes()


def png_base64(image: np.ndarray) -> str:
    return base64.b64encode(to_png_bytes(image)).decode("ascii")
