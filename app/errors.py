"""Why an upload could not become a digit, as types that carry their HTTP status.

Preprocessing raises these; the API maps them to responses in one place, so this module
stays free of any web framework. The names read as what went wrong (``NoDigitFound``), not
as ``...Error``: they are the words the API's error responses use.
"""

from __future__ import annotations


class ImageError(Exception):
    """Base class: ``status_code`` is the HTTP status, ``detail`` is safe to show the client."""

    status_code: int = 400
    default_detail: str = "The upload could not be used as an image."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class InvalidImage(ImageError):  # noqa: N818 - the service's vocabulary
    """Empty, truncated, corrupt, or not an image format we recognise."""

    status_code = 400
    default_detail = "The upload is not a readable image."


class UnsupportedMediaType(ImageError):  # noqa: N818 - the service's vocabulary
    """A recognisable document that is not a raster image: SVG, PDF, HTML, plain text."""

    status_code = 415
    default_detail = "Only raster images are accepted: PNG, JPEG, WebP, BMP, GIF or TIFF."


class ImageTooLarge(ImageError):  # noqa: N818 - the service's vocabulary
    """More pixels than we are willing to decode: a decompression bomb or a huge scan.

    Frames are not counted: only the first frame of an animation or multi-page file is ever
    decoded, so a long one costs no more than a still.
    """

    status_code = 413
    default_detail = "The image has too many pixels."


class NoDigitFound(ImageError):  # noqa: N818 - the service's vocabulary
    """The image decoded fine but holds nothing that looks like ink: a blank page, a flat colour."""

    status_code = 422
    default_detail = "No digit found in the image."
