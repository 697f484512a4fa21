"""The backtest's scoring rules, the OOM bump and its decay, and trace parsing."""

from __future__ import annotations

import io

import pytest

from runner_sizer.recommender.backtest import (
    GIB,
    MIB,
    Answer,
    Defaults,
    History,
    Strategy,
    TraceError,
    TraceRun,
    backtest,
    read_trace,
    replay,
)
from runner_sizer.recommender.strategy import (
    Kill,
    Run,
    StrategyParams,
    bump,
    in_force,
    recommend,
)

HOUR = 3600.0


def run(start: float, peak: float, *, ref: str = "main", cores: float = 1.0,
        seconds: float = HOUR, killed: bool = False) -> TraceRun:  # fmt: skip
    return TraceRun("1", "g", "r", ref, "j", start, seconds, cores * seconds, peak, killed)


def score(trace: list[TraceRun], name: str) -> dict[str, object]:
    return backtest(trace, [name], Defaults(1.0, 2 * GIB))[0]


def test_a_peak_above_the_limit_is_a_kill_and_no_limit_means_the_default() -> None:
    trace = [run(i * 2 * HOUR, GIB) for i in range(5)] + [run(20 * HOUR, 1.9 * GIB)]
    krr = score(trace, "krr-simple")  # limit max x 1.15 = 1.15 GiB < 1.9 GiB
    assert krr["oom_kills"] == 1 and krr["under_requested_runs"] == 1
    gantry = score(trace, "gantry-mean5")  # no limit: the 2 GiB default holds
    assert gantry["oom_kills"] == 0 and gantry["under_requested_runs"] == 1
    assert score([*trace, run(30 * HOUR, 2.5 * GIB)], "gantry-mean5")["oom_kills"] == 1
    assert krr["oom_kill_rate"] == pytest.approx(1 / 6, abs=1e-4)


def test_a_killed_rows_peak_is_a_lower_bound() -> None:
    killed = [run(0, 2 * GIB, killed=True)]
    assert score(killed, "static")["oom_kills"] == 1  # limit 2 GiB ≤ peak 2 GiB
    assert backtest(killed, ["static"], Defaults(1.0, 3 * GIB))[0]["oom_kills"] == 0
    assert score([run(0, 2 * GIB)], "static")["oom_kills"] == 0  # not killed: 2 GiB fits


def test_no_look_ahead_a_run_is_history_only_once_it_ended() -> None:
    # Three runs overlap the fourth's start: krr has no 3 finished runs yet.
    overlapping = [run(i * 60, GIB) for i in range(3)] + [run(600, GIB)]
    assert score(overlapping, "krr-simple")["cold_start_runs"] == 4
    finished = [run(i * 2 * HOUR, GIB) for i in range(3)] + [run(10 * HOUR, GIB)]
    assert score(finished, "krr-simple")["cold_start_runs"] == 3


def test_peers_need_three_runs_and_memory_and_cpu_add_up() -> None:
    trace = [run(i * 2 * HOUR, GIB, cores=2.0) for i in range(4)]
    result = score(trace, "krr-simple")
    assert (result["sized_runs"], result["cold_start_runs"]) == (1, 3)
    assert result["memory_gib_hours_static"] == 8.0
    assert result["memory_gib_hours_requested"] == pytest.approx(3 * 2 + 1.15, abs=0.05)
    assert result["cpu_core_hours_used"] == 8.0 and result["cpu_core_hours_requested"] == 5.0
    assert result["cpu_request_to_usage_p50"] == 0.5


def test_keys_are_exactly_the_issues() -> None:
    assert set(score([run(0, GIB)], "runner-sizer")) == {
        "strategy", "runs", "sized_runs", "cold_start_runs", "oom_kills", "oom_kill_rate",
        "under_requested_runs", "memory_gib_hours_requested", "memory_gib_hours_static",
        "memory_saving", "cpu_core_hours_requested", "cpu_core_hours_used",
        "cpu_request_to_usage_p50", "cpu_request_to_usage_p90",
    }  # fmt: skip


def test_a_simulated_kill_is_fed_back_at_the_runs_end() -> None:
    class Tiny(Strategy):
        name = "tiny"

        def __init__(self) -> None:
            super().__init__(Defaults(1.0, 2 * GIB))
            self.seen: list[list[Kill]] = []

        def answer(self, r: TraceRun, history: object) -> object:  # type: ignore[override]
            assert isinstance(history, History)
            self.seen.append(list(history.exact_kills.get(("1", "main", "j"), [])))
            return Answer(1.0, 256 * MIB, 256 * MIB, sized=True)

    tiny = Tiny()
    replay([run(0, GIB), run(1800, GIB), run(2 * HOUR, GIB)], tiny)
    assert [len(k) for k in tiny.seen] == [0, 0, 2]  # the second started before 1 h
    assert tiny.seen[2][0].limit == 256 * MIB and tiny.seen[2][0].at == HOUR


def oom_floor(runs: list[Run], kills: list[Kill], params: StrategyParams) -> float | None:
    return max((bump(kill, params) for kill in in_force(runs, kills, params)), default=None)


def test_after_a_kill_the_recommendation_is_bumped_until_enough_runs_succeed() -> None:
    params = StrategyParams(min_runs=5, oom_decay_runs=3, limit_margin=0.15)
    runs = [Run(float(i), 1.0, float(GIB)) for i in range(5)]
    kill = Kill(at=4.0, limit=1.15 * GIB)
    sizing = recommend(runs, params, [kill])
    assert sizing is not None and sizing.memory_limit is not None and sizing.memory is not None
    assert sizing.memory_limit >= 1.38 * GIB and sizing.memory >= 1.38 * GIB  # x 1.2
    assert sizing.oom_floor is not None and sizing.oom_floor >= 1.38 * GIB
    assert sizing.killed_at == 4.0
    small = Kill(at=4.0, limit=200 * MIB)
    assert oom_floor(runs, [small], params) == 300 * MIB  # + 100 MiB beats x 1.2
    later = runs + [Run(5.0 + i, 1.0, float(GIB)) for i in range(2)]
    assert oom_floor(later, [kill], params) is not None  # 2 successes: still bumped
    decayed = [*later, Run(7.0, 1.0, float(GIB))]
    assert oom_floor(decayed, [kill], params) is None  # 3: decayed
    # a later kill is not a success for the earlier one
    assert oom_floor(decayed, [kill, Kill(at=6.5, limit=GIB)], params) is not None


def test_a_kill_bumps_even_a_cold_start() -> None:
    sizing = recommend([], StrategyParams(), [Kill(at=0, limit=2 * GIB)])
    assert sizing is not None and sizing.memory == sizing.memory_limit
    assert sizing.memory is not None and float(sizing.memory) >= 2.4 * GIB and sizing.cpu is None


def test_a_suspected_kill_counts_only_when_its_peak_neared_the_limit() -> None:
    params = StrategyParams()
    near = Kill(at=0, limit=GIB, suspected=True, peak=0.95 * GIB)
    far = Kill(at=0, limit=GIB, suspected=True, peak=0.3 * GIB)
    unknown = Kill(at=0, limit=GIB, suspected=True)
    assert oom_floor([], [near], params) == pytest.approx(1.2 * GIB)
    assert oom_floor([], [far], params) is None
    assert oom_floor([], [unknown], params) == pytest.approx(1.2 * GIB)


HEADER = "project_id,org,repo,ref,job,start,duration_s,cpu_seconds,peak_memory_bytes,oom_killed"


def test_a_trace_parses_with_extra_columns_in_any_order() -> None:
    text = "extra," + HEADER + "\nx,1,g,r,main,j,2025-01-01T00:00:00Z,60,30,1048576,TRUE\n"
    (parsed,) = read_trace(io.StringIO(text))
    assert parsed.oom_killed and parsed.mean_cores == 0.5 and parsed.start == 1735689600


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,g,r,main,j,2025-01-01,60,30,1,false", "line 2: start '2025-01-01' is not RFC 3339"),
        ("1,g,r,main,j,2025-01-01T00:00:00,60,30,1,false", "is not RFC 3339"),
        ("1,g,r,main,j,2025-01-01T00:00:00Z,0,30,1,false", "duration_s must be a positive"),
        ("1,g,r,main,j,2025-01-01T00:00:00Z,60,30,1Gi,false", "peak_memory_bytes '1Gi' is not"),
        ("1,g,r,main,j,2025-01-01T00:00:00Z,60,30,1,yes", "oom_killed 'yes' is not true or"),
        ("1,g,r,main,j,2025-01-01T00:00:00Z,60", "line 2: too few fields"),
    ],
)
def test_a_bad_row_is_named(row: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        read_trace(io.StringIO(f"{HEADER}\n{row}\n"))


def test_a_missing_column_is_named() -> None:
    with pytest.raises(TraceError, match="line 1: header lacks oom_killed"):
        read_trace(io.StringIO(HEADER.replace(",oom_killed", "") + "\n"))
