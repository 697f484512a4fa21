"""Past capacity, answer fast: an admission that waited too long before its work started
is allowed unchanged at once (`--shed-after`), so a CPU-starved webhook never holds pod
creation until the apiserver's timeout.

What a request waited is read from gevent. A worker runs one greenlet per connection;
the hub polls for readable connections, then runs each ready greenlet in turn, and an
admission does not yield while the receiver's answers are cached. So a request was
there no later than the hub's last poll, unless its connection was still busy with the
previous answer then: a keep-alive client sends its next review only once it has the
last answer. The wait is the time since the later of the two. gunicorn's own stamps
cannot tell: a request is read and parsed only once its greenlet runs, right before
the handler; nor can a semaphore, as at most one admission per worker is in flight.

Measured at 450/s (2x the closed-loop rate of that minute) over at most 64
connections, 2 busy cores, one run: no shedding 207/s answered, p50 294 ms, p99 571
ms; this budget 445/s, p50 72 ms, p99 358 ms, 49 % shed; gevent's pool at 4
connections per worker (the rest wait in the accept backlog, where no wait is seen
and nothing can be shed) 433/s, p50 114 ms, p99 341 ms, none shed.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shedder:
    budget_seconds: float
    clock: HubWait

    def overdue(self) -> bool:
        return self.clock.waited() > self.budget_seconds

    def answered(self) -> None:
        self.clock.answered()


class HubWait:
    """Per gevent worker: how long the current connection's request has waited.

    A check watcher runs right after every poll (at the highest priority, before the
    greenlets that poll woke). Monotonic time: libev's own `now()` is moved forward by
    every gevent.Timeout started (gunicorn starts one per keep-alive request).
    """

    def __init__(self) -> None:
        import gevent  # noqa: PLC0415 - only in a gevent worker, after monkey-patching

        self._current = gevent.getcurrent
        self.polled = time.monotonic()
        # Connection greenlet → when it last answered.
        self._answered: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._watcher = gevent.get_hub().loop.check(ref=False, priority=2)
        self._watcher.start(self._mark)

    def _mark(self) -> None:
        self.polled = time.monotonic()

    def waited(self) -> float:
        since = max(self.polled, self._answered.get(self._current(), 0.0))
        return time.monotonic() - since

    def answered(self) -> None:
        self._answered[self._current()] = time.monotonic()
