"""A gunicorn worker on gevent's pywsgi server, for the recommender's sizing answers.

A sizing answer is a dictionary read, so the server's own work per request is nearly
all of its cost. gunicorn's gevent worker parses each request in Python through its
header policy (forwarding checks, an errors wrapper, config lookups per request);
gevent's pywsgi does less. Measured in one run, alternating, vegeta at 1,000 GETs/s
over keep-alive HTTP/1.1 on 2 cores, a WSGI app returning a prebuilt answer: the
gevent worker with our hooks 320-347 us of worker CPU per request, this worker
238-275 us. gunicorn still runs the master, the worker's lifecycle and its logging.

The handler adds what gunicorn's gevent worker has through our hooks (see serving.py):
headers and body in one write, a yield after each request so that a keep-alive client
sending its next request at once cannot starve the other connections, and an idle
timeout for keep-alive connections, which pywsgi has not.
"""

from __future__ import annotations

from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler


class LeanHandler(PyWSGIHandler):  # type: ignore[misc]
    idle_seconds = 120.0  # gunicorn's `keepalive`, set by the worker

    def handle(self) -> None:
        self.socket.settimeout(self.idle_seconds)  # a timed-out read ends the connection
        super().handle()

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        gevent.sleep(0)
        return result

    def log_request(self) -> None:
        """No access log: gunicorn's builds a record per request for a handler that
        is not configured."""

    def _write_with_headers(self, data: bytes) -> None:
        """pywsgi's, with the first body chunk in the same send as the headers."""
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


class LeanPyWSGIWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    wsgi_handler = LeanHandler

    def init_process(self) -> None:
        LeanHandler.idle_seconds = float(self.cfg.keepalive)  # one worker per process
        super().init_process()
