"""GET /: the page where a person draws or uploads a digit, and GET /static/<name>: its files.

The page is three hand-written files in ``app/static`` (no build step). They are served by an
explicit route over a fixed list of file names rather than a mounted ``StaticFiles`` app, so the
router works the same whichever FastAPI version includes it, and no path a client sends is
ever joined onto the file system.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES: dict[str, Path] = {
    path.name: path for path in sorted(STATIC_DIR.glob("*")) if path.is_file()
}

# The page only ever talks to the service that served it. The policy makes that a property the
# browser enforces (no CDN, font or analytics request can slip in later), not just a habit.
# ``data:`` images are the model's 28x28 input; ``blob:`` ones the preview of an uploaded photo.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
# Small files that change with each release: always revalidate, never serve a stale script.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["page"], include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    """The drawing page."""
    return FileResponse(STATIC_FILES["index.html"], headers=PAGE_HEADERS)


@router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    """One of the page's files (``app.css``, ``app.js``...) by its name."""
    path = STATIC_FILES.get(name)
    if path is None:
        raise HTTPException(404, f"No static file named {name!r}.")
    return FileResponse(path, headers=PAGE_HEADERS)
