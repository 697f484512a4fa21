"""HTTP/2 for the servers' worker (serving.py): a connection whose TLS handshake chose
h2 (ALPN) is served here, a WSGI application behind h2's state machine.

The apiserver's webhook client speaks HTTP/2 to a server that offers it, and then sends
every admission over one connection. Over HTTP/1.1 it keeps at most 25 idle connections
per webhook: at 200 pod creations/s on the 2-core machine it held 25-33 (ss, every
100 ms) and closed and re-opened those past its pool, each a TLS handshake on both sides.

One greenlet reads the connection and feeds h2. Each request runs the application in a
greenlet of its own from its headers on, reading its body as it arrives; answers share
the connection under a lock. Flow control bounds what a connection buffers: a body's
bytes are handed back to the client's window only as the application reads them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes
from wsgiref.types import WSGIApplication, WSGIEnvironment

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError

log = logging.getLogger(__name__)

H2 = "h2"
HTTP11 = "http/1.1"
# Unread request bytes one connection may hold, over all its streams (h2's connection
# window; each stream's stays at the protocol's 64 KiB).
CONNECTION_WINDOW = 1 << 20
# h2's own limit on open streams, which it enforces; streams a client reset count here
# too until their application returns.
MAX_STREAMS = 100
_READ_SIZE = 65536
# Meaningless in HTTP/2, and h2 refuses to send them.
_CONNECTION_HEADERS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


def alpn_protocols(http2: bool) -> tuple[str, ...]:
    """What a server's TLS context offers, most preferred first."""
    return (H2, HTTP11) if http2 else (HTTP11,)


def negotiated(sock: Any) -> str:
    """The protocol a TLS handshake chose; HTTP/1.1 without TLS or ALPN."""
    chosen = getattr(sock, "selected_alpn_protocol", lambda: None)()
    return chosen or HTTP11


class _Body(io.RawIOBase):
    """A request's body as it arrives; reading blocks the request's greenlet only."""

    def __init__(self, consumed: Callable[[int], None]) -> None:
        super().__init__()
        self._chunks: deque[bytes] = deque()
        self._arrived = Event()
        self.ended = False
        self._consumed = consumed

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._arrived.set()

    def end(self) -> None:
        self.ended = True
        self._arrived.set()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all with -1), fewer only at the body's end. What has
        arrived goes back to the client's window before each wait and at the end: one
        acknowledgement for a review that came whole."""
        parts: list[bytes] = []
        wanted = size if size >= 0 else sys.maxsize
        taken = unacknowledged = 0
        while taken < wanted:
            if not self._chunks:
                if self.ended:
                    break
                if unacknowledged:
                    self._consumed(unacknowledged)
                    unacknowledged = 0
                self._arrived.clear()
                self._arrived.wait()
                continue
            chunk = self._chunks.popleft()
            if taken + len(chunk) > wanted:
                self._chunks.appendleft(chunk[wanted - taken :])
                chunk = chunk[: wanted - taken]
            parts.append(chunk)
            taken += len(chunk)
            unacknowledged += len(chunk)
        if unacknowledged:
            self._consumed(unacknowledged)
        return b"".join(parts)

    def unread(self) -> int:
        return sum(map(len, self._chunks))


class _Stream:
    def __init__(self, body: _Body) -> None:
        self.body = body
        self.window_opened = Event()
        self.reset = False


class H2Session:
    """One HTTP/2 connection, until the client closes it or breaks the protocol."""

    def __init__(
        self,
        sock: Any,
        application: WSGIApplication,
        base_environ: Callable[[], WSGIEnvironment],
        on_answered: Callable[[], None],
    ) -> None:
        self._sock = sock
        self._application = application
        self._base_environ = base_environ
        self._on_answered = on_answered
        self._connection = H2Connection(
            H2Configuration(
                client_side=False,
                header_encoding=None,
                # What we send is the application's few headers, lowercased here.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self._writing = Semaphore()
        self._streams: dict[int, _Stream] = {}
        self._answering: set[Any] = set()  # greenlets

    def serve(self) -> None:
        connection = self._connection
        connection.initiate_connection()
        connection.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        try:
            while data := self._sock.recv(_READ_SIZE):
                with self._writing:
                    events = connection.receive_data(data)
                    self._flush()
                if not self._dispatch(events):
                    break
        except ProtocolError as error:
            log.info("closing an HTTP/2 connection that broke the protocol: %s", error)
            with self._writing:
                connection.close_connection(ErrorCodes.PROTOCOL_ERROR)
                self._flush()
        except OSError:
            pass  # the peer went away; its streams have no one to answer
        finally:
            gevent.killall(list(self._answering))
            for stream in self._streams.values():
                stream.body.end()

    def _dispatch(self, events: Iterable[Any]) -> bool:
        """Act on what h2 read; False once the client has ended the connection."""
        for event in events:
            if isinstance(event, RequestReceived):
                self._start(event)
            elif isinstance(event, DataReceived):
                self._received(event)
            elif isinstance(event, StreamEnded) and event.stream_id in self._streams:
                self._streams[event.stream_id].body.end()
            elif isinstance(event, StreamReset) and event.stream_id in self._streams:
                stream = self._streams[event.stream_id]
                stream.reset = True
                stream.body.end()
                stream.window_opened.set()
            elif isinstance(event, WindowUpdated):
                opened = (
                    self._streams.values()
                    if not event.stream_id
                    else (
                        [self._streams[event.stream_id]] if event.stream_id in self._streams else []
                    )
                )
                for stream in opened:
                    stream.window_opened.set()
            elif isinstance(event, ConnectionTerminated):
                return False
        return True

    def _received(self, event: DataReceived) -> None:
        """Hand a body's bytes to its request; the window gets back at once what no one
        will read: padding, and bodies of streams already answered."""
        stream_id, data = event.stream_id or 0, event.data or b""
        stream = self._streams.get(stream_id)
        unread = (event.flow_controlled_length or 0) - (len(data) if stream else 0)
        if stream is not None:
            stream.body.feed(data)
        if unread:
            self._consumed(stream_id, unread)

    def _start(self, event: RequestReceived) -> None:
        stream_id = event.stream_id or 0
        if len(self._answering) >= MAX_STREAMS:
            # Streams a client reset still run here until they answer.
            with self._writing:
                self._connection.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
                self._flush()
            return
        stream = _Stream(_Body(lambda size: self._consumed(stream_id, size)))
        self._streams[stream_id] = stream
        environ = self._environ(event.headers or [], stream.body)
        answering = gevent.spawn(self._answer, stream_id, stream, environ)
        self._answering.add(answering)
        answering.link(self._answering.discard)

    def _environ(self, headers: Iterable[tuple[bytes, bytes]], body: _Body) -> WSGIEnvironment:
        environ = self._base_environ()
        environ.update(
            {
                "SCRIPT_NAME": "",
                "QUERY_STRING": "",
                "SERVER_PROTOCOL": "HTTP/2.0",
                "wsgi.url_scheme": "https",
                "wsgi.input": body,
                "wsgi.input_terminated": True,
                "wsgi.errors": sys.stderr,
            }
        )
        for raw_name, raw_value in headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            if name == ":method":
                environ["REQUEST_METHOD"] = value
            elif name == ":path":
                path, _, query = value.partition("?")
                environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1")
                environ["QUERY_STRING"] = query
            elif name == ":authority":
                environ["HTTP_HOST"] = value
            elif name in ("content-type", "content-length"):
                environ[name.upper().replace("-", "_")] = value
            elif not name.startswith(":"):
                key = "HTTP_" + name.upper().replace("-", "_")
                separator = "; " if name == "cookie" else ", "
                environ[key] = f"{environ[key]}{separator}{value}" if key in environ else value
        return environ

    def _answer(self, stream_id: int, stream: _Stream, environ: WSGIEnvironment) -> None:
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], _exc: Any = None) -> Any:
            answer["status"], answer["headers"] = status, headers
            return lambda _data: None  # no application here writes past its return value

        try:
            body = b"".join(self._application(environ, start_response))
        except Exception:
            log.exception("the application failed an HTTP/2 request")
            answer, body = {"status": "500 Internal Server Error", "headers": []}, b""
        if environ.get("REQUEST_METHOD") == "HEAD":
            body = b""
        # A reset stream or a closed connection has no one waiting for the answer.
        with contextlib.suppress(StreamClosedError, OSError):
            try:
                self._send(stream_id, stream, answer["status"], answer["headers"], body)
            finally:
                self._finish(stream_id, stream)
                self._on_answered()

    def _send(
        self,
        stream_id: int,
        stream: _Stream,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        fields = [(b":status", status[:3].encode())]
        for name, value in headers:
            lowered = name.lower().encode("latin-1")
            if lowered not in _CONNECTION_HEADERS:
                fields.append((lowered, value.encode("latin-1")))
        rest = memoryview(body)
        with self._writing:
            self._connection.send_headers(stream_id, fields, end_stream=not body)
            rest = self._send_allowed(stream_id, stream, rest)
        while rest and not stream.reset:
            stream.window_opened.wait()
            with self._writing:
                rest = self._send_allowed(stream_id, stream, rest)

    def _send_allowed(self, stream_id: int, stream: _Stream, rest: memoryview) -> memoryview:
        """Queue as much of `rest` as the windows allow and send it with what was queued
        before (one TLS record for a whole answer); what is left. The caller holds the
        write lock."""
        connection = self._connection
        while rest:
            window = min(
                connection.local_flow_control_window(stream_id),
                connection.max_outbound_frame_size,
            )
            if not window:
                # Before the send, which may yield to the reader that opens the window.
                stream.window_opened.clear()
                break
            chunk, rest = rest[:window], rest[window:]
            connection.send_data(stream_id, chunk, end_stream=not rest)
        self._flush()
        return rest

    def _finish(self, stream_id: int, stream: _Stream) -> None:
        """Forget a stream; what the application left unread goes back to the window,
        and a body still arriving is refused."""
        # Both before any yield: from here on the reader hands this stream's bytes back.
        self._streams.pop(stream_id, None)
        unread = stream.body.unread()
        with self._writing:
            if unread:
                self._connection.acknowledge_received_data(unread, stream_id)
            if not stream.body.ended:
                with contextlib.suppress(StreamClosedError, ProtocolError):
                    self._connection.reset_stream(stream_id, ErrorCodes.NO_ERROR)
            self._flush()

    def _consumed(self, stream_id: int, size: int) -> None:
        with self._writing:
            self._connection.acknowledge_received_data(size, stream_id)
            self._flush()

    def _flush(self) -> None:
        """Send what h2 has queued; the caller holds the write lock."""
        if data := self._connection.data_to_send():
            self._sock.sendall(data)
