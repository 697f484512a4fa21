"""The sizing strategy: one job's finished runs in, a recommendation out. Pure.

It sees nothing but the runs (oldest first or in any order) and its parameters,
so replaying a trace of past runs is calling `recommend` on each prefix of the
trace: what it would have answered before each run.

OOM kills are facts it keeps too (`Kill`): after one, the next recommendation is
at least max(limit x `oom_bump_factor`, limit + `oom_bump_bytes`) of the killed
run, request and limit, until `oom_decay_runs` runs have finished after it
without a kill. A suspected kill (exit 137 without `OOMKilled`, e.g. one process
of the build killed by the kernel) counts the same when its peak reached
`suspected_peak_ratio` of the limit, or its peak is unknown; below that it was a
kill of another kind (a cancel, a timeout) and is ignored.
"""

from __future__ import annotations

import bisect
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
    start: float | None = None  # unix seconds of its first CPU sample, when seen


@dataclass(frozen=True, slots=True)
class Kill:
    """One OOM kill of a job's build container."""

    at: float  # unix seconds it ended
    limit: float  # bytes: the memory limit it had
    suspected: bool = False  # exit 137 without OOMKilled
    peak: float | None = None  # bytes: the highest working set seen, if known


MIB = 2**20


@dataclass(frozen=True)
class StrategyParams:
    min_runs: int = 5
    max_runs: int = 30
    cpu_percentile: float = 75.0
    memory_percentile: float = 95.0
    memory_margin: float = 0.15  # a fraction: 0.15 adds 15 %
    limit_margin: float = 1.0  # a fraction added to the largest peak for the limit: 2x it
    oom_bump_factor: float = 1.2
    oom_bump_bytes: float = 100 * MIB
    oom_decay_runs: int = 10
    suspected_peak_ratio: float = 0.9


@dataclass(frozen=True)
class Sizing:
    """Requests (and a memory limit) for one job; a resource with too few runs is None."""

    cpu: Decimal | None
    memory: Decimal | None
    memory_limit: Decimal | None
    runs: int
    oom_floor: Decimal | None = None  # memory an OOM kill still holds the job at
    killed_at: float | None = None  # unix seconds of the latest kill in force


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


def in_force(runs: Sequence[Run], kills: Sequence[Kill], params: StrategyParams) -> list[Kill]:
    """The kills whose bump still holds the job.

    A kill's bump lasts until `oom_decay_runs` runs ended after it without a kill:
    runs ended after it, less kills after it (a killed run is a run too; a kill
    whose run is missing only makes the bump last longer).
    """
    ends = sorted(run.end for run in runs)
    times = sorted(kill.at for kill in kills)
    holding = []
    for kill in kills:
        faint = kill.peak is not None and kill.peak < params.suspected_peak_ratio * kill.limit
        if kill.suspected and faint:
            continue
        after = len(ends) - bisect.bisect_right(ends, kill.at)
        later_kills = len(times) - bisect.bisect_right(times, kill.at)
        if after - later_kills < params.oom_decay_runs:
            holding.append(kill)
    return holding


def bump(kill: Kill, params: StrategyParams) -> float:
    return max(kill.limit * params.oom_bump_factor, kill.limit + params.oom_bump_bytes)


def recommend(
    runs: Sequence[Run], params: StrategyParams, kills: Sequence[Kill] = ()
) -> Sizing | None:
    """From the last `max_runs` runs; None (cold start) below `min_runs` for both resources.

    Memory: a high percentile of per-run peaks plus `memory_margin`; its limit the
    largest peak plus `limit_margin`. CPU: a percentile of per-run mean cores, no
    limit (builds swing between runs; a CPU limit only throttles). A kill not yet
    decayed raises memory request and limit to its bump, even at a cold start.
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
        limit = _quantity("memory", max(peaks) * (1 + params.limit_margin))
        limit = max(limit, memory)
    holding = in_force(runs, kills, params) if kills else []
    floor = killed_at = None
    if holding:
        floor = _quantity("memory", max(bump(kill, params) for kill in holding))
        killed_at = max(kill.at for kill in holding)
        memory = floor if memory is None else max(memory, floor)
        limit = floor if limit is None else max(limit, floor)
    if cpu is None and memory is None:
        return None
    return Sizing(cpu, memory, limit, len(recent), floor, killed_at)
