"""Log records as one JSON object per line (or ``key=value`` text), all of them to stderr."""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter


class JsonFormatter(OrjsonFormatter):
    """One JSON object per line: time, level, logger, message, then the record's ``fields``.

    python-json-logger reads the record (message, exception, other libraries' extras) and
    serialises it with orjson; ``process_log_record`` only puts the keys in this service's
    order and form, which the tests and the operators' queries rely on.
    """

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            # uvicorn's copy of its message with terminal colours: not worth a key
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            timestamp="time",
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": log_data.pop("time").isoformat(timespec="milliseconds"),
            "level": log_data.pop("level").lower(),
            "logger": log_data.pop("logger"),
            "message": log_data.pop("message"),
        }
        entry.update(log_data.pop("fields", None) or {})
        entry.update(log_data)
        return entry


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return line


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it), not the one at setup."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str, log_format: str) -> None:
    """Send every log record (ours, uvicorn's, TensorFlow's) through one formatter to stderr.

    Idempotent: a second call replaces the handler installed by the first. Uvicorn's own access
    log is silenced because ``RequestObserver`` writes a richer line for every request.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    # asgi-correlation-id warns about every X-Request-ID it replaces, which lets any client
    # write to the log; a bad id is replaced silently, as the service always did.
    logging.getLogger("asgi_correlation_id").setLevel(logging.ERROR)
