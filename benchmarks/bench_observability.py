"""The service's logging and request-id libraries beside the hand-written code they replaced.

Run from the repository root: ``python -m benchmarks.bench_observability [--rounds N]``
(``--out benchmarks/results`` also writes ``observability.md`` and ``observability.json``).

Two things the service does once per HTTP request, each timed in interleaved rounds in this
one process, so background load hits every variant alike; a figure is the median over rounds of
the mean time per call within a round, and an extra cost is the median over rounds of the
difference within a round.

- **The access-log line**: the hand-written formatter (kept here as the reference) against
  python-json-logger's ``OrjsonFormatter`` as ``app.observability.logs.JsonFormatter`` sets it
  up, its ``JsonFormatter`` on the standard library's json, and structlog's
  ``ProcessorFormatter``, each writing exactly the hand-written line (keys, order, separators:
  the script checks the strings are equal before it times anything), for the record
  ``RequestObserver`` logs after a ``/predict`` that answered a digit.
- **The request id**: the hand-written steps (the caller's id or a fresh one, the scope key,
  the response header) against asgi-correlation-id's ``CorrelationIdMiddleware`` as
  ``app.observability.middleware.with_request_ids`` sets it up (the script checks both echo,
  replace and generate alike); raw ASGI calls to a minimal endpoint, with and without an
  incoming X-Request-ID, the bare endpoint subtracted. The hand-written steps are timed as a
  middleware of their own, a wrapper more than they cost inside ``RequestObserver``: the
  comparison leans towards the library.

The adopt-or-keep rule and the figures are in the README (Performance, "Libraries for
infrastructure, measured").
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as PjlJsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logs import JsonFormatter
from app.observability.metrics import Metrics
from app.observability.middleware import REQUEST_ID_KEY, RequestObserver, with_request_ids

# The README's Performance table: server CPU per /predict request, 28×28 PNG at 32 clients.
PREDICT_CPU_US = 470

# --- the access-log line ----------------------------------------------------------------------

ACCESS_FIELDS = {
    "request_id": "3f2a9c0e6b1d4e8fa7c5b2d9e0f1a6c3",
    "method": "POST",
    "path": "/predict",
    "route": "/predict",
    "status": 200,
    "duration_ms": 1.234,
    "client": "127.0.0.1",
    "verdict": "digit",
    "digit": 7,
    "best_guess": 7,
    "confidence": 0.998731,
    "model_version": "1",
}


def access_record() -> logging.LogRecord:
    """The record ``RequestObserver`` logs for one ``/predict``, as logging hands it over."""
    return logging.getLogger("app.access").makeRecord(
        "app.access",
        logging.INFO,
        __file__,
        1,
        "request",
        (),
        None,
        extra={"fields": ACCESS_FIELDS},
    )


class HandWrittenJsonFormatter(logging.Formatter):
    """The formatter the service had before python-json-logger: the reference line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class PjlStdlibJson(PjlJsonFormatter):
    """python-json-logger on the standard library's json, shaped as the service's formatter."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            timestamp="time",
            json_serializer=functools.partial(json.dumps, separators=(",", ":")),
            json_ensure_ascii=False,
        )

    process_log_record = JsonFormatter.process_log_record


def _structlog_shape(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The event dict in the service's order: time, level, logger, message, fields, the rest."""
    record: logging.LogRecord = event_dict.pop("_record")
    event_dict.pop("_from_structlog", None)
    entry = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": event_dict.pop("level"),
        "logger": event_dict.pop("logger"),
        "message": event_dict.pop("message"),
    }
    entry.update(event_dict.pop("fields", None) or {})
    entry.update(event_dict)
    return entry


def structlog_formatter() -> logging.Formatter:
    """structlog's bridge for stdlib records, its own processors where it has them."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(allow=["fields"]),
            structlog.processors.EventRenamer("message"),
        ],
        processors=[
            structlog.processors.ExceptionRenderer(),
            _structlog_shape,
            structlog.processors.JSONRenderer(
                serializer=lambda data, **_: orjson.dumps(data, default=str).decode()
            ),
        ],
    )


FORMATTERS: dict[str, Callable[[], logging.Formatter]] = {  # the reference first
    "hand-written (before), orjson": HandWrittenJsonFormatter,
    "python-json-logger OrjsonFormatter (the service's JsonFormatter)": JsonFormatter,
    "python-json-logger JsonFormatter (stdlib json)": PjlStdlibJson,
    "structlog ProcessorFormatter + JSONRenderer (orjson)": structlog_formatter,
}


def check_same_lines(formatters: dict[str, logging.Formatter]) -> None:
    """Every formatter writes the reference line byte for byte: an access line, an error with
    its traceback, and uvicorn's kind of record (no fields, a coloured copy of its message)."""
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    failed = logging.getLogger("app").makeRecord(
        "app", logging.ERROR, __file__, 1, "model call failed", (), exc_info, extra={"fields": {}}
    )
    uvicorn = logging.getLogger("uvicorn.error").makeRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        "Started server process [%d]",
        (42,),
        None,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    for record in (access_record(), failed, uvicorn):
        lines = {name: formatter.format(record) for name, formatter in formatters.items()}
        reference = next(iter(lines.values()))
        for name, line in lines.items():
            if line != reference:
                raise SystemExit(f"{name} does not write the line:\n  {line}\n  {reference}")


def time_formatters(rounds: int, calls: int) -> dict[str, list[float]]:
    formatters = {name: make() for name, make in FORMATTERS.items()}
    check_same_lines(formatters)
    record = access_record()
    times: dict[str, list[float]] = {name: [] for name in formatters}
    for _ in range(rounds):
        for name, formatter in formatters.items():
            start = time.perf_counter()
            for _ in range(calls):
                formatter.format(record)
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return times


# --- the request id ---------------------------------------------------------------------------

REQUEST_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"python-httpx/0.28.1"),
    (b"accept", b"*/*"),
    (b"content-length", b"287"),
    (b"content-type", b"multipart/form-data; boundary=----mnist-bench-boundary"),
]
INCOMING_ID = b"checkout-7f3e2a"


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """The least an app can do: a small JSON answer."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


def hand_written_request_id(scope: Scope) -> str:
    """The caller's X-Request-ID if it is short and printable, else a fresh one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if 0 < len(value) <= 64 and value.isascii() and value.decode().isprintable():
                return value.decode()
            break
    return uuid.uuid4().hex


class HandWrittenRequestIds:
    """The request-id steps ``RequestObserver`` took before asgi-correlation-id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = scope[REQUEST_ID_KEY] = hand_written_request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


BARE, HAND_WRITTEN = "bare endpoint", "hand-written (before)"
MIDDLEWARES: dict[str, Callable[[ASGIApp], ASGIApp]] = {
    BARE: lambda app: app,
    HAND_WRITTEN: HandWrittenRequestIds,
    "asgi-correlation-id (the service's with_request_ids)": with_request_ids,
    "whole RequestObserver now, access log off (context)": lambda app: RequestObserver(
        app, Metrics(), access_log=False
    ),
}


def http_scope(incoming_id: bytes | None) -> Scope:
    headers = list(REQUEST_HEADERS)
    if incoming_id is not None:
        headers.append((b"x-request-id", incoming_id))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def answer(app: ASGIApp, incoming_id: bytes | None) -> tuple[str, str]:
    """The X-Request-ID the response carried and the id the app found in its scope."""
    sent: list[Message] = []
    scope = http_scope(incoming_id)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    headers = dict(sent[0]["headers"])
    return headers[b"x-request-id"].decode(), scope.get(REQUEST_ID_KEY, "")


async def check_same_ids() -> None:
    """The library echoes a good id and replaces a bad or missing one, as the hand-written
    steps did, and the app finds in its scope the id the response carries."""
    logging.getLogger("asgi_correlation_id").setLevel(logging.ERROR)  # as configure_logging
    apps = {HAND_WRITTEN: HandWrittenRequestIds(endpoint), "library": with_request_ids(endpoint)}
    for incoming in (INCOMING_ID, None, b"", b"x" * 65, b"tab\tinside", "é".encode()):
        for name, app in apps.items():
            header, in_scope = await answer(app, incoming)
            if header != in_scope:
                raise SystemExit(f"{name}: header {header!r} but the app saw {in_scope!r}")
            if incoming == INCOMING_ID:
                expected_ok = header == INCOMING_ID.decode()
            else:
                expected_ok = len(header) == 32 and int(header, 16) >= 0
            if not expected_ok:
                raise SystemExit(f"{name}: sent {incoming!r}, answered {header!r}")


async def per_request_us(app: ASGIApp, incoming_id: bytes | None, requests: int) -> float:
    async def send(message: Message) -> None:
        pass

    start = time.perf_counter()
    for _ in range(requests):
        await app(http_scope(incoming_id), receive, send)
    return (time.perf_counter() - start) / requests * 1e6


def time_request_ids(rounds: int, requests: int) -> dict[str, dict[str, list[float]]]:
    async def run() -> dict[str, dict[str, list[float]]]:
        await check_same_ids()
        apps = {name: wrap(endpoint) for name, wrap in MIDDLEWARES.items()}
        cases: dict[str, bytes | None] = {"no X-Request-ID": None, "X-Request-ID sent": INCOMING_ID}
        times = {case: {name: [] for name in apps} for case in cases}
        for _ in range(rounds):
            for case, incoming in cases.items():
                for name, app in apps.items():
                    times[case][name].append(await per_request_us(app, incoming, requests))
        return times

    return asyncio.run(run())


# --- report -----------------------------------------------------------------------------------


def extra_over(times: dict[str, list[float]], base: str) -> dict[str, float]:
    """Median over rounds of each variant's time minus ``base``'s in the same round."""
    return {
        name: statistics.median(t - b for t, b in zip(values, times[base], strict=True))
        for name, values in times.items()
    }


def report(formatting: dict[str, list[float]], ids: dict[str, dict[str, list[float]]]) -> str:
    log_extra = extra_over(formatting, next(iter(formatting)))
    lines = [
        "| the access-log line of one /predict | µs per line | extra µs against hand-written "
        f"| share of ~{PREDICT_CPU_US} µs per request |",
        "|---|---:|---:|---:|",
    ]
    for name, values in formatting.items():
        lines.append(
            f"| {name} | {statistics.median(values):.2f} | {log_extra[name]:+.2f} "
            f"| {log_extra[name] / PREDICT_CPU_US:+.1%} |"
        )
    for case, times in ids.items():
        over_bare = extra_over(times, BARE)
        lines += [
            "",
            f"| request id, {case} | µs per request | over the bare endpoint "
            f"| extra µs against hand-written | share of ~{PREDICT_CPU_US} µs |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, values in times.items():
            extra = over_bare[name] - over_bare[HAND_WRITTEN]
            against = (
                f"{extra:+.2f} | {extra / PREDICT_CPU_US:+.1%}"
                if name != BARE and "context" not in name
                else "|"
            )
            lines.append(
                f"| {name} | {statistics.median(values):.2f} | {over_bare[name]:+.2f} | {against} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_observability", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds; medians")
    parser.add_argument("--calls", type=int, default=20_000, help="log lines per round")
    parser.add_argument("--requests", type=int, default=20_000, help="ASGI calls per round")
    parser.add_argument(
        "--out", type=Path, default=None, help="also write observability.md and .json here"
    )
    args = parser.parse_args(argv)
    formatting = time_formatters(args.rounds, args.calls)
    ids = time_request_ids(args.rounds, args.requests)
    table = report(formatting, ids)
    versions = {
        name: _version(name) for name in ("python-json-logger", "structlog", "asgi-correlation-id")
    }
    heading = (
        f"`python -m benchmarks.bench_observability --rounds {args.rounds} --calls {args.calls} "
        f"--requests {args.requests}`, {datetime.now(UTC):%Y-%m-%d}, Python "
        f"{sys.version.split()[0]}, "
        + ", ".join(f"{name} {version}" for name, version in versions.items())
        + "; medians over interleaved rounds in one process."
    )
    print(heading + "\n\n" + table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "observability.md").write_text(heading + "\n\n" + table)
        figures = {
            "command": heading.split("`")[1],
            "versions": versions,
            "predict_cpu_us": PREDICT_CPU_US,
            "formatting_us": {name: statistics.median(v) for name, v in formatting.items()},
            "formatting_extra_us": extra_over(formatting, next(iter(formatting))),
            "request_id_us": {
                case: {name: statistics.median(v) for name, v in times.items()}
                for case, times in ids.items()
            },
            "request_id_extra_over_bare_us": {
                case: extra_over(times, BARE) for case, times in ids.items()
            },
        }
        (args.out / "observability.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


if __name__ == "__main__":
    raise SystemExit(main())
