"""`export-trace`'s pure part: runs and OOM records → backtest rows."""

from __future__ import annotations

from typing import Any

import pytest

from runner_sizer.history.ooms import OomRecord
from runner_sizer.recommender.export import export_trace
from runner_sizer.recommender.ledger import IdentifiedRun
from runner_sizer.recommender.promql import Identity
from runner_sizer.recommender.strategy import Run, StrategyParams
from tests.support.ooms import oom_record

GIB = 2**30
WHO = Identity("7", "acme", "app", "main", "build")


def run(start: float, end: float, peak: float = GIB, cores: float | None = 2.0) -> IdentifiedRun:
    return IdentifiedRun(WHO, Run(end, cores, peak, start))


def kill(at: float, **changes: Any) -> OomRecord:
    return oom_record(at=at, pod_uid=f"uid-{at}", **changes)


def test_runs_become_rows_with_duration_and_cpu_seconds() -> None:
    exported = export_trace([run(100, 400), run(0, 50, cores=None)], [], StrategyParams())
    (row,) = exported.trace
    assert (row.start, row.duration, row.cpu_seconds, row.peak_memory) == (100, 300, 600, GIB)
    assert not row.oom_killed and exported.incomplete_runs == 1


def test_a_kill_marks_the_run_that_ended_closest_and_lifts_its_peak_to_the_limit() -> None:
    runs = [run(100, 400), run(1000, 1300), run(2000, 2300)]
    exported = export_trace(runs, [kill(1320)], StrategyParams())
    assert [r.oom_killed for r in exported.trace] == [False, True, False]
    assert exported.trace[1].peak_memory == 1.5 * GIB
    assert exported.lone_kills == 0


def test_a_suspected_kill_far_below_its_limit_marks_nothing() -> None:
    low = export_trace([run(0, 300, peak=0.5 * GIB)], [kill(310, certain=False)], StrategyParams())
    assert not low.trace[0].oom_killed
    near = export_trace([run(0, 300, peak=1.4 * GIB)], [kill(310, certain=False)], StrategyParams())
    assert near.trace[0].oom_killed


def test_a_kill_without_a_run_is_a_row_of_its_own_unless_it_had_no_bound() -> None:
    records = [kill(5000), kill(6000, memory_limit=None, memory_request=None)]
    exported = export_trace([run(100, 400)], records, StrategyParams())
    assert len(exported.trace) == 2 and (exported.lone_kills, exported.unusable_kills) == (1, 1)
    lone = exported.trace[1]
    assert lone.oom_killed and lone.end == 5000 and lone.peak_memory == 1.5 * GIB
    assert lone.cpu_seconds == 0 and lone.duration == pytest.approx(1.0)
