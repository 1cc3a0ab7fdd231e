"""The page's local brightness, and ink as the fraction of it that a pen took away.

A photographed page is reflectance times illumination. Illumination is smooth except where a
shadow's edge crosses the page, and there it steps from one level to another within a pixel
or two. Any smooth model of the lighting (a fitted surface, a wide blur) smears such a step
over tens of pixels, and the dark side of it then looks like ink. A morphological closing
does not: it removes every dark feature narrower than its kernel (pen strokes, printed
lines) and keeps every brightness level that extends further (the lit page, the shaded
page, the step between them, exactly where it is). Dividing by that background turns ink
into the fraction of the local light it absorbs, which is the same in the shade as in the
sun, so one threshold fits both sides of a shadow.
"""

from __future__ import annotations

import cv2
import numpy as np

# Below this fraction of the page's typical brightness the background is treated as this dark,
# so a nearly black region (deep shade, the desk beyond the page) does not turn its sensor
# noise into strong relative contrast.
DARK_FLOOR = 0.25
# A pixel belongs to a shadow (not to ink) when its brightness is within this fraction of the
# shadow's: noise and JPEG blocks stay inside it, any pen's ink is far outside.
SHADOW_TOLERANCE = 0.12
# Pixels the shadow's level advances per flooding step.
SHADOW_STEP = 3


def odd(size: float) -> int:
    """The odd integer nearest ``size``, at least 3: a kernel with a centre pixel."""
    return max(3, int(size) // 2 * 2 + 1)


def background(gray: np.ndarray, polarity: float, kernel: int) -> np.ndarray:
    """uint8 page brightness under ``gray`` with every ink stroke narrower than ``kernel`` removed.

    ``polarity`` is -1 for dark ink on a light page (a closing lifts the strokes to the page
    around them) and +1 for light ink on a dark page (an opening pulls them down). A square
    kernel keeps the filter separable, so its cost grows only linearly with its size.
    """
    element = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel, kernel))
    operation = cv2.MORPH_CLOSE if polarity < 0 else cv2.MORPH_OPEN
    return cv2.morphologyEx(gray, operation, element)


def follow_shadows(gray: np.ndarray, page: np.ndarray, reach: int, wider_than: int) -> np.ndarray:
    """``page`` (a closing of ``gray``) corrected where a shaded area narrows to a point.

    A closing lifts every dark feature narrower than its kernel, including the tip of a
    shadow's corner, which then looks like a wedge of ink. What tells the tip from a stroke
    is that it is continuous with the rest of the shadow at the same brightness: so the
    shadow's level is flooded, a few pixels per step and up to ``reach`` pixels, into every
    pixel whose own brightness matches it within SHADOW_TOLERANCE. Ink is much darker than
    the page it lies on, shaded or not; a stroke that happens to match the shadow's level is
    still only a stroke wide, and the flood only enters areas wider than ``wider_than``.
    """
    page = page.copy()
    element = np.ones((2 * SHADOW_STEP + 1,) * 2, np.uint8)
    wide = np.ones((wider_than, wider_than), np.uint8) if wider_than > 1 else None
    for _ in range(-(-reach // SHADOW_STEP)):
        darker = cv2.erode(page, element)
        # Only where the page estimate stands clearly above its neighbours' (a lifted tip),
        # not over the ordinary noise of a closing; on most pages there is no such place.
        lifted = cv2.compare(
            darker, cv2.convertScaleAbs(page, alpha=1 - SHADOW_TOLERANCE), cv2.CMP_LT
        )
        if cv2.countNonZero(lifted) == 0:
            break
        match = cv2.compare(
            cv2.absdiff(gray, darker),
            cv2.convertScaleAbs(darker, alpha=SHADOW_TOLERANCE),
            cv2.CMP_LE,
        )
        if wide is not None:
            match = cv2.morphologyEx(match, cv2.MORPH_OPEN, wide)
        flood = cv2.bitwise_and(match, lifted)
        if cv2.countNonZero(flood) == 0:
            break
        cv2.copyTo(darker, flood, page)
    return page


def flat_field_ink(
    gray: np.ndarray, polarity: float, kernel: int, *, shadow_reach: int = 0, stroke: int = 0
) -> np.ndarray:
    """uint8 ink strength: how far each pixel departs from its local page, on the ink's side.

    Dark ink is measured relative to the page's local brightness (255 = absorbs all the light
    that falls there), so a stroke in the shade is as strong as one in the sun and a shadow's
    edge is no stroke at all. Light ink on a dark page is the plain difference, as a dark
    page's level is mostly sensor offset rather than light that ink could absorb.
    """
    page = background(gray, polarity, kernel)
    if polarity > 0:
        return cv2.subtract(gray, page)
    if shadow_reach:
        page = follow_shadows(gray, page, shadow_reach, stroke)
    typical = float(np.median(page[:: max(1, page.shape[0] // 32), :: max(1, page.shape[1] // 32)]))
    level = np.maximum(page, np.uint8(min(max(round(DARK_FLOOR * typical), 1), 255)))
    return cv2.divide(cv2.subtract(page, gray), level, scale=255)
