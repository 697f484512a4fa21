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
