"""A problem that recurs on every retry is logged once per distinct cause."""

from __future__ import annotations

import logging


class RecurringProblem:
    def __init__(self, logger: logging.Logger, message: str) -> None:
        self._logger = logger
        self._message = message
        self._last = ""

    def occurred(self, error: Exception) -> None:
        text = str(error)
        if text != self._last:
            self._logger.warning(self._message, extra={"error": text})
        self._last = text

    def resolved(self) -> None:
        self._last = ""
