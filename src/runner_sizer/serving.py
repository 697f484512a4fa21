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

from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler


class LeanHandler(PyWSGIHandler):  # type: ignore[misc]
    """pywsgi's handler, plus an idle timeout, one send per answer and a yield."""

    idle_seconds = 120.0  # gunicorn's `keepalive`, set by the worker

    def handle(self) -> None:
        """pywsgi has no keep-alive timeout: a socket timeout ends an idle connection
        (a read that times out ends the request loop)."""
        self.socket.settimeout(self.idle_seconds)
        super().handle()

    def handle_one_request(self) -> Any:
        """Let every other ready connection run before this one reads its next request.

        A keep-alive client that sends its next request at once finds its greenlet never
        blocking on read, so one busy connection could starve the others for seconds
        under load (measured with wrk on the webhook: p99 1.5 s with TLS).
        """
        result = super().handle_one_request()
        gevent.sleep(0)
        return result

    def log_request(self) -> None:
        """No access log: gunicorn's builds a record per request for a handler that is
        not configured."""

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


class LeanPyWSGIWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    wsgi_handler = LeanHandler

    def init_process(self) -> None:
        LeanHandler.idle_seconds = float(self.cfg.keepalive)  # one worker per process
        super().init_process()


# gunicorn's `worker_class`: loaded by gunicorn in the master, as it loads its own.
WORKER_CLASS = f"{__name__}.{LeanPyWSGIWorker.__name__}"
