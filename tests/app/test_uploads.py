"""app/api/uploads.py: the one-pass split of plain multipart bodies agrees with python-multipart.

The split is an optimisation only: whatever it returns must be what python-multipart (the parser
Starlette uses, and our fallback) makes of the same body, and when it is unsure it must say so
(None) rather than guess. Hypothesis generates bodies the way clients frame them, then damages
some of them.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.api.uploads import _boundary, _name_and_filename, split_plain_body

Part = tuple[bytes | None, bytes | None, bytes]  # name, filename, data

BOUNDARY_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?"
NAME_CHARS = st.sampled_from([*"abcxyz019_-. ", '"', "\\", ";", "=", "é", "\t"])


def reference(body: bytes, boundary: bytes) -> list[Part] | None:
    """python-multipart's reading of ``body``: the completed parts, or None if it refuses it."""
    parts: list[Part] = []
    state: dict[str, object] = {"name": b"", "value": b"", "disposition": b"", "data": []}

    def on_part_begin() -> None:
        state.update(disposition=b"", data=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["name"] += data[start:end]  # type: ignore[operator]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]  # type: ignore[operator]

    def on_header_end() -> None:
        if state["name"].lower() == b"content-disposition":  # type: ignore[attr-defined]
            state["disposition"] = state["value"]
        state.update(name=b"", value=b"")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"].append(data[start:end])  # type: ignore[attr-defined]

    def on_part_end() -> None:
        _, options = parse_options_header(state["disposition"])  # type: ignore[arg-type]
        data = b"".join(state["data"])  # type: ignore[arg-type]
        parts.append((options.get(b"name"), options.get(b"filename"), data))

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError:
        return None
    return parts


def fast(body: bytes, boundary: bytes) -> list[Part] | None:
    split = split_plain_body(body, boundary)
    if split is None:
        return None
    return [(*_name_and_filename(disposition), data) for disposition, data in split]


@st.composite
def framed_bodies(draw: st.DrawFn) -> tuple[bytes, bytes, list[Part]]:
    boundary = draw(st.text(BOUNDARY_CHARS, min_size=1, max_size=70)).encode()
    count = draw(st.integers(1, 4))
    parts: list[Part] = []
    body = b""
    for _ in range(count):
        name = draw(st.text(NAME_CHARS, max_size=8)).encode()
        filename = draw(st.none() | st.text(NAME_CHARS, max_size=8).map(str.encode))
        data = draw(st.binary(max_size=64) | st.sampled_from([b"\r\n", b"--", b"\r\n--x"]))
        assume(b"\r\n--" + boundary not in b"\r\n" + data + b"\r\n")
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        headers = [b"Content-Disposition: " + disposition]
        if draw(st.booleans()):
            headers.append(b"Content-Type: application/octet-stream")
        if draw(st.booleans()):
            headers.reverse()
        body += b"--" + boundary + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + data + b"\r\n"
        parts.append((name, filename, data))
    body += b"--" + boundary + b"--" + draw(st.sampled_from([b"", b"\r\n"]))
    return boundary, body, parts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(framed_bodies())
def test_plainly_framed_bodies_are_split_as_python_multipart_reads_them(
    case: tuple[bytes, bytes, list[Part]],
) -> None:
    boundary, body, _ = case
    expected = reference(body, boundary)
    got = fast(body, boundary)
    assert got is not None, body
    assert got == expected


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(framed_bodies(), st.data())
def test_damaged_bodies_are_left_to_python_multipart_or_read_the_same(
    case: tuple[bytes, bytes, list[Part]], data: st.DataObject
) -> None:
    boundary, body, _ = case
    damage = data.draw(st.sampled_from(["cut", "insert", "lf", "preamble", "padding", "epilogue"]))
    at = data.draw(st.integers(0, len(body)))
    if damage == "cut":
        body = body[:at]
    elif damage == "insert":
        body = (
            body[:at]
            + data.draw(st.sampled_from([b"\r\n", b"-", b":", b"\r", b'"', b"x"]))
            + body[at:]
        )
    elif damage == "lf":
        body = body.replace(b"\r\n", b"\n", data.draw(st.integers(1, 3)))
    elif damage == "preamble":
        body = b"preamble\r\n" + body
    elif damage == "padding":
        body = body.replace(boundary + b"\r\n", boundary + b"  \r\n", 1)
    else:
        body += b"epilogue"
    got = fast(body, boundary)
    if got is not None:
        assert got == reference(body, boundary), body


def test_a_browser_style_body_takes_the_one_pass_path() -> None:
    body = (
        b"------WebKitFormBoundaryX\r\n"
        b'Content-Disposition: form-data; name="file"; filename="digit.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n--\r\n"
        b"------WebKitFormBoundaryX--\r\n"
    )
    split = split_plain_body(body, b"----WebKitFormBoundaryX")
    assert split == [(b'form-data; name="file"; filename="digit.png"', b"\x89PNG\r\n\x1a\n--")]


@settings(max_examples=300, deadline=None)
@given(
    st.text(BOUNDARY_CHARS + ' ";=\t', min_size=0, max_size=20),
    st.sampled_from(["multipart/form-data; boundary=", "multipart/form-data;boundary="]),
    st.booleans(),
)
def test_the_boundary_is_read_as_python_multipart_reads_it(
    value: str, prefix: str, quoted: bool
) -> None:
    content_type = prefix + (f'"{value}"' if quoted else value)
    _, options = parse_options_header(content_type)
    assert _boundary(content_type, "file") == options.get(b"boundary")
