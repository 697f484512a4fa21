"""`export-trace`: the runs Prometheus holds and the recorder's OOM kills as a backtest trace. Pure.

A run is a row when it has two CPU samples and a peak (start, duration and CPU-seconds
need both). An OOM record marks the run of its identity that ended closest to it, at
most `FINISHED_AFTER` before the kill (the last sample precedes the container's end by
up to a scrape) or a minute after (clocks); its peak is then at least the limit that
killed it, a lower bound as the trace format says. A suspected kill marks it only when
its peak reached `suspected_peak_ratio` of the limit, as the strategy counts it. A kill
with no run (a pod deleted before anyone scraped it) is a row of its own: one second
long, no CPU, its limit as the peak; a kill without limit or request is left out.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from runner_sizer.history.ooms import OomRecord
from runner_sizer.recommender.backtest import TraceRun
from runner_sizer.recommender.ledger import FINISHED_AFTER, IdentifiedRun
from runner_sizer.recommender.ooms import as_kill
from runner_sizer.recommender.strategy import StrategyParams

CLOCK_SKEW = 60.0
Key = tuple[str, str, str]  # project id, ref, job


@dataclass(frozen=True)
class Exported:
    trace: list[TraceRun]
    incomplete_runs: int  # one CPU sample, or no peak: no row
    lone_kills: int  # kills with no run: a row of their own
    unusable_kills: int  # neither run nor limit: no row


def _row(item: IdentifiedRun) -> TraceRun | None:
    run, who = item.run, item.identity
    if run.start is None or run.mean_cores is None or run.peak_memory is None:
        return None
    duration = run.end - run.start
    if duration <= 0:
        return None
    return TraceRun(
        who.project_id,
        who.org,
        who.repo,
        who.ref,
        who.job,
        run.start,
        duration,
        run.mean_cores * duration,
        run.peak_memory,
        oom_killed=False,
    )


def _closest(rows: list[TraceRun], ends: list[float], taken: set[int], at: float) -> int | None:
    """The index of the untaken row that ended closest to `at`, within the window."""
    low = bisect.bisect_left(ends, at - FINISHED_AFTER)
    high = bisect.bisect_right(ends, at + CLOCK_SKEW)
    candidates = [i for i in range(low, high) if i not in taken and rows[i].start <= at]
    return min(candidates, key=lambda i: abs(ends[i] - at), default=None)


def export_trace(
    runs: Iterable[IdentifiedRun], records: Iterable[OomRecord], params: StrategyParams
) -> Exported:
    by_identity: dict[Key, list[TraceRun]] = defaultdict(list)
    incomplete = lone = unusable = 0
    for item in runs:
        row = _row(item)
        if row is None:
            incomplete += 1
        else:
            by_identity[(row.project_id, row.ref, row.job)].append(row)
    ends: dict[Key, list[float]] = {}
    for key, rows in by_identity.items():
        rows.sort(key=lambda r: r.end)
        ends[key] = [r.end for r in rows]
    taken: dict[Key, set[int]] = defaultdict(set)
    extra: list[TraceRun] = []
    for record in sorted(records, key=lambda r: r.at):
        key = (record.project_id, record.ref, record.job)
        kill = as_kill(record)
        rows = by_identity.get(key, [])
        index = _closest(rows, ends.get(key, []), taken[key], record.at)
        if index is not None:
            taken[key].add(index)
            row = rows[index]
            bound = kill.limit if kill is not None else 0.0
            if record.certain or row.peak_memory >= params.suspected_peak_ratio * bound:
                peak = max(row.peak_memory, bound)
                rows[index] = replace(row, peak_memory=peak, oom_killed=True)
            continue
        if kill is None:
            unusable += 1
            continue
        lone += 1
        extra.append(
            TraceRun(
                record.project_id,
                record.org,
                record.repo,
                record.ref,
                record.job,
                record.at - 1.0,
                1.0,
                0.0,
                kill.limit,
                oom_killed=True,
            )
        )
    trace = [row for rows in by_identity.values() for row in rows] + extra
    trace.sort(key=lambda r: (r.start, r.project_id, r.ref, r.job))
    return Exported(trace, incomplete, lone, unusable)
