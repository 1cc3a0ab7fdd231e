"""Imaging: upload bytes -> the model's 28x28 input, in one direction.

``decode`` (bytes -> greyscale pixels, the hostile-input half) -> ``normalize`` (greyscale ->
the MNIST frame, with ``lighting`` and ``strokes``) or ``segment`` (a number -> its digits,
each normalised the same way); ``prepare`` is the one entry the service calls. ``errors``
says why an upload has no digit, without knowing HTTP; ``encode`` turns the model's view back
into a PNG.
"""
