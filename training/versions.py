"""Version numbering of ``<root>/<n>/``; no TensorFlow here, so ``--if-missing`` answers at once."""

from __future__ import annotations

from pathlib import Path


def existing_versions(root: Path) -> list[int]:
    """Published versions, ascending; hidden staging directories are not versions."""
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(root: Path) -> int:
    versions = existing_versions(root)
    return (versions[-1] + 1) if versions else 1
