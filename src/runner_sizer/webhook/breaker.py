"""A circuit breaker: stop calling a receiver that keeps failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    """Opens after `failures` consecutive failures, for `cooldown` seconds.

    After the cooldown one trial call is let through (half-open): success closes
    the breaker, failure opens it for another cooldown.
    """

    failures: int
    cooldown: float
    clock: Callable[[], float] = time.monotonic
    _consecutive: int = field(default=0, init=False)
    _open_until: float = field(default=0.0, init=False)
    _trial_running: bool = field(default=False, init=False)

    @property
    def is_open(self) -> bool:
        return self._consecutive >= self.failures and (
            self.clock() < self._open_until or self._trial_running
        )

    def allow(self) -> bool:
        if self._consecutive < self.failures:
            return True
        if self.clock() < self._open_until or self._trial_running:
            return False
        self._trial_running = True
        return True

    def record_success(self) -> None:
        self._consecutive = 0
        self._trial_running = False

    def record_failure(self) -> None:
        self._consecutive += 1
        self._trial_running = False
        if self._consecutive >= self.failures:
            self._open_until = self.clock() + self.cooldown
