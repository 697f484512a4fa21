"""The real `runner-sizer-recommender` on loopback, and job history to backfill for it."""

from __future__ import annotations

from collections.abc import Iterator

from runner_sizer.devcluster.job_history import GIB, RECORDER_TARGET, PastRun, history
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
    "sizing_path",
]


def metric_values(text: str, name: str) -> Iterator[float]:
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            yield float(line.rsplit(" ", 1)[1])
