"""``<root>/<n>/``: what a model directory holds and which version is the one to serve.

TensorFlow Serving's layout: numbered version directories under one root, the highest number
newest. An exporter builds a version in a hidden ``.staging-*`` sibling and renames it into
place when complete, so a name that is a positive integer is a published, whole version.
"""

from __future__ import annotations

import re
from pathlib import Path

SAVED_MODEL_FILE = "saved_model.pb"
METADATA_FILE = "metadata.json"
TFLITE_FILE = "model.tflite"
CHECK_FILE = "tflite_check.npz"
REPORT_DIR = "report"
STAGING_PREFIX = ".staging-"

# Positive integers without leading zeros: "01" and "0" are not versions, so two names can never
# mean the same number.
_VERSION_NAME = re.compile(r"[1-9][0-9]*")


class NoModelFound(LookupError):  # noqa: N818 - reads as what it reports
    """Nothing to load under a root; the message says what was looked for."""


def is_version_name(name: str) -> bool:
    return _VERSION_NAME.fullmatch(name) is not None


def versions(root: Path) -> list[Path]:
    """Published version directories under ``root``, oldest first; none if it is not a dir."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if is_version_name(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name))


def latest_version(root: Path, marker: str = SAVED_MODEL_FILE) -> Path:
    """The directory to load: ``root`` itself if it holds ``marker``, else its newest ``<n>/``.

    The newest version is chosen even if an older one would load: falling back silently would
    serve a model nobody asked for. Raises NoModelFound when there is nothing to load.
    """
    if (root / marker).is_file():
        return root
    if not root.exists():
        raise NoModelFound(f"No model found: {root} does not exist.")
    if not root.is_dir():
        raise NoModelFound(f"No model found: {root} is not a directory.")
    found = versions(root)
    if not found:
        raise NoModelFound(
            f"No model found in {root}: expected version directories like {root / '1' / marker}."
        )
    return found[-1]


def next_version(root: Path) -> int:
    """The number the next export publishes as (1 for an empty or missing root)."""
    found = versions(root)
    return int(found[-1].name) + 1 if found else 1
