"""The image files of a multipart/form-data request body, read without Starlette's form parser.

A ``File()`` parameter makes Starlette spool every part into a ``SpooledTemporaryFile`` wrapped
in an ``UploadFile`` and FastAPI validate the form against a generated model: for a 300-byte
PNG that was ~130 us of the ~200 us the whole stack spends per request (in-process, measured
with cProfile and by elimination), more than decoding, normalising and classifying the digit.
Here python-multipart's streaming parser (the one Starlette uses) is fed the body as it
arrives and only the wanted parts are kept, in memory while they are small. A part that grows
past SPOOL_BYTES continues in a temporary file, as Starlette's would: otherwise every slow
client still uploading would hold up to MAX_UPLOAD_BYTES of RAM (four clients streaming 1 GB
slowly raised the RSS by 38 MB instead of 5; tests/hardening).

The routes document the body in OpenAPI with ``multipart_body`` below, so /docs and schema
fuzzers still see the ``file`` / ``files`` field.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

from fastapi import HTTPException, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

MAX_PLAIN_FIELDS = 16
"""Text fields a client may send beside its files (ignored); more is refused, not parsed."""
SPOOL_BYTES = 1024 * 1024
"""A file part larger than this is held in a temporary file until the body has arrived."""


@dataclass(frozen=True, slots=True)
class Upload:
    """One file part: the name the client gave it and its bytes."""

    filename: str | None
    data: bytes


def missing_field(name: str) -> HTTPException:
    return HTTPException(
        422,
        f"Missing form field {name!r}: send the image as multipart/form-data "
        f"with the field name {name!r}.",
    )


@dataclass(slots=True)
class _Collector:
    """python-multipart callbacks keeping the file parts named ``wanted``."""

    wanted: bytes
    max_files: int
    too_many_files: tuple[int, str]
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

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
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
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name")
        if name is None:
            raise HTTPException(400, 'A multipart part has no Content-Disposition "name".')
        if b"filename" not in options:
            self.plain_fields += 1
            if self.plain_fields > MAX_PLAIN_FIELDS:
                raise HTTPException(
                    400,
                    f"Too many fields: at most {MAX_PLAIN_FIELDS} text fields beside the files.",
                )
            self.wanted_plain = self.wanted_plain or name == self.wanted
            return
        self.files += 1
        if self.files > self.max_files:
            raise HTTPException(*self.too_many_files)
        if name == self.wanted:
            self._chunks, self._size = [], 0
            self._filename = options[b"filename"].decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._chunks is None:
            return
        chunk = data[start:end]
        if self._spool is not None:
            self._spool.write(chunk)  # page cache: microseconds, like Starlette's spooled file
            return
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > SPOOL_BYTES:
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in on_part_end/close
            self._spool.writelines(self._chunks)
            self._chunks.clear()

    def on_part_end(self) -> None:
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


async def read_uploads(
    request: Request, name: str, *, max_files: int, too_many_files: tuple[int, str]
) -> list[Upload]:
    """The files sent in form field ``name``, in order; at least one, or an HTTPException.

    More than ``max_files`` file parts (of any name) stop the parsing with an HTTPException of
    ``too_many_files`` (status, detail).
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise missing_field(name)
    boundary = options.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "Missing boundary in the multipart Content-Type.")
    collector = _Collector(name.encode(), max_files, too_many_files)
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:  # python-multipart's own: bad boundary, broken framing
        raise HTTPException(
            400, "Invalid multipart data: the body does not match its boundary."
        ) from exc
    except ClientDisconnect as exc:  # nobody is left to read this; FastAPI's own parser said 400
        raise HTTPException(400, "The client disconnected during the upload.") from exc
    finally:
        collector.close()
    if collector.inside_wanted_part:  # the wanted part never ended: a truncated body
        raise HTTPException(400, "Invalid multipart data: the body ends inside a part.")
    if not collector.uploads:
        if collector.wanted_plain:
            raise HTTPException(
                422, f"Form field {name!r} must be a file upload (with a filename), not text."
            )
        raise missing_field(name)
    return collector.uploads


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
