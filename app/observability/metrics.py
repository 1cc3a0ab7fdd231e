"""The service's Prometheus collectors and their text exposition.

Each app gets its own ``CollectorRegistry`` (no process-global metrics), so tests can build
many apps in one process and ``/metrics`` shows exactly one app's numbers. With several uvicorn
workers, ``PROMETHEUS_MULTIPROC_DIR`` switches on prometheus_client's own multiprocess mode:
every worker's values go to files there and ``/metrics`` reads them all (``exposition``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.verdicts import Judgement, Verdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
NUMBER_LENGTH_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20)


class Metrics:
    """The service's Prometheus collectors, registered on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status code.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mnist_predictions_total",
            "Images classified, by verdict and digit (the best guess; `none` for not_a_digit).",
            ("digit", "verdict"),
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mnist_model_info",
            "The served model: 1 for the loaded version.",
            ("version", "arch"),
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.model_ready = Gauge(
            "mnist_model_ready",
            "1 once the model is loaded and warmed up, 0 before and while shutting down.",
            registry=self.registry,
            multiprocess_mode="livemin",  # with several workers: 1 when every live one is ready
        )
        self.batch_size = Histogram(
            "mnist_inference_batch_size",
            "Images per model call (dynamic batching).",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_latency = Histogram(
            "mnist_inference_batch_duration_seconds",
            "Duration of one model call on the worker thread.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queued = Gauge(
            "mnist_inference_queued_images",
            "Images waiting for a model call.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "mnist_inference_rejected_total",
            "Requests refused with 503 because the inference queue was full.",
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # Children created up front so every series is exported, at 0, before its first hit,
        # and a prediction costs a dict lookup, not labels(): 10 digits x {digit, uncertain},
        # and one `none` each for not_a_digit and several_digits (which name no digit).
        self._predictions: dict[tuple[Verdict, int | None], Any] = {
            (verdict, digit): self.predictions.labels(digit=str(digit), verdict=verdict.value)
            for verdict in (Verdict.digit, Verdict.uncertain)
            for digit in range(10)
        }
        for verdict in (Verdict.not_a_digit, Verdict.several_digits):
            self._predictions[verdict, None] = self.predictions.labels(
                digit="none", verdict=verdict.value
            )
        self.numbers = Counter(
            "mnist_numbers_total",
            "Numbers read by POST /read, by verdict (number, uncertain, no_number).",
            ("verdict",),
            registry=self.registry,
        )
        self.number_digits = Histogram(
            "mnist_number_digits",
            "Digits read per POST /read.",
            buckets=NUMBER_LENGTH_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # ``labels()`` takes a lock and builds its key on every call; the children are kept.
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = self.requests.labels(*labels), self.latency.labels(*labels)
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_predictions(self, judgements: Iterable[Judgement]) -> None:
        for judged in judgements:
            self._predictions[judged.verdict, judged.digit].inc()

    def count_number(self, verdict: str, digits: int) -> None:
        self.numbers.labels(verdict=verdict).inc()
        self.number_digits.observe(digits)

    def observe_batch(self, images: int, seconds: float) -> None:
        self.batch_size.observe(images)
        self.batch_latency.observe(seconds)

    def set_model(self, version: str, arch: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version, arch=arch).set(1)

    def exposition(self, multiprocess_dir: Path | None) -> bytes:
        """The text format: this registry's, or every worker's from ``multiprocess_dir``."""
        if multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=str(multiprocess_dir))
        return generate_latest(merged)
