"""The sizing strategy: one job's finished runs in, a recommendation out. Pure.

It sees nothing but the runs (oldest first or in any order) and its parameters,
so replaying a trace of past runs is calling `recommend` on each prefix of the
trace: what it would have answered before each run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from runner_sizer.webhook.quantity import round_up
from runner_sizer.webhook.sizing import PLAUSIBLE_MAXIMUM, PLAUSIBLE_MINIMUM


@dataclass(frozen=True, slots=True)
class Run:
    """What one finished build container used."""

    end: float  # unix seconds of its last sample
    mean_cores: float | None  # CPU-seconds ÷ seconds between its first and last sample seen
    peak_memory: float | None  # bytes: the highest working set seen


@dataclass(frozen=True)
class StrategyParams:
    min_runs: int = 5
    max_runs: int = 30
    cpu_percentile: float = 75.0
    memory_percentile: float = 95.0
    memory_margin: float = 0.15  # a fraction: 0.15 adds 15 %


@dataclass(frozen=True)
class Sizing:
    """Requests (and a memory limit) for one job; a resource with too few runs is None."""

    cpu: Decimal | None
    memory: Decimal | None
    memory_limit: Decimal | None
    runs: int


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), interpolated linearly between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _quantity(resource: str, value: float) -> Decimal:
    """Rounded up to whole millicores or MiB, within what the webhook accepts."""
    rounded = round_up(resource, Decimal(repr(value)))
    return min(max(rounded, PLAUSIBLE_MINIMUM[resource]), PLAUSIBLE_MAXIMUM[resource])


def recommend(runs: Sequence[Run], params: StrategyParams) -> Sizing | None:
    """From the last `max_runs` runs; None (cold start) below `min_runs` for both resources.

    Memory: a high percentile of per-run peaks plus the margin; its limit the
    largest peak plus the margin. CPU: a percentile of per-run mean cores, no limit
    (builds swing between runs; a CPU limit only throttles).
    """
    recent = sorted(runs, key=lambda run: run.end)[-params.max_runs :]
    cores = [r.mean_cores for r in recent if r.mean_cores is not None and r.mean_cores >= 0]
    peaks = [r.peak_memory for r in recent if r.peak_memory is not None and r.peak_memory > 0]
    cpu = memory = limit = None
    if len(cores) >= params.min_runs:
        cpu = _quantity("cpu", percentile(cores, params.cpu_percentile))
    if len(peaks) >= params.min_runs:
        grow = 1 + params.memory_margin
        memory = _quantity("memory", percentile(peaks, params.memory_percentile) * grow)
        limit = _quantity("memory", max(peaks) * grow)
    if cpu is None and memory is None:
        return None
    return Sizing(cpu, memory, limit, len(recent))
