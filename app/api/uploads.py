"""The image files of a multipart/form-data request body, read without Starlette's form parser.

A ``File()`` parameter makes Starlette spool every part into a ``SpooledTemporaryFile`` wrapped
in an ``UploadFile`` and FastAPI validate the form against a generated model: for a small PNG
that cost more than decoding, normalising and classifying the digit. Feeding the body to
python-multipart's streaming parser (the one Starlette uses) ourselves still costs a Python
callback per parser event.

So a body that has fully arrived within WHOLE_BODY_BYTES and has the plain shape every HTTP
client sends (``--boundary CRLF headers CRLF CRLF data CRLF --boundary ... --boundary--``) is
cut at its delimiters with ``bytes.find``; anything else (a bigger body, a preamble,
transport padding, an odd header) goes to python-multipart, which also owns every error. The
two are checked against each other on generated bodies (tests/app/test_uploads.py), and
``python -m benchmarks.bench_multipart`` measures the three side by side (figures in the
README's Performance section).

Parts larger than SPOOL_BYTES continue in a temporary file, as Starlette's would: otherwise
every slow client still uploading would hold up to MAX_UPLOAD_BYTES of RAM (tests/hardening).

Problems with the body are ``BadUpload`` errors with a reason; ``app.api.handlers`` maps them
to statuses.

The routes document the body in OpenAPI with ``multipart_body`` below, so /docs and schema
fuzzers still see the ``file`` / ``files`` field.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_PLAIN_FIELDS = 16
"""Text fields a client may send beside its files (ignored); more is refused, not parsed."""
SPOOL_BYTES = 1024 * 1024
"""A file part larger than this is held in a temporary file until the body has arrived."""
WHOLE_BODY_BYTES = 256 * 1024
"""Bodies up to this size are buffered and, when plainly framed, split in one pass."""

# ``form-data; name="x"`` or ``form-data; name="x"; filename="y"`` with nothing to unescape: what
# browsers, curl, requests and httpx send for ordinary names. Anything else is parsed in full.
_SIMPLE_DISPOSITION = re.compile(rb'form-data; name="([^"\\\r\n]*)"(?:; filename="([^"\\\r\n]*)")?')
# ``multipart/form-data; boundary=...`` as clients send it; anything else is parsed in full.
_SIMPLE_CONTENT_TYPE = re.compile(
    r'multipart/form-data; ?boundary=("?)([0-9A-Za-z\'()+_,./:=?-]{1,70})\1'
)
# A header line as RFC 9110 spells one: a token, a colon, optional blanks, the value.
_HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)")


@dataclass(frozen=True, slots=True)
class Upload:
    """One file part: the name the client gave it and its bytes."""

    filename: str | None
    data: bytes


class UploadReason(StrEnum):
    """What is wrong with a multipart body, for the API's status table."""

    malformed = "malformed"
    """Not multipart framing the parser can follow: no boundary, a cut-off body, no name."""
    missing_file = "missing_file"
    """The form field is absent, or text instead of a file."""
    one_file_only = "one_file_only"
    """Several files sent to a route that takes one."""
    too_many_files = "too_many_files"
    """More files than a batch may hold."""


class BadUpload(Exception):  # noqa: N818 - the service's vocabulary
    """A request body that is not the multipart form the route takes; ``detail`` is for the
    client."""

    def __init__(self, reason: UploadReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def missing_field(name: str) -> BadUpload:
    return BadUpload(
        UploadReason.missing_file,
        f"Missing form field {name!r}: send the image as multipart/form-data "
        f"with the field name {name!r}.",
    )


def _malformed(detail: str) -> BadUpload:
    return BadUpload(UploadReason.malformed, detail)


def split_plain_body(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes]] | None:
    """``(Content-Disposition value, data)`` per part of a plainly framed body, else None.

    None means "not sure": the caller then hands the body to python-multipart. Never raises.
    """
    opening = b"--" + boundary + b"\r\n"
    if not body.startswith(opening):
        return None
    delimiter = b"\r\n--" + boundary
    parts = []
    position = len(opening)
    while True:
        headers_end = body.find(b"\r\n\r\n", position)
        if headers_end < 0:
            return None
        disposition = None
        for line in body[position:headers_end].split(b"\r\n"):
            header = _HEADER_LINE.fullmatch(line)
            if header is None or delimiter in line:
                return None
            if header.group(1).lower() == b"content-disposition":
                if disposition is not None:
                    return None
                disposition = header.group(2)
        data_start = headers_end + 4
        data_end = body.find(delimiter, data_start)
        if data_end < 0 or disposition is None:
            return None
        parts.append((disposition, body[data_start:data_end]))
        after = data_end + len(delimiter)
        if body[after : after + 2] == b"\r\n":
            position = after + 2
        elif body[after:] in (b"--", b"--\r\n"):
            return parts
        else:
            return None


def _name_and_filename(disposition: bytes) -> tuple[bytes | None, bytes | None]:
    simple = _SIMPLE_DISPOSITION.fullmatch(disposition)
    if simple is not None:
        return simple.group(1), simple.group(2)
    _, options = parse_options_header(disposition)
    return options.get(b"name"), options.get(b"filename")


@dataclass(slots=True)
class _Collector:
    """Keeps the file parts named ``wanted``, counting and limiting every other part."""

    wanted: bytes
    max_files: int
    too_many_files: str
    uploads: list[Upload] = field(default_factory=list)
    files: int = 0
    plain_fields: int = 0
    wanted_plain: bool = False
    _header_name: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _disposition: bytes = b""
    _chunks: list[bytes] | None = None
    _size: int = 0
    _spool: IO[bytes] | None = None
    _filename: str | None = None

    # --- one part at a time: used by both the one-pass split and python-multipart -----------

    def start_part(self, disposition: bytes) -> None:
        name, filename = _name_and_filename(disposition)
        if name is None:
            raise _malformed('A multipart part has no Content-Disposition "name".')
        if filename is None:
            self.plain_fields += 1
            if self.plain_fields > MAX_PLAIN_FIELDS:
                raise _malformed(
                    f"Too many fields: at most {MAX_PLAIN_FIELDS} text fields beside the files."
                )
            self.wanted_plain = self.wanted_plain or name == self.wanted
            return
        self.files += 1
        if self.files > self.max_files:
            reason = (
                UploadReason.one_file_only if self.max_files == 1 else UploadReason.too_many_files
            )
            raise BadUpload(reason, self.too_many_files)
        if name == self.wanted:
            self._chunks, self._size = [], 0
            self._filename = filename.decode("utf-8", "replace")

    def part_data(self, chunk: bytes) -> None:
        if self._chunks is None:
            return
        if self._spool is not None:
            self._spool.write(chunk)  # page cache: microseconds, like Starlette's spooled file
            return
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > SPOOL_BYTES:
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in end_part/close
            self._spool.writelines(self._chunks)
            self._chunks.clear()

    def end_part(self) -> None:
        if self._chunks is None:
            return
        if self._spool is not None:
            self._spool.seek(0)
            data = self._spool.read()
            self.close()
        else:
            chunks = self._chunks
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.uploads.append(Upload(self._filename, data))
        self._chunks = None

    @property
    def inside_wanted_part(self) -> bool:
        return self._chunks is not None

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    # --- python-multipart's callbacks -------------------------------------------------------

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.end_part,
        }

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._chunks = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        self.start_part(self._disposition)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.part_data(data[start:end])


async def read_uploads(
    request: Request, name: str, *, max_files: int, too_many_files: str
) -> list[Upload]:
    """The files sent in form field ``name``, in order; at least one, or a BadUpload.

    More than ``max_files`` file parts (of any name) stop the parsing with a BadUpload whose
    detail is ``too_many_files``.
    """
    boundary = _boundary(request.headers.get("content-type", ""), name)
    if not boundary:
        raise _malformed("Missing boundary in the multipart Content-Type.")
    collector = _Collector(name.encode(), max_files, too_many_files)
    try:
        await _collect(request, boundary, collector)
    except FormParserError as exc:  # python-multipart's own: bad boundary, broken framing
        raise _malformed("Invalid multipart data: the body does not match its boundary.") from exc
    except ClientDisconnect as exc:  # nobody is left to read this; FastAPI's own parser said 400
        raise _malformed("The client disconnected during the upload.") from exc
    finally:
        collector.close()
    if collector.inside_wanted_part:  # the wanted part never ended: a truncated body
        raise _malformed("Invalid multipart data: the body ends inside a part.")
    if not collector.uploads:
        if collector.wanted_plain:
            raise BadUpload(
                UploadReason.missing_file,
                f"Form field {name!r} must be a file upload (with a filename), not text.",
            )
        raise missing_field(name)
    return collector.uploads


def _boundary(content_type: str, name: str) -> bytes | None:
    """The multipart boundary, None if missing; a BadUpload if the body is not multipart."""
    simple = _SIMPLE_CONTENT_TYPE.fullmatch(content_type)
    if simple is not None:
        return simple.group(2).encode()
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise missing_field(name)
    return options.get(b"boundary")


async def _collect(request: Request, boundary: bytes, collector: _Collector) -> None:
    stream = request.stream()
    head: list[bytes] = []
    size = 0
    async for chunk in stream:
        head.append(chunk)
        size += len(chunk)
        if size > WHOLE_BODY_BYTES:
            break
    else:  # the whole body is here
        body = head[0] if len(head) == 1 else b"".join(head)
        parts = split_plain_body(body, boundary)
        if parts is not None:
            for disposition, data in parts:
                collector.start_part(disposition)
                collector.part_data(data)
                collector.end_part()
            return
        head = [body]
    parser = MultipartParser(boundary, collector.callbacks())
    for chunk in head:
        parser.write(chunk)
    async for chunk in stream:
        parser.write(chunk)
    parser.finalize()


def multipart_body(name: str, description: str, *, many: bool) -> dict[str, Any]:
    """``openapi_extra`` documenting a multipart body with file field ``name``."""
    file_schema: dict[str, Any] = {"type": "string", "format": "binary"}
    schema = {"type": "array", "items": file_schema} if many else file_schema
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [name],
                        "properties": {name: {**schema, "description": description}},
                    }
                }
            },
        }
    }
