"""Replay a trace of past runs through sizing strategies and score each the same way. Pure.

Rules (issue 10 §2), so every strategy is judged alike:

- Runs are replayed in order of `start`. Before each run a strategy is asked for a
  recommendation from what it knows; a run becomes history only at
  `start + duration_s`, and a simulated kill is fed back at that time too.
- OOM kill: the run's peak exceeds the effective memory limit, the strategy's limit or,
  if it sets none, `default_memory` (what the runner's config applies). A row with
  `oom_killed=true` recorded a peak cut off at the limit of its time: a lower bound, so
  it is a kill under any limit ≤ that peak and a success above it.
- A killed run enters history with its peak cut off at the limit that killed it, as
  Prometheus would have seen it.
- Under-requested: peak above the memory request (any run).
- CPU is per-run mean cores, CPU-seconds ÷ duration. The request-to-usage ratios are
  over every run with CPU used, cold starts (static default) included.
- Peers need ≥ `PEER_MIN_RUNS` runs of one (project, ref, job) and use the static
  default before that; they see the last `PEER_HISTORY` runs.
"""

from __future__ import annotations

import csv
import heapq
import math
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from runner_sizer.recommender.strategy import (
    Kill,
    Run,
    Sizing,
    StrategyParams,
    percentile,
    recommend,
)
from runner_sizer.webhook.quantity import parse_quantity

GIB = 2**30
MIB = 2**20
PEER_MIN_RUNS = 3
PEER_HISTORY = 100
COLUMNS = (
    "project_id",
    "org",
    "repo",
    "ref",
    "job",
    "start",
    "duration_s",
    "cpu_seconds",
    "peak_memory_bytes",
    "oom_killed",
)


class TraceError(ValueError):
    """A trace that cannot be read; the message names the row."""


@dataclass(frozen=True, slots=True)
class TraceRun:
    project_id: str
    org: str
    repo: str
    ref: str
    job: str
    start: float  # unix seconds
    duration: float  # seconds
    cpu_seconds: float
    peak_memory: float  # bytes; a lower bound when oom_killed
    oom_killed: bool

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def mean_cores(self) -> float | None:
        return self.cpu_seconds / self.duration if self.duration > 0 else None


@dataclass(frozen=True, slots=True)
class Answer:
    """What a strategy gives one run: requests and, or not, a memory limit."""

    cpu: float
    memory: float
    memory_limit: float | None
    sized: bool  # False: the static default (cold start)


Exact = tuple[str, str, str]  # project, ref, job
AnyRef = tuple[str, str]  # project, job


@dataclass
class History:
    """What a strategy may know before a run: finished runs and kills, per identity."""

    exact: dict[Exact, deque[Run]] = field(default_factory=lambda: defaultdict(deque))
    any_ref: dict[AnyRef, deque[Run]] = field(default_factory=lambda: defaultdict(deque))
    exact_kills: dict[Exact, list[Kill]] = field(default_factory=lambda: defaultdict(list))
    any_ref_kills: dict[AnyRef, list[Kill]] = field(default_factory=lambda: defaultdict(list))

    def add(self, run: TraceRun, fact: Run, kill: Kill | None, keep: int) -> None:
        for runs in (self.exact[_exact(run)], self.any_ref[(run.project_id, run.job)]):
            runs.append(fact)
            if len(runs) > keep:
                runs.popleft()
        if kill is not None:
            self.exact_kills[_exact(run)].append(kill)
            self.any_ref_kills[(run.project_id, run.job)].append(kill)


def _exact(run: TraceRun) -> Exact:
    return (run.project_id, run.ref, run.job)


@dataclass(frozen=True)
class Defaults:
    cpu: float = 1.0
    memory: float = 2.0 * GIB

    def answer(self) -> Answer:
        return Answer(self.cpu, self.memory, self.memory, sized=False)


class Strategy:
    name = ""
    keep = PEER_HISTORY

    def __init__(self, defaults: Defaults) -> None:
        self.defaults = defaults

    def answer(self, run: TraceRun, history: History) -> Answer:
        raise NotImplementedError


class Static(Strategy):
    name = "static"

    def answer(self, run: TraceRun, history: History) -> Answer:
        return Answer(self.defaults.cpu, self.defaults.memory, self.defaults.memory, sized=True)


def _cores(runs: Iterable[Run]) -> list[float]:
    return [r.mean_cores for r in runs if r.mean_cores is not None]


def _peaks(runs: Iterable[Run]) -> list[float]:
    return [r.peak_memory for r in runs if r.peak_memory is not None]


class Peer(Strategy):
    """Sized from one (project, ref, job)'s runs once it has `PEER_MIN_RUNS`."""

    def answer(self, run: TraceRun, history: History) -> Answer:
        runs = history.exact.get(_exact(run), ())
        cores, peaks = _cores(runs), _peaks(runs)
        if len(cores) < PEER_MIN_RUNS or len(peaks) < PEER_MIN_RUNS:
            return self.defaults.answer()
        return self.size(cores, peaks, history.exact_kills.get(_exact(run), []))

    def size(self, cores: list[float], peaks: list[float], kills: list[Kill]) -> Answer:
        raise NotImplementedError


class KrrSimple(Peer):
    """robusta-dev/krr's `simple` strategy: p95 CPU; max memory + 15 % as request and limit."""

    name = "krr-simple"

    def size(self, cores: list[float], peaks: list[float], kills: list[Kill]) -> Answer:
        memory = max(peaks) * 1.15
        return Answer(percentile(cores, 95), memory, memory, sized=True)


class GantryMean5(Peer):
    """Mean of the last 5 runs as requests, no limit (the runner's default applies)."""

    name = "gantry-mean5"

    def size(self, cores: list[float], peaks: list[float], kills: list[Kill]) -> Answer:
        last_cores, last_peaks = cores[-5:], peaks[-5:]
        return Answer(
            sum(last_cores) / len(last_cores), sum(last_peaks) / len(last_peaks), None, sized=True
        )


class VpaLike(Peer):
    """p90 + 15 % for both; limit = request (VPA keeps the limit:request ratio, 1 here).

    A kill adds a sample of max(limit x 1.2, limit + 100 MiB), as VPA's recommender does.
    """

    name = "vpa-like"

    def size(self, cores: list[float], peaks: list[float], kills: list[Kill]) -> Answer:
        bumped = [max(k.limit * 1.2, k.limit + 100 * MIB) for k in kills[-PEER_HISTORY:]]
        memory = percentile(peaks + bumped, 90) * 1.15
        return Answer(percentile(cores, 90) * 1.15, memory, memory, sized=True)


class RunnerSizer(Strategy):
    """Ours: `strategy.recommend` on (project, ref, job), then (project, any ref, job)."""

    name = "runner-sizer"

    def __init__(self, defaults: Defaults, params: StrategyParams | None = None) -> None:
        super().__init__(defaults)
        self.params = params or StrategyParams()
        self.keep = max(self.params.max_runs, self.params.oom_decay_runs + 1)

    def answer(self, run: TraceRun, history: History) -> Answer:
        exact, job = _exact(run), (run.project_id, run.job)
        sizing: Sizing | None = None
        runs = history.exact.get(exact, ())
        if len(runs) >= self.params.min_runs:
            sizing = recommend(list(runs), self.params, history.exact_kills.get(exact, ()))
        if sizing is None:
            sizing = recommend(
                list(history.any_ref.get(job, ())), self.params, history.any_ref_kills.get(job, ())
            )
        if sizing is None:
            return self.defaults.answer()
        cpu = float(sizing.cpu) if sizing.cpu is not None else self.defaults.cpu
        memory = float(sizing.memory) if sizing.memory is not None else self.defaults.memory
        limit = float(sizing.memory_limit) if sizing.memory_limit is not None else memory
        return Answer(cpu, memory, limit, sized=sizing.runs > 0)


STRATEGIES: dict[str, Callable[[Defaults], Strategy]] = {
    "runner-sizer": RunnerSizer,
    "static": Static,
    "krr-simple": KrrSimple,
    "gantry-mean5": GantryMean5,
    "vpa-like": VpaLike,
}


def is_oom(run: TraceRun, limit: float) -> bool:
    if run.oom_killed:
        return run.peak_memory >= limit
    return run.peak_memory > limit


def replay(trace: Sequence[TraceRun], strategy: Strategy) -> dict[str, object]:
    """Score one strategy on the trace; a JSON-ready dict with the issue's keys."""
    history = History()
    pending: list[tuple[float, int, TraceRun, Run, Kill | None]] = []
    ordered = sorted(trace, key=lambda r: r.start)
    runs = sized = ooms = under = 0
    gib_h = gib_h_static = cpu_h = cpu_used_h = 0.0
    ratios: list[float] = []
    for index, run in enumerate(ordered):
        while pending and pending[0][0] <= run.start:
            _, _, done, fact, kill = heapq.heappop(pending)
            history.add(done, fact, kill, strategy.keep)
        answer = strategy.answer(run, history)
        limit = answer.memory_limit if answer.memory_limit is not None else strategy.defaults.memory
        killed = is_oom(run, limit)
        runs += 1
        sized += answer.sized
        ooms += killed
        under += run.peak_memory > answer.memory
        hours = run.duration / 3600
        gib_h += answer.memory / GIB * hours
        gib_h_static += strategy.defaults.memory / GIB * hours
        cpu_h += answer.cpu * hours
        cpu_used_h += run.cpu_seconds / 3600
        cores = run.mean_cores
        if cores is not None and cores > 0:
            ratios.append(answer.cpu / cores)
        peak = min(run.peak_memory, limit) if killed else run.peak_memory
        fact = Run(run.end, cores, peak)
        kill = Kill(run.end, limit, peak=peak) if killed else None
        heapq.heappush(pending, (run.end, index, run, fact, kill))
    return {
        "strategy": strategy.name,
        "runs": runs,
        "sized_runs": sized,
        "cold_start_runs": runs - sized,
        "oom_kills": ooms,
        "oom_kill_rate": _round(ooms / runs if runs else 0.0),
        "under_requested_runs": under,
        "memory_gib_hours_requested": round(gib_h, 1),
        "memory_gib_hours_static": round(gib_h_static, 1),
        "memory_saving": _round(1 - gib_h / gib_h_static if gib_h_static else 0.0),
        "cpu_core_hours_requested": round(cpu_h, 1),
        "cpu_core_hours_used": round(cpu_used_h, 1),
        "cpu_request_to_usage_p50": _round(percentile(ratios, 50)) if ratios else None,
        "cpu_request_to_usage_p90": _round(percentile(ratios, 90)) if ratios else None,
    }


def _round(value: float) -> float:
    return round(value, 4)


def _rfc3339(text: str) -> float:
    if "T" not in text and "t" not in text:
        raise ValueError("not RFC 3339")
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("RFC 3339 needs an offset or Z")
    return moment.timestamp()


def _number(text: str, what: str, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{what} must be a {'positive' if positive else 'non-negative'} number")
    return value


def read_trace(stream: TextIO) -> list[TraceRun]:
    """Rows of the trace CSV; a `TraceError` naming the line of the first bad one."""
    reader = csv.DictReader(stream)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise TraceError(f"line 1: header lacks {', '.join(missing)}")
    trace = []
    for row in reader:
        line = reader.line_num
        try:
            if any(row.get(c) is None for c in COLUMNS):
                raise ValueError("too few fields")
            flag = row["oom_killed"].strip().lower()
            if flag not in ("true", "false"):
                raise ValueError(f"oom_killed {row['oom_killed']!r} is not true or false")
            try:
                start = _rfc3339(row["start"].strip())
            except ValueError:
                raise ValueError(f"start {row['start']!r} is not RFC 3339") from None
            trace.append(
                TraceRun(
                    project_id=row["project_id"],
                    org=row["org"],
                    repo=row["repo"],
                    ref=row["ref"],
                    job=row["job"],
                    start=start,
                    duration=_number(row["duration_s"], "duration_s", positive=True),
                    cpu_seconds=_number(row["cpu_seconds"], "cpu_seconds"),
                    peak_memory=_number(row["peak_memory_bytes"], "peak_memory_bytes"),
                    oom_killed=flag == "true",
                )
            )
        except ValueError as error:
            raise TraceError(f"line {line}: {error}") from None
    return trace


def backtest(
    trace: Sequence[TraceRun],
    names: Sequence[str],
    defaults: Defaults,
    params: StrategyParams | None = None,
) -> list[dict[str, object]]:
    results = []
    for name in names:
        strategy = RunnerSizer(defaults, params) if name == "runner-sizer" else None
        results.append(replay(trace, strategy or STRATEGIES[name](defaults)))
    return results


def quantity_bytes(text: str) -> float:
    return float(parse_quantity(text))
