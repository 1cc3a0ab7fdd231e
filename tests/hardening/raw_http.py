"""HTTP/1.1 spoken by hand over a socket, for the hardening tests' hostile clients.

httpx sends a whole body before it reads, and tidies up malformed requests; a hostile client
does neither. These speak HTTP/1.1 over a socket: the body is sent from a thread while the
response is read, so an early answer (413 after 10 MB of a 1 GB upload) is seen when it comes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass
class RawExchange:
    response: bytes
    sent_before_response: int  # body bytes handed to the socket when the response began
    sent: int  # body bytes handed to the socket in all
    send_error: str | None  # why sending stopped early (the server closed), if it did
    read_error: str | None

    @property
    def status(self) -> int | None:
        if not self.response.startswith(b"HTTP/1.1 "):
            return None
        return int(self.response[9:12])

    @property
    def headers(self) -> dict[str, str]:
        head = self.response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head)}

    @property
    def body(self) -> bytes:
        return self.response.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.response else b""


def _response_complete(data: bytes) -> bool:
    if b"\r\n\r\n" not in data:
        return False
    head, body = data.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def raw_exchange(
    port: int,
    head: bytes,
    body: Iterator[bytes] | Sequence[bytes] = (),
    *,
    keep_sending_after_response: bool = False,
    timeout_s: float = 30,
) -> RawExchange:
    """Send ``head`` then each piece of ``body`` while reading one response.

    Sending stops when the server has answered (unless ``keep_sending_after_response``), when
    the body is exhausted, or when the server closes the connection.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sent = 0
    sent_before_response: int | None = None
    send_error: str | None = None
    answered = threading.Event()

    def send_all() -> None:
        nonlocal sent, send_error
        try:
            sock.sendall(head)
            for piece in body:
                if answered.is_set() and not keep_sending_after_response:
                    return
                sock.sendall(piece)
                sent += len(piece)
        except OSError as exc:
            send_error = f"{type(exc).__name__}: {exc}"

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    response, read_error = b"", None
    try:
        while not _response_complete(response):
            data = sock.recv(65536)
            if not data:
                break
            if not response:
                sent_before_response = sent
                answered.set()
            response += data
    except OSError as exc:
        read_error = f"{type(exc).__name__}: {exc}"
    answered.set()
    if keep_sending_after_response:
        sender.join(timeout_s)
    sock.close()
    sender.join(5)
    before = sent if sent_before_response is None else sent_before_response
    return RawExchange(response, before, sent, send_error, read_error)


def request_head(path: str, content_type: str, length: int | None = None) -> bytes:
    """Request line and headers; without ``length`` the body is sent chunked."""
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"
    ).encode()


def chunked(pieces: Iterator[bytes] | Sequence[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked transfer coding of ``pieces``, ending with the last-chunk."""
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


def file_part_head(boundary: str, field: str = "file", filename: str = "digit.png") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
