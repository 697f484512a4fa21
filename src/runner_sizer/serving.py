"""The gunicorn worker both servers (webhook, recommender) run: gevent's pywsgi server
under gunicorn, with what gunicorn's own gevent worker had from our hooks.

gunicorn's gevent worker parses each request in Python through its header policy
(forwarding checks, an errors wrapper, config lookups per request); gevent's pywsgi
does less. Measured alternately in one run on the quiet 2-core machine, vegeta on the
same cores:

- a WSGI app returning a prebuilt answer, 1,000 GETs/s over keep-alive HTTP/1.1:
  the gevent worker 320-347 us of worker CPU per request, this one 238-275 us;
- the recommender's sizing answers, 1,000/s: 375-401 against 288-311 us;
- the webhook over TLS, closed loop c=8: 532-548 against 464-498 us per admission,
  2,528-2,654 against 2,708-2,952 admissions/s.

gunicorn still runs the master, the workers' lifecycle, TLS settings and logging.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, BinaryIO, ClassVar

import gevent
from gevent.pywsgi import format_date_time
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler
from prometheus_client import Counter

from runner_sizer.request_headers import RequestHeaders, environ_items, read_headers


class LeanHandler(PyWSGIHandler):  # type: ignore[misc]
    """pywsgi's handler, plus one send per answer, a yield after each request, headers
    read without the email package and the bookkeeping `close_idle` ends idle
    connections by."""

    # Each open connection's handler and when it last finished a request (one worker
    # per process: one event loop, no lock).
    open_connections: ClassVar[dict[LeanHandler, float]] = {}
    # Set in the worker, once prometheus_client's multiprocess mode is on.
    connections: ClassVar[Counter | None] = None
    provided_date: bytes | bool | None  # pywsgi's: the app's Date header, if any

    def handle(self) -> None:
        self.open_connections[self] = time.monotonic()
        if self.connections is not None:
            self.connections.inc()
        try:
            super().handle()
        finally:
            self.open_connections.pop(self, None)

    def handle_one_request(self) -> Any:
        """Let every other ready connection run before this one reads its next request.

        A keep-alive client that sends its next request at once finds its greenlet never
        blocking on read, so one busy connection could starve the others for seconds
        under load (measured with wrk on the webhook: p99 1.5 s with TLS).
        """
        result = super().handle_one_request()
        self.open_connections[self] = time.monotonic()
        gevent.sleep(0)
        return result

    def MessageClass(self, stream: BinaryIO, *_: object) -> RequestHeaders:  # noqa: N802 - pywsgi's name
        return read_headers(stream)

    def _headers(self) -> list[tuple[str, str]]:
        return environ_items(self.headers)

    def log_request(self) -> None:
        """No access log: gunicorn's builds a record per request for a handler that is
        not configured."""

    def finalize_headers(self) -> None:
        if self.provided_date is None:
            self.response_headers.append((b"Date", http_date()))
            self.provided_date = True
        super().finalize_headers()

    def _write_with_headers(self, data: bytes) -> None:
        """pywsgi's, with the first body chunk in the headers' send: over TLS one record
        and one syscall per answer instead of two (py-spy --native on the webhook under
        1,000 admissions/s, before: `write` 14 % of the worker, headers 12.7 %)."""
        self.headers_sent = True
        self.finalize_headers()
        head = bytearray(b"HTTP/1.1 ")
        head += self.status
        head += b"\r\n"
        for name, value in self.response_headers:
            head += name + b": " + value + b"\r\n"
        head += b"\r\n"
        if self.response_use_chunked and data:
            head += b"%x\r\n" % len(data) + data + b"\r\n"
        else:
            head += data
        self._sendall(head)


@lru_cache(maxsize=2)
def _formatted_date(second: int) -> bytes:
    return bytes(format_date_time(second))


def http_date() -> bytes:
    """The Date header's value, formatted once a second (pywsgi formats it per answer)."""
    return _formatted_date(int(time.time()))


def close_idle(open_connections: dict[LeanHandler, float], idle_seconds: float) -> None:
    """Shut down every connection that has not finished a request for `idle_seconds`:
    its handler, waiting for the next request line, reads the end and returns.

    pywsgi has no keep-alive timeout, and a socket timeout makes every wait on that
    socket start and stop a timer: 12 % of the worker's time, py-spy at 1,000/s.
    """
    while True:
        gevent.sleep(idle_seconds / 4)
        now = time.monotonic()
        for handler, last in list(open_connections.items()):
            connection = getattr(handler, "socket", None)
            if now - last > idle_seconds and connection is not None:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


def freeze_when_ready(problem: Callable[[], str], poll_seconds: float = 0.5) -> None:
    """Once `problem()` is empty, move every object alive to the collector's permanent
    generation, where full collections no longer walk it.

    In a webhook worker a full collection walked the imported modules and the history
    copy: 36-71 ms of the event loop, in both workers at once, about every 70 s at 500
    admissions/s beside a 50,000-key history (gc callbacks, bench.history), and the
    admissions behind it were shed. What is alive once the worker is ready lives as
    long as the worker or is freed by its reference count (none of it is cyclic).
    """
    while problem():
        gevent.sleep(poll_seconds)
    gc.freeze()


class LeanPyWSGIWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    wsgi_handler = LeanHandler

    def run(self) -> None:
        """After gevent's monkey-patching; gunicorn's `keepalive` is the idle timeout."""
        LeanHandler.connections = Counter(
            "runner_sizer_http_connections_total",
            "Connections accepted: what clients open past their kept-alive ones (an apiserver "
            "keeps up to 25 idle to a webhook), each a TLS handshake where TLS is on.",
        )
        sweeper = gevent.spawn(close_idle, LeanHandler.open_connections, float(self.cfg.keepalive))
        try:
            super().run()
        finally:
            sweeper.kill()


# gunicorn's `worker_class`: loaded by gunicorn in the master, as it loads its own.
WORKER_CLASS = f"{__name__}.{LeanPyWSGIWorker.__name__}"
