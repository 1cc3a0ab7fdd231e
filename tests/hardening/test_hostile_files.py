"""A catalogue of hostile uploads against a real uvicorn process, each with the status it must get.

What a service on the open internet receives: truncated files, files that claim billions of
pixels, animations and multi-page documents with thousands of frames, polyglots, documents with
external entities, malformed multipart, bodies far over the limit streamed slowly, clients that
vanish mid-upload. Every answer must be the documented status with a clean JSON error (no
traceback, no server path), memory must stay flat, and afterwards the service must still be
ready and classify a digit. tests/app/test_api.py covers the basic bad uploads in-process; here
they are variants sent over real sockets, where the server (not the test client) frames them.
"""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from digit_photos import encode_png, photograph
from service_harness.process import MIB, ServiceProcess, rss_mib
from tests.hardening.raw_http import chunked, file_part_head, raw_exchange, request_head
from tests.servers import serve

LIMIT = 10 * MIB  # the default MAX_UPLOAD_BYTES, which this server runs with
# Markers of internals that must never reach a client.
LEAKS = ("Traceback", 'File "', "/work", "/tmp", "/usr/", "site-packages", ".py", "root:x:0")


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    with serve(model_root, log) as running:
        yield running


@pytest.fixture(scope="module")
def seven(mnist_sample) -> np.ndarray:
    digit = mnist_sample.x_test[0]
    assert mnist_sample.y_test[0] == 7
    return digit


def assert_clean_error(status: int, body: bytes, expected: int) -> None:
    assert status == expected, body[:300]
    text = body.decode("utf-8", "replace")
    detail = json.loads(text)["detail"]
    assert isinstance(detail, str)
    assert detail
    for leak in LEAKS:
        assert leak not in text, text


class RssSampler:
    """The server's highest RSS while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            self._done.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()


# --- building hostile files -------------------------------------------------------------------


def _encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_claiming(width: int, height: int, depth: int = 8, colour_type: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )


def png_with_chunk(digit: np.ndarray, kind: bytes, payload: bytes) -> bytes:
    """``digit``'s PNG with an extra chunk right after IHDR."""
    png = encode_png(digit)
    return png[:33] + _png_chunk(kind, payload) + png[33:]


def jpeg_claiming(digit: np.ndarray, width: int, height: int) -> bytes:
    jpeg = bytearray(_encode(Image.fromarray(digit), "JPEG"))
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)


def bmp_claiming(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + info + b"\x00" * 16


def gif_screen_claiming(width: int, height: int) -> bytes:
    one_pixel = b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00"
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + one_pixel + b";"


def animated_gif(digit: np.ndarray, frames: int) -> bytes:
    """``digit`` as frame 1, then ``frames - 1`` one-pixel frames: ~25 bytes each, built by hand
    because Pillow takes minutes to encode 10,000 frames."""
    first = _encode(Image.fromarray(digit), "GIF")
    assert first.endswith(b";")
    control = b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # 0.1 s delay
    pixel = b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00" + b"\x02\x02\x44\x01\x00"
    return first[:-1] + (control + pixel) * (frames - 1) + b";"


def tiff_pages(
    digit: np.ndarray, pages: int, *, loop: bool = False, claim: tuple[int, int] | None = None
) -> bytes:
    """A little-endian greyscale TIFF: page 1 is ``digit``, the rest 1x1, all sharing its pixels.

    ``loop`` points the last page back at the first (a cycle in the page chain); ``claim``
    writes a different width x height for page 1 than its pixels have.
    """
    height, width = digit.shape
    pixels = digit.tobytes()
    first_ifd = 8 + len(pixels) + (len(pixels) % 2)
    ifd_size = 2 + 9 * 12 + 4

    def ifd(index: int, page_width: int, page_height: int) -> bytes:
        count = page_width * page_height if index else len(pixels)
        tags = [
            (256, 4, page_width),
            (257, 4, page_height),
            (258, 3, 8),
            (259, 3, 1),
            (262, 3, 1),
            (273, 4, 8),
            (277, 3, 1),
            (278, 4, page_height),
            (279, 4, min(count, len(pixels))),
        ]
        last = index == pages - 1
        following = (
            first_ifd if last and loop else 0 if last else first_ifd + (index + 1) * ifd_size
        )
        entries = b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in tags)
        return struct.pack("<H", len(tags)) + entries + struct.pack("<I", following)

    claimed = claim or (width, height)
    body = b"".join(ifd(i, *(claimed if i == 0 else (1, 1))) for i in range(pages))
    return b"II*\x00" + struct.pack("<I", first_ifd) + pixels + b"\x00" * (len(pixels) % 2) + body


def zlib_of_zeros(size: int, block: int = MIB) -> bytes:
    """A valid zlib stream of ``size`` zero bytes, about 1,000 times smaller, built in ms.

    A full flush leaves the compressor byte-aligned with no references back, so one compressed
    block can be repeated; an empty final block and the Adler-32 (for zeros: ``size`` in the
    high half, 1 in the low) close the stream.
    """
    compressor = zlib.compressobj(9)
    first = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    rest = compressor.compress(bytes(size % block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    checksum = struct.pack(">I", ((size % 65521) << 16) | 1)
    return first + again * (size // block - 1) + rest + b"\x03\x00" + checksum


def rgba_png_at_the_pixel_limit(width: int = 6600, height: int = 6000) -> bytes:
    """39.6 Mpx of transparent RGBA (just under MAX_IMAGE_PIXELS) in ~150 KB."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib_of_zeros((width * 4 + 1) * height))
        + _png_chunk(b"IEND", b"")
    )


XXE_SVG = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text y="20">&xxe;</text></svg>"""
XXE_SVG_UTF16 = XXE_SVG.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')

Builder = Callable[[np.ndarray], bytes]
# name -> (builder, status). 200 means the digit (a 7) must come back: the file's first image.
CATALOGUE: dict[str, tuple[Builder, int]] = {
    "truncated PNG, header only": (lambda d: encode_png(d)[:33], 400),
    "truncated PNG, half the pixels": (lambda d: encode_png(d)[: len(encode_png(d)) // 2], 400),
    "PNG missing only its end chunk": (lambda d: encode_png(d)[:-12], 200),
    "truncated JPEG, half the scan": (
        lambda d: (j := photograph(d, "jpeg", 3))[: len(j) // 2],
        400,
    ),
    "JPEG with headers only": (lambda d: photograph(d, "jpeg", 3)[:600], 400),
    "PNG claiming 50,000x50,000": (lambda _d: png_claiming(50_000, 50_000), 413),
    "PNG claiming 50,000x50,000 16-bit RGBA": (lambda _d: png_claiming(50_000, 50_000, 16, 6), 413),
    "PNG claiming 2^31-1 x 2^31-1": (lambda _d: png_claiming(2**31 - 1, 2**31 - 1), 413),
    "JPEG claiming 65,500x65,500": (lambda d: jpeg_claiming(d, 65_500, 65_500), 413),
    "BMP claiming 60,000x60,000": (lambda _d: bmp_claiming(60_000, 60_000), 413),
    "GIF with a 65,535x65,535 screen": (lambda _d: gif_screen_claiming(65_535, 65_535), 413),
    "TIFF claiming 50,000x50,000": (lambda d: tiff_pages(d, 1, claim=(50_000, 50_000)), 413),
    "animated GIF, 10,000 frames": (lambda d: animated_gif(d, 10_000), 200),
    "TIFF, 10,000 pages": (lambda d: tiff_pages(d, 10_000), 200),
    "TIFF whose pages loop": (lambda d: tiff_pages(d, 3, loop=True), 200),
    "PNG with a 1 GB zTXt (text) bomb": (
        lambda d: png_with_chunk(d, b"zTXt", b"k\x00\x00" + zlib_of_zeros(1 << 30)),
        200,
    ),
    "PNG with a 1 GB iCCP (profile) bomb": (
        lambda d: png_with_chunk(d, b"iCCP", b"icc\x00\x00" + zlib_of_zeros(1 << 30)),
        200,
    ),
    "polyglot: PNG + ZIP": (
        lambda d: encode_png(d) + b"PK\x03\x04" + b"\x00" * 26 + b"payload.txt",
        200,
    ),
    "polyglot: PNG + HTML": (
        lambda d: encode_png(d) + b"<html><script>alert(1)</script></html>",
        200,
    ),
    "polyglot: GIF/JS": (lambda _d: b"GIF89a/*\x00\x00\x00\x00*/=1;alert(document.cookie);//", 400),
    "polyglot: HTML then PNG": (lambda d: b"<html><body>hi</body></html>" + encode_png(d), 400),
    "polyglot: PDF/JPEG": (lambda d: b"%PDF-1.4\n" + photograph(d, "jpeg", 3), 415),
    "zero-byte file": (lambda _d: b"", 400),
    "text file named .png": (lambda _d: b"hello, this is not an image\n", 415),
    "SVG with an external entity": (lambda _d: XXE_SVG, 415),
    "UTF-16 SVG with an external entity": (lambda _d: XXE_SVG_UTF16.encode("utf-16"), 400),
    "HEIC (ISO BMFF)": (lambda _d: b"\x00\x00\x00\x18ftypheic" + b"\x00" * 100, 415),
    "random bytes": (lambda _d: np.random.default_rng(0).bytes(4096), 400),
}


@pytest.mark.parametrize("case", CATALOGUE)
def test_hostile_file_gets_its_status(server: ServiceProcess, seven: np.ndarray, case: str) -> None:
    build, expected = CATALOGUE[case]
    data = build(seven)
    assert len(data) < LIMIT
    started = time.perf_counter()
    response = httpx.post(f"{server.url}/predict", files={"file": ("upload.png", data)}, timeout=30)
    seconds = time.perf_counter() - started

    assert seconds < 5, f"{case} took {seconds:.1f} s"  # nothing decodes more than it must
    if expected == 200:
        assert response.status_code == 200, response.text
        assert response.json()["best_guess"] == 7
    else:
        assert_clean_error(response.status_code, response.content, expected)


def test_an_image_at_the_pixel_limit_is_decoded_and_its_memory_returned(
    server: ServiceProcess,
) -> None:
    """39.6 Mpx in 150 KB: allowed by MAX_IMAGE_PIXELS, so it is decoded, not refused.

    Decoding it costs several hundred MB for a moment (see the README's Reliability section);
    what must hold is that the memory is given back and the answer is the clean 422.
    """
    data = rgba_png_at_the_pixel_limit()
    before = server.rss_mib()
    with RssSampler(server.pid) as rss:
        response = httpx.post(
            f"{server.url}/predict", files={"file": ("big.png", data)}, timeout=60
        )
    after = server.rss_mib()
    print(f"\nRSS {before:.0f} -> peak {rss.peak:.0f} -> {after:.0f} MiB for {len(data):,} bytes")

    assert_clean_error(response.status_code, response.content, 422)
    # About 16 bytes per pixel at the peak (RGBA decode, its copy, greyscale): bounded by
    # MAX_IMAGE_PIXELS, so a larger claim is a 413 (above) rather than more memory.
    assert rss.peak - before < 1024
    assert after - before < 64


def png_with_chunk_length(digit: np.ndarray, kind: bytes, length: int) -> bytes:
    """``digit``'s PNG with the length field of its ``kind`` chunk overwritten by ``length``."""
    png = bytearray(encode_png(digit))
    at = png.find(kind) - 4
    png[at : at + 4] = struct.pack(">I", length)
    return bytes(png)


def test_a_tiny_png_claiming_a_1gib_chunk_is_answered_without_allocating_it(
    server: ServiceProcess, seven: np.ndarray
) -> None:
    data = png_with_chunk_length(seven, b"IDAT", 1 << 30)
    assert len(data) < 300
    before = server.rss_mib()
    with RssSampler(server.pid) as rss:
        response = httpx.post(f"{server.url}/predict", files={"file": ("x.png", data)}, timeout=30)
    print(f"\nRSS before {before:.0f} MiB, peak {rss.peak:.0f} MiB")
    # OpenCV allocated the claimed GiB; Pillow, which now gets such files, reads what is there
    # (the pixels are all present) and answers; refusing it as corrupt would be fine too.
    if response.status_code == 200:
        assert response.json()["best_guess"] == 7
    else:
        assert_clean_error(response.status_code, response.content, 400)
    assert rss.peak - before < 128


# --- malformed requests, framed by hand -------------------------------------------------------


def _parts(count: int, field: str, with_file: bool) -> bytes:
    disposition = (
        (lambda i: f'form-data; name="{field}"; filename="f{i}.png"')
        if with_file
        else (lambda i: f'form-data; name="{field}{i}"')
    )
    parts = "".join(
        f"--b\r\nContent-Disposition: {disposition(i)}\r\n\r\nabc\r\n" for i in range(count)
    )
    return (parts + "--b--\r\n").encode()


ONE_PART = _parts(1, "file", True)
# name -> (path, content type, body, status, phrase in the detail)
MALFORMED: dict[str, tuple[str, str, bytes, int, str]] = {
    "multipart without a boundary": ("/predict", "multipart/form-data", ONE_PART, 400, "boundary"),
    "multipart with an empty boundary": (
        "/predict",
        "multipart/form-data; boundary=",
        ONE_PART,
        400,
        "multipart",
    ),
    "multipart with the wrong boundary": (
        "/predict",
        "multipart/form-data; boundary=zz",
        ONE_PART,
        400,
        "multipart",
    ),
    "10,000 file parts to /predict": (
        "/predict",
        "multipart/form-data; boundary=b",
        _parts(10_000, "file", True),
        400,
        "too many files",
    ),
    "10,000 file parts to /predict/batch": (
        "/predict/batch",
        "multipart/form-data; boundary=b",
        _parts(10_000, "files", True),
        413,
        "at most 64 per batch",
    ),
    "10,000 plain fields": (
        "/predict",
        "multipart/form-data; boundary=b",
        _parts(10_000, "f", False),
        400,
        "too many fields",
    ),
    "urlencoded instead of multipart": (
        "/predict",
        "application/x-www-form-urlencoded",
        b"file=abcd",
        422,
        "multipart/form-data",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_request_gets_its_status(server: ServiceProcess, case: str) -> None:
    path, content_type, body, expected, phrase = MALFORMED[case]
    exchange = raw_exchange(server.port, request_head(path, content_type, len(body)), [body])
    assert_clean_error(exchange.status or 0, exchange.body, expected)
    assert phrase in json.loads(exchange.body)["detail"].lower()


# --- bodies over the limit --------------------------------------------------------------------


def endless_upload(
    boundary: str = "b", piece: int = 64 * 1024, pause_s: float = 0.0, total: int = 1 << 30
) -> Iterator[bytes]:
    """A multipart file part ``total`` bytes long (1 GB by default), in ``piece``-sized writes."""
    yield file_part_head(boundary)
    block = b"\x89PNG" + bytes(piece - 4)
    for _ in range(total // piece):
        yield block
        if pause_s:
            time.sleep(pause_s)


def test_a_1gb_body_declared_up_front_is_refused_before_it_is_read(server: ServiceProcess) -> None:
    head = request_head("/predict", "multipart/form-data; boundary=b", 1 << 30)
    started = time.perf_counter()
    exchange = raw_exchange(server.port, head, endless_upload(pause_s=0.001))
    assert time.perf_counter() - started < 2
    assert_clean_error(exchange.status or 0, exchange.body, 413)
    assert exchange.sent_before_response < 4 * MIB  # answered on the headers alone


def test_1gb_streamed_slowly_by_4_clients_is_cut_off_at_the_limit_and_rss_stays_flat(
    server: ServiceProcess,
) -> None:
    """No Content-Length: the limit is counted as the chunks arrive (64 KiB every 5 ms each)."""
    head = request_head("/predict", "multipart/form-data; boundary=b")
    results: list = []

    def upload() -> None:
        results.append(raw_exchange(server.port, head, chunked(endless_upload(pause_s=0.005))))

    before = server.rss_mib()
    with RssSampler(server.pid) as rss:
        clients = [threading.Thread(target=upload) for _ in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(60)
    print(f"\nRSS before {before:.0f} MiB, peak while 4 x 1 GB streamed {rss.peak:.0f} MiB")

    assert len(results) == 4
    for exchange in results:
        assert_clean_error(exchange.status or 0, exchange.body, 413)
        assert "10,485,760-byte limit" in exchange.body.decode()
        # Refused once the limit was read, with at most the socket buffers' worth more in flight.
        # (The client's count lags by the write in progress, up to one 64 KiB piece.)
        assert LIMIT - 128 * 1024 < exchange.sent_before_response < LIMIT + 8 * MIB
    # Four bodies at the limit would be 40 MiB if buffered in memory; they are spooled or dropped.
    assert rss.peak - before < 32


def test_after_a_413_the_server_stops_reading_the_body(server: ServiceProcess) -> None:
    head = request_head("/predict", "multipart/form-data; boundary=b")
    exchange = raw_exchange(
        server.port,
        head,
        chunked(endless_upload(total=LIMIT + 96 * MIB)),
        keep_sending_after_response=True,
    )
    assert exchange.status == 413
    assert exchange.send_error is not None, f"server accepted {exchange.sent / MIB:.0f} MiB"
    assert exchange.sent < LIMIT + 32 * MIB


# --- clients that go away ---------------------------------------------------------------------


def _abandon(port: int, head: bytes, body: bytes, *, reset: bool) -> None:
    """Send ``head`` and ``body`` and hang up without reading: FIN, or RST with ``reset``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head + body)
    time.sleep(0.1)  # let the server start on it
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_disconnecting_mid_upload_leave_no_errors(
    server: ServiceProcess, seven: np.ndarray
) -> None:
    photo = photograph(seven, "jpeg", 5, size=(1600, 1200))
    part = file_part_head("b")
    whole = part + photo + b"\r\n--b--\r\n"
    declared = request_head("/predict", "multipart/form-data; boundary=b", len(whole) + 100_000)
    exact = request_head("/predict", "multipart/form-data; boundary=b", len(whole))
    batch = request_head("/predict/batch", "multipart/form-data; boundary=b", 1_000_000)
    for reset in (False, True):
        _abandon(server.port, declared, whole[: len(whole) // 2], reset=reset)  # mid-body
        _abandon(server.port, exact, whole, reset=reset)  # whole body, gone before the answer
        _abandon(server.port, batch, part + encode_png(seven), reset=reset)  # mid-batch
    time.sleep(0.5)  # the server notices and finishes with them

    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert not re.search(r'http_requests_total\{[^}]*status="5\d\d"', metrics)
    response = httpx.post(
        f"{server.url}/predict", files={"file": ("d.png", encode_png(seven))}, timeout=10
    )
    assert response.json()["best_guess"] == 7


# --- and afterwards ---------------------------------------------------------------------------


def test_after_all_of_it_the_service_is_ready_and_its_log_is_clean(
    server: ServiceProcess, seven: np.ndarray
) -> None:
    """Runs last in this module: the same server has taken every request above."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/health/ready").json() == {"status": "ready"}
        assert (
            http.post("/predict", files={"file": ("d.png", encode_png(seven))}).json()["best_guess"]
            == 7
        )
        metrics = http.get("/metrics").text
    assert not re.search(r'http_requests_total\{[^}]*status="5\d\d"', metrics)
    log = server.log_text()
    for marker in ("Traceback", "unhandled error", "Exception in ASGI application"):
        assert marker not in log
