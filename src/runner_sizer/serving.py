"""What the gunicorn servers (webhook, recommender) share beyond logging."""

from __future__ import annotations

from typing import Any


def yield_to_other_connections(_worker: Any, _req: Any, _environ: Any, _resp: Any) -> None:
    """gunicorn `post_request`: let every other ready connection run before this one
    reads its next request.

    A keep-alive client that sends its next request at once finds its greenlet never
    blocking on read, so one busy connection could starve the others for seconds under
    load (measured with wrk on the webhook: p99 1.5 s with TLS).
    """
    import gevent  # noqa: PLC0415 - the worker has patched everything by now

    gevent.sleep(0)


def send_head_and_body_at_once(_worker: Any) -> None:
    """gunicorn `post_worker_init`: a response whose whole body comes in one piece goes out
    in one write, headers included.

    gunicorn writes the headers, then the body: over TLS two records, two `SSL_write`s
    and two syscalls per answer, most of what its sending cost (py-spy --native on the
    webhook under 1,000 admissions/s: `write` 14 % of the worker, headers 12.7 %).
    gunicorn builds each response from the module's `Response`, so a subclass put there
    serves every response this worker creates.
    """
    from gunicorn import util  # noqa: PLC0415
    from gunicorn.http import wsgi  # noqa: PLC0415

    class OneWriteResponse(wsgi.Response):  # type: ignore[misc]
        def write(self, arg: bytes) -> None:
            if (
                self.headers_sent  # type: ignore[has-type]
                or self.chunked
                or self._omits_body
                or not isinstance(arg, bytes)
                or self.response_length != len(arg)
            ):
                super().write(arg)
                return
            head = self.default_headers()
            head.extend(f"{name}: {value}\r\n" for name, value in self.headers)
            self.headers_sent = True
            self.sent = len(arg)
            util.write(self.sock, "".join(head).encode("latin-1") + b"\r\n" + arg)

    wsgi.Response = OneWriteResponse
