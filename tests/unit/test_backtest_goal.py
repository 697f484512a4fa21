"""Issue 10's goal, on a generated trace, through the CLI, with the strategy's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner_sizer.recommender.cli import main
from runner_sizer.recommender.trace import calibration, generate


def test_the_generator_matches_the_published_figures() -> None:
    figures = calibration(generate(seed=1))
    assert 0.22 <= figures["memory_peak_mean_to_request"] <= 0.30  # spack: 0.26
    assert 1.1 <= figures["cpu_mean_to_request"] <= 1.4  # spack: 1.25
    assert 0.01 <= figures["static_oom_rate"] <= 0.04  # static CI limits: 1-4 %
    assert generate(seed=3, projects=2) == generate(seed=3, projects=2)


@pytest.mark.parametrize("seed", [1, 2])
def test_runner_sizer_meets_the_goal(
    seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.csv"
    assert main(["generate-trace", "--seed", str(seed), "--output", str(trace)]) == 0
    assert main(["backtest", "--trace", str(trace)]) == 0
    results = {r["strategy"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    ours, static = results["runner-sizer"], results["static"]
    assert ours["memory_saving"] >= 0.40
    assert ours["oom_kill_rate"] <= 0.005 and ours["oom_kill_rate"] <= static["oom_kill_rate"]
    assert ours["under_requested_runs"] <= 0.05 * ours["sized_runs"]
    assert 0.8 <= ours["cpu_request_to_usage_p50"] <= 1.25
    for peer in ("krr-simple", "vpa-like"):
        assert ours["oom_kills"] < results[peer]["oom_kills"]
        assert ours["memory_saving"] >= results[peer]["memory_saving"] - 0.005, peer
    # gantry-mean5 saves more memory by requesting the mean: the README says so
    assert ours["oom_kills"] < results["gantry-mean5"]["oom_kills"]


def test_invalid_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("project_id,org,repo,ref,job,start,duration_s,cpu_seconds,"
                     "peak_memory_bytes,oom_killed\n1,g,r,main,j,nope,1,1,1,false\n")  # fmt: skip
    for argv, named in [
        (["backtest", "--trace", str(trace)], "line 2: start 'nope'"),
        (["backtest", "--trace", str(tmp_path / "absent.csv")], "--trace"),
        (["backtest", "--trace", str(trace), "--strategy", "magic"], "--strategy: 'magic'"),
        (["backtest", "--trace", str(trace), "--default-memory", "lots"], "--default-memory"),
        (["backtest", "--trace", str(trace), "--default-cpu", "-1"], "--default-cpu"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert named in err and err.count("\n") == 1 and "Traceback" not in err
