"""Why an upload could not become a digit: a reason and a sentence, nothing about HTTP.

Imaging raises these; the API layer alone maps a reason to a status (``app.api.handlers``).
The names read as what went wrong (``NoDigitFound``), not as ``...Error``: they are the words
the API's error responses use.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """What went wrong, for the API's status table and for logs."""

    invalid_image = "invalid_image"
    unsupported_media_type = "unsupported_media_type"
    image_too_large = "image_too_large"
    no_digit_found = "no_digit_found"


class ImageError(Exception):
    """Base class: ``reason`` says what went wrong, ``detail`` is safe to show the client."""

    reason: Reason = Reason.invalid_image
    default_detail: str = "The upload could not be used as an image."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class InvalidImage(ImageError):  # noqa: N818 - the service's vocabulary
    """Empty, truncated, corrupt, or not an image format we recognise."""

    reason = Reason.invalid_image
    default_detail = "The upload is not a readable image."


class UnsupportedMediaType(ImageError):  # noqa: N818 - the service's vocabulary
    """A recognisable document that is not a raster image: SVG, PDF, HTML, plain text."""

    reason = Reason.unsupported_media_type
    default_detail = "Only raster images are accepted: PNG, JPEG, WebP, BMP, GIF or TIFF."


class ImageTooLarge(ImageError):  # noqa: N818 - the service's vocabulary
    """More pixels than we are willing to decode: a decompression bomb or a huge scan.

    Frames are not counted: only the first frame of an animation or multi-page file is ever
    decoded, so a long one costs no more than a still.
    """

    reason = Reason.image_too_large
    default_detail = "The image has too many pixels."


class NoDigitFound(ImageError):  # noqa: N818 - the service's vocabulary
    """The image decoded fine but holds nothing that looks like ink: a blank page, a flat colour."""

    reason = Reason.no_digit_found
    default_detail = "No digit found in the image."
