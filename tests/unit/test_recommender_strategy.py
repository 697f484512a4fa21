"""The recommender's strategy and table: pure math over per-run facts."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from runner_sizer.recommender.ledger import IdentifiedRun
from runner_sizer.recommender.promql import Identity
from runner_sizer.recommender.strategy import Run, StrategyParams, percentile, recommend
from runner_sizer.recommender.table import Outcome, build_table

GIB = 2**30
PARAMS = StrategyParams(
    min_runs=5, max_runs=30, cpu_percentile=75, memory_percentile=95, limit_margin=0.15
)


def runs(cores: list[float], peaks: list[float], start: float = 0.0) -> list[Run]:
    return [Run(start + i, c, p) for i, (c, p) in enumerate(zip(cores, peaks, strict=True))]


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2, 3, 4, 5], 75) == 4
    assert percentile([5, 1, 4, 2, 3], 90) == pytest.approx(4.6)
    assert percentile([7], 95) == 7
    assert percentile([1, 2], 0) == 1 and percentile([1, 2], 100) == 2
    with pytest.raises(ValueError):
        percentile([], 50)


def test_memory_is_a_high_percentile_of_peaks_plus_margin_and_cpu_a_percentile_of_means() -> None:
    sizing = recommend(
        runs([0.5, 1, 1.5, 2, 2.5], [1 * GIB, 2 * GIB, 2 * GIB, 2 * GIB, 4 * GIB]), PARAMS
    )
    assert sizing is not None
    assert sizing.cpu == Decimal(2)
    # p95 of peaks: 2 + 0.8 * 2 = 3.6 GiB, plus 15 % = 4.14 GiB, rounded up to whole MiB
    assert sizing.memory == Decimal(4240) * 2**20
    assert sizing.memory_limit == Decimal(4711) * 2**20  # 4 GiB * 1.15, rounded up
    assert sizing.runs == 5


def test_fewer_runs_than_the_minimum_is_a_cold_start() -> None:
    assert recommend(runs([1] * 4, [GIB] * 4), PARAMS) is None
    assert recommend([], PARAMS) is None


def test_only_the_last_runs_count() -> None:
    old = runs([8.0] * 10, [8 * GIB] * 10, start=0)
    new = runs([1.0] * 5, [GIB] * 5, start=100)
    sizing = recommend(new + old, StrategyParams(min_runs=5, max_runs=5, limit_margin=0.15))
    assert sizing is not None and sizing.cpu == 1 and sizing.memory_limit == Decimal(1178) * 2**20


def test_a_resource_without_enough_facts_is_left_out() -> None:
    one_sample = [Run(i, None, GIB) for i in range(5)]
    sizing = recommend(one_sample, PARAMS)
    assert sizing is not None and sizing.cpu is None and sizing.memory is not None


def test_tiny_usage_is_raised_to_what_the_webhook_accepts() -> None:
    sizing = recommend(runs([0.00001] * 5, [1000.0] * 5), PARAMS)
    assert sizing is not None and sizing.cpu == Decimal("0.001") and sizing.memory == 2**22


def test_replaying_a_trace_is_calling_recommend_on_each_prefix() -> None:
    trace = runs([1, 1, 1, 1, 1, 3, 3, 3, 3, 3], [GIB] * 10)
    answers = [recommend(trace[:i], StrategyParams(min_runs=5, max_runs=5)) for i in range(11)]
    assert [a is None for a in answers] == [True] * 5 + [False] * 6
    assert answers[5] is not None and answers[5].cpu == 1
    assert answers[10] is not None and answers[10].cpu == 3


def identified(identity: Identity, count: int, cores: float = 1.0) -> list[IdentifiedRun]:
    return [IdentifiedRun(identity, Run(float(i), cores, float(GIB))) for i in range(count)]


APP_MAIN = Identity("7", "acme", "app", "main", "build")
APP_FEATURE = Identity("7", "acme", "app", "feature/x", "build")
OTHER_APP = Identity("8", "acme", "app", "main", "build")  # acme/team-b/app


def test_lookup_falls_back_from_the_ref_to_any_ref_then_to_cold() -> None:
    table = build_table(identified(APP_MAIN, 5, 2.0) + identified(APP_FEATURE, 2), PARAMS, 0)
    body, outcome = table.lookup("acme", "app", "main", "build", "7")
    assert outcome is Outcome.EXACT and json.loads(body or b"")["requests"]["cpu"] == "2"
    body, outcome = table.lookup("acme", "app", "feature/x", "build", "7")
    assert outcome is Outcome.ANY_REF
    assert json.loads(body or b"") == {
        "requests": {"cpu": "2", "memory": "1178Mi"},
        "limits": {"memory": "1178Mi"},
    }
    assert table.lookup("acme", "app", "main", "test", "7") == (None, Outcome.COLD)
    assert table.lookup("acme", "app", "main", "build", "9") == (None, Outcome.COLD)
    assert (table.identities, table.runs) == (2, 7)


def test_without_a_project_id_a_shared_namespace_and_name_is_ambiguous() -> None:
    table = build_table(identified(APP_MAIN, 5) + identified(OTHER_APP, 5), PARAMS, 0)
    assert table.lookup("acme", "app", "main", "build", None) == (None, Outcome.AMBIGUOUS)
    assert table.lookup("acme", "app", "main", "build", "8")[1] is Outcome.EXACT
    alone = build_table(identified(APP_MAIN, 5), PARAMS, 0)
    assert alone.lookup("acme", "app", "main", "build", None)[1] is Outcome.EXACT
    assert alone.lookup("acme", "other", "main", "build", None) == (None, Outcome.COLD)
