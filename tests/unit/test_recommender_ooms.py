"""OOM records in the recommender's table: the bump, its fallbacks and the `oom` field."""

from __future__ import annotations

import json
from typing import Any

from runner_sizer.recommender.ledger import IdentifiedRun
from runner_sizer.recommender.promql import Identity
from runner_sizer.recommender.strategy import Run, StrategyParams
from runner_sizer.recommender.table import Outcome, build_table
from tests.support.ooms import oom_record

GIB, MIB = 2**30, 2**20
PARAMS = StrategyParams(min_runs=5, oom_decay_runs=3, limit_margin=0.15)
APP_MAIN = Identity("7", "acme", "app", "main", "build")


def identified(count: int, start: float = 0.0, who: Identity = APP_MAIN) -> list[IdentifiedRun]:
    return [IdentifiedRun(who, Run(start + i, 1.0, float(GIB))) for i in range(count)]


def answer(table: Any, ref: str = "main", project_id: str | None = "7") -> tuple[Any, Outcome]:
    body, outcome = table.lookup("acme", "app", ref, "build", project_id)
    return (json.loads(body) if body is not None else None), outcome


def test_a_kill_raises_request_and_limit_to_its_bump_and_says_so() -> None:
    before, _ = answer(build_table(identified(5), PARAMS, 10))
    assert before == {"requests": {"cpu": "1", "memory": "1178Mi"}, "limits": {"memory": "1178Mi"}}
    table = build_table(identified(5), PARAMS, 10, [oom_record()])
    body, outcome = answer(table)
    assert outcome is Outcome.EXACT
    # max(1.5 Gi x 1.2, 1.5 Gi + 100 Mi) = 1843.2 Mi, rounded up to whole MiB
    assert body == {
        "requests": {"cpu": "1", "memory": "1844Mi"},
        "limits": {"memory": "1844Mi"},
        "oom": {"memory_floor": "1844Mi", "killed_at": "1970-01-01T00:00:04.500Z"},
    }
    assert table.oom_bumps == 2  # the exact answer and the job's over every ref


def test_a_small_limit_is_bumped_by_100_mib() -> None:
    table = build_table(identified(5), PARAMS, 10, [oom_record(memory_limit=200 * MIB)])
    body, _ = answer(table)
    assert body["oom"]["memory_floor"] == "300Mi"
    assert body["requests"]["memory"] == "1178Mi"  # the runs already ask for more


def test_the_bump_decays_after_enough_runs_without_a_kill() -> None:
    held = build_table(identified(5) + identified(2, start=5), PARAMS, 10, [oom_record()])
    assert "oom" in answer(held)[0]
    decayed = build_table(identified(5) + identified(3, start=5), PARAMS, 10, [oom_record()])
    assert "oom" not in answer(decayed)[0] and decayed.oom_bumps == 0


def test_a_kill_alone_is_an_answer_for_the_job_on_every_ref() -> None:
    table = build_table([], PARAMS, 10, [oom_record(ref="feature/x")])
    body, outcome = answer(table, ref="main")
    assert outcome is Outcome.ANY_REF
    assert body["requests"] == {"memory": "1844Mi"} and body["limits"] == {"memory": "1844Mi"}
    assert answer(table, project_id=None)[1] is Outcome.ANY_REF  # its project is known
    assert table.identities == 0


def test_a_ref_with_too_few_runs_answers_with_the_kills_of_every_ref() -> None:
    runs = identified(5) + identified(2, who=Identity("7", "acme", "app", "feature/x", "build"))
    table = build_table(runs, PARAMS, 10, [oom_record(ref="main", at=100.0)])
    body, outcome = answer(table, ref="feature/x")
    assert outcome is Outcome.ANY_REF and body["oom"]["memory_floor"] == "1844Mi"


def test_without_a_limit_the_request_is_bumped_and_without_either_nothing() -> None:
    table = build_table([], PARAMS, 10, [oom_record(memory_limit=None)])
    assert answer(table)[0]["oom"]["memory_floor"] == "1229Mi"  # 1 Gi x 1.2
    nothing = build_table([], PARAMS, 10, [oom_record(memory_limit=None, memory_request=None)])
    assert answer(nothing) == (None, Outcome.COLD) and nothing.unusable_ooms == 1


def test_a_suspected_kill_of_unknown_peak_bumps_like_a_certain_one() -> None:
    table = build_table(identified(5), PARAMS, 10, [oom_record(certain=False)])
    assert answer(table)[0]["oom"]["memory_floor"] == "1844Mi"
