"""Past capacity, answer fast: an admission that waited too long before its work started
is allowed unchanged at once (`--shed-after`), so a CPU-starved webhook never holds pod
creation until the apiserver's timeout.

What a request waited is read from gevent's hub. A worker runs one greenlet per
connection; the hub polls for readable connections, then runs each ready greenlet in
turn, and a greenlet's admission does not yield while the receiver's answers are
cached. A request noticed at one poll therefore starts after the work of every
greenlet that ran before it since that poll: the time since the hub last returned from
its poll is the time the current request has queued inside the process, at least.
gunicorn's own stamps cannot tell: the request is read and parsed only once its
greenlet runs, right before the handler (measured: 0 shed at 2x capacity).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Shedder:
    budget_seconds: float
    waited: Callable[[], float]

    def overdue(self) -> bool:
        return self.waited() > self.budget_seconds


class HubLag:
    """Seconds since this worker's gevent hub last returned from polling for I/O.

    A check watcher runs right after every poll; at the highest priority it runs before
    the greenlets that poll woke. Monotonic time: libev's own `now()` is moved forward
    by every gevent.Timeout started (gunicorn starts one per keep-alive request).
    """

    def __init__(self) -> None:
        import gevent  # noqa: PLC0415 - only in a gevent worker, after monkey-patching

        self.polled = time.monotonic()
        self._watcher = gevent.get_hub().loop.check(ref=False, priority=2)
        self._watcher.start(self._mark)

    def _mark(self) -> None:
        self.polled = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.polled
