"""The real `runner-sizer-recommender` on loopback, and job history to backfill for it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from runner_sizer.devcluster.binaries import BinariesUnavailableError, ensure_binaries
from runner_sizer.devcluster.job_history import GIB, RECORDER_TARGET, PastRun, history
from runner_sizer.devcluster.prometheus import PrometheusServer
from runner_sizer.devcluster.recommender_process import (
    READ_TOKEN,
    SCRIPT,
    RecommenderProcess,
    sizing_path,
)

__all__ = [
    "GIB",
    "READ_TOKEN",
    "RECORDER_TARGET",
    "SCRIPT",
    "PastRun",
    "RecommenderProcess",
    "history",
    "metric_values",
    "prometheus_holding",
    "sizing_path",
]


def metric_values(text: str, name: str) -> Iterator[float]:
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            yield float(line.rsplit(" ", 1)[1])


@contextmanager
def prometheus_holding(runs: Sequence[PastRun]) -> Iterator[PrometheusServer]:
    """A real Prometheus backfilled with `runs` (none: empty); skips where it cannot be built."""
    try:
        server = PrometheusServer(ensure_binaries())
    except BinariesUnavailableError as error:
        pytest.skip(str(error))
    if runs:
        server.backfill(history(runs))
    server.start()
    try:
        yield server
    finally:
        server.stop()
