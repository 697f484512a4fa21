"""An HTTP/2 client over TLS at the protocol's level (h2's state machine, a blocking
socket): streams opened together, bodies past the windows, resets, a small window of
its own, and bytes that break the protocol."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.settings import SettingCodes


@dataclass
class Answer:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset_code: int | None = None


class H2Client:
    def __init__(
        self, url: str, ca_file: Path, protocols: tuple[str, ...] = ("h2",), window: int = 65535
    ) -> None:
        host, port = url.removeprefix("https://").rsplit(":", 1)
        context = ssl.create_default_context(cafile=str(ca_file))
        context.set_alpn_protocols(list(protocols))
        raw = socket.create_connection((host, int(port)), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.authority = f"{host}:{port}"
        self.protocol = self.sock.selected_alpn_protocol()
        self.connection = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.answers: dict[int, Answer] = {}
        self.terminated: ConnectionTerminated | None = None
        if self.protocol == "h2":
            self.connection.initiate_connection()
            self.connection.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: window})
            self.flush()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def flush(self) -> None:
        if data := self.connection.data_to_send():
            self.sock.sendall(data)

    def open(self, method: str, path: str, length: int | None = None) -> int:
        stream_id: int = self.connection.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":path", path.encode()),
            (b":scheme", b"https"),
            (b":authority", self.authority.encode()),
            (b"content-type", b"application/json"),
        ]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        self.connection.send_headers(stream_id, headers, end_stream=length == 0)
        self.answers[stream_id] = Answer()
        self.flush()
        return stream_id

    def send(self, stream_id: int, data: bytes, end: bool = True) -> None:
        """Send `data` as the windows allow, reading the server meanwhile, until the
        server ends or resets the stream."""
        rest = memoryview(data)
        answer = self.answers[stream_id]
        while rest and answer.reset_code is None:
            window = min(
                self.connection.local_flow_control_window(stream_id),
                self.connection.max_outbound_frame_size,
            )
            if not window:
                self.read_once()
                continue
            chunk, rest = rest[:window], rest[window:]
            self.connection.send_data(stream_id, chunk, end_stream=end and not rest)
            self.flush()
        if end and not data:
            self.connection.end_stream(stream_id)
            self.flush()

    def request(self, method: str, path: str, body: bytes = b"") -> int:
        stream_id = self.open(method, path, len(body))
        if body:
            self.send(stream_id, body)
        return stream_id

    def reset(self, stream_id: int) -> None:
        self.connection.reset_stream(stream_id)
        self.flush()

    def read_once(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        for event in self.connection.receive_data(data):
            self._take(event)
        self.flush()

    def _take(self, event: Any) -> None:
        answer = self.answers.get(getattr(event, "stream_id", None) or 0)
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
        elif answer is None or isinstance(event, WindowUpdated):
            return
        elif isinstance(event, ResponseReceived):
            answer.headers = dict(event.headers or [])
            answer.status = int(answer.headers[b":status"])
        elif isinstance(event, DataReceived):
            answer.body += event.data or b""
            self.connection.acknowledge_received_data(
                event.flow_controlled_length or 0, event.stream_id or 0
            )
        elif isinstance(event, StreamEnded):
            answer.ended = True
        elif isinstance(event, StreamReset):
            answer.reset_code = event.error_code

    def wait(self, *stream_ids: int) -> list[Answer]:
        """The answers of `stream_ids`, once each has ended or been reset."""
        answers = [self.answers[stream_id] for stream_id in stream_ids]
        while not all(a.ended or a.reset_code is not None for a in answers):
            self.read_once()
        return answers

    def read_until_closed(self) -> None:
        try:
            while True:
                self.read_once()
        except (ConnectionError, OSError):
            return
