"""KServe's own Python ModelServer doing this service's job: the peer the service is measured by.

``python -m benchmarks.kserve_peer --model-dir models/mnist --http-port 8090`` serves
``POST /v1/models/mnist-image:predict`` (KServe v1 JSON, images as ``{"b64": ...}``) from one
process. It answers with the same preprocessing (``app.imaging.prepare.preprocess_image``) and
the same ``model.tflite`` as the service, so that what a benchmark shows between the two is
what the serving stacks cost, not what the model or the normalisation cost.

It is written the way KServe's own servers (sklearnserver, xgbserver) are: a ``kserve.Model``
whose ``predict`` is a plain function, which KServe calls on its event loop, and one uvicorn
worker. The model runs on the standalone LiteRT runtime rather than TensorFlow, as a KServe
deployment of a ``.tflite`` file would: importing TensorFlow would cost this process about a
second of start-up and several hundred MB it never uses, and flatter the service's RSS.

Logging is reduced to warnings and the per-request access and latency lines are switched off,
as they are for the service under benchmark (``--no-access-log``); with them, each request
writes two lines to stdout and the figure measures the terminal.

``kserve.model_server`` parses ``sys.argv`` with its own flags (``--http_port`` ...) when it
is imported; this module passes every setting to ``ModelServer`` explicitly and its own flags
are spelt differently, so what kserve reads from the command line changes nothing.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import logging
import sys
from pathlib import Path
from typing import Any

import kserve
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from kserve.errors import InvalidInput
from kserve.logging import KSERVE_LOG_CONFIG, configure_logging

from app.imaging.decode import DEFAULT_MAX_PIXELS
from app.imaging.errors import ImageError
from app.imaging.prepare import preprocess_image
from contract import INPUT_NAME, OUTPUT_NAME, SIGNATURE, TFLITE_FILE, NoModelFound, latest_version

MODEL_NAME = "mnist-image"


def resolve_version_dir(model_dir: Path) -> Path:
    """``model_dir`` itself if it holds a model, else its newest numbered version.

    The contract's rule, the service's too, so the harness hands both the same path.
    """
    try:
        return latest_version(model_dir, marker=TFLITE_FILE)
    except NoModelFound as exc:
        raise FileNotFoundError(str(exc)) from exc


class MnistImageModel(kserve.Model):
    """Base64 PNG/JPEG instances in, a digit and ten probabilities per instance out.

    ``predict`` is synchronous, so KServe runs it on the event loop: the interpreter (which
    is not thread-safe) is only ever entered by one thread, and no request waits on a thread
    hop. That is also how KServe's bundled servers call their models.
    """

    def __init__(
        self,
        name: str,
        version_dir: Path,
        *,
        threads: int = 1,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(name)
        self.version_dir = version_dir
        self.threads = threads
        self.max_pixels = max_pixels
        self._runner: Any = None

    def load(self) -> bool:
        """Open the TFLite file, check its signature and run it once.

        The warm-up call makes the first request pay no allocation, so cold start measured
        by the harness (process start to first answer) includes it, as the service's does.
        """
        interpreter = Interpreter(
            model_path=str(self.version_dir / TFLITE_FILE), num_threads=self.threads
        )
        signatures = interpreter.get_signature_list()
        spec = signatures.get(SIGNATURE)
        if spec is None or spec["inputs"] != [INPUT_NAME] or OUTPUT_NAME not in spec["outputs"]:
            raise RuntimeError(
                f"{self.version_dir / TFLITE_FILE}: expected signature {SIGNATURE!r} "
                f"{INPUT_NAME!r} -> {OUTPUT_NAME!r}, found {signatures}"
            )
        self._runner = interpreter.get_signature_runner(SIGNATURE)
        self._infer(np.zeros((1, 28, 28, 1), np.float32))
        self.ready = True
        return self.ready

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        # The signature runner resizes the input to the batch's shape on every call: the
        # service's runner skips that when the size repeats, here it is the stock API.
        return self._runner(**{INPUT_NAME: batch})[OUTPUT_NAME]

    def _decode(self, instance: Any) -> np.ndarray:
        try:
            encoded = instance["image"]["b64"]
            data = base64.b64decode(encoded, validate=True)
        except (KeyError, TypeError) as exc:
            raise InvalidInput('each instance must be {"image": {"b64": "..."}}') from exc
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"image.b64 is not valid base64: {exc}") from exc
        try:
            return preprocess_image(data, max_pixels=self.max_pixels)
        except ImageError as exc:
            raise InvalidInput(exc.detail) from exc

    def predict(  # type: ignore[override]  # kserve's is async; a plain def is allowed and used
        self,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """All instances of a request go to the interpreter as one batch."""
        if not isinstance(payload, dict):  # KServe passes non-JSON content types through as bytes
            raise InvalidInput("send the instances as Content-Type: application/json")
        instances = payload.get("instances")
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('expected {"instances": [...]} with at least one instance')
        batch = np.stack([self._decode(instance) for instance in instances])
        probabilities = self._infer(batch)
        return {
            "predictions": [
                {"digit": int(np.argmax(row)), "probabilities": row.tolist()}
                for row in probabilities
            ]
        }


def configure_quiet_logging(level: str) -> None:
    """KServe's own logging config at ``level``, with uvicorn's access log detached.

    Uvicorn decides per connection whether to log access from ``hasHandlers()`` on
    ``uvicorn.access``; a logger with no handler that does not propagate turns the
    per-request call off entirely rather than filtering its output.
    """
    config = copy.deepcopy(KSERVE_LOG_CONFIG)
    for logger in config["loggers"].values():
        logger["level"] = level
    config["loggers"]["uvicorn.access"] = {"handlers": [], "level": level, "propagate": False}
    configure_logging(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.kserve_peer", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model-dir", type=Path, required=True, help="a model version, or a root of versions"
    )
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (service: 1)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)

    try:
        version_dir = resolve_version_dir(args.model_dir)
    except OSError as exc:
        parser.error(str(exc))
    configure_quiet_logging(args.log_level.upper())
    model = MnistImageModel(MODEL_NAME, version_dir, threads=args.threads)
    model.load()
    if "tensorflow" in sys.modules:  # a dependency started importing it: the figures would lie
        logging.getLogger("kserve").warning("TensorFlow was imported; RSS includes it")
    server = kserve.ModelServer(
        http_port=args.http_port,
        workers=1,
        enable_grpc=False,
        enable_docs_url=False,
        enable_latency_logging=False,
        access_log_format=None,
        grace_period=5,
    )
    server.start([model])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
