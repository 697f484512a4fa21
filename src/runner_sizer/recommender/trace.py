"""Synthetic CI traces for the backtest: realistic job families, deterministic by seed. Pure.

Families (issue 10 §3), one per job, memory peak and mean cores per run:

- ``stable``: ±5 % around the job's base.
- ``noisy``: each run anywhere between 1x and 4x the base, the 200-400 % run-to-run
  swings spack reports for its builds.
- ``bimodal``: a cache hit (60 %) at the base, a miss at 3x memory, 2x CPU and time.
- ``trend``: grows linearly to 2x over the trace, like a growing test suite.
- ``heavy``: Pareto-tailed (alpha 2.2) memory, log-normal CPU.
- ``sometimes-oom``: runs near 1.3-1.6 GiB, 10 % of them spike 1.6x past the limit.

Each job runs on the default branch and on two feature refs whose usage is 0.6-1.8x
the default branch's.

Calibration, against a cluster with static requests of 1 CPU / 2 GiB and that limit:

- spack's CI on Kubernetes (Gamblin et al., "Using CI job history to right-size
  resource requests", spack.io blog / SC'23 poster on spack's GitLab CI at AWS): memory
  average usage ÷ request 0.26 and CPU average usage ÷ request 1.25 under static
  requests. Here the memory figure is matched with *peaks* (a trace holds only those),
  which makes static look less wasteful than it is, and the CPU figure with mean cores.
- OOM rates of 1-4 % of jobs under static CI limits (the figure the issue cites):
  peaks above the recording limit are recorded as killed, peak cut off at the limit.

`calibration()` reports all three for a generated trace; the defaults land at about
0.26, 1.25 and 2 % (tests/unit/test_backtest_goal.py checks the ranges).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from runner_sizer.recommender.backtest import COLUMNS, GIB, MIB, TraceRun

FAMILIES = ("stable", "noisy", "bimodal", "trend", "heavy", "sometimes-oom")
DAY = 86400.0
EPOCH = datetime(2025, 1, 6, tzinfo=UTC).timestamp()


def _usage(family: str, rng: random.Random, t: float) -> tuple[float, float, float]:
    """(memory, cpu, duration) multipliers for one run at fraction t of the trace."""
    if family == "stable":
        return rng.gauss(1, 0.05), rng.gauss(1, 0.05), rng.gauss(1, 0.05)
    if family == "noisy":
        return 4 ** rng.random(), 4 ** rng.random(), 2 ** rng.random()
    if family == "bimodal":
        miss = rng.random() < 0.4
        scale = rng.gauss(1, 0.05)
        return (3 if miss else 1) * scale, (2 if miss else 1) * scale, (2.5 if miss else 1) * scale
    if family == "trend":
        grow = 1 + t
        return grow * rng.gauss(1, 0.05), grow * rng.gauss(1, 0.08), grow * rng.gauss(1, 0.05)
    if family == "heavy":
        return (
            min(rng.paretovariate(2.2), 20),
            rng.lognormvariate(0, 0.4),
            rng.lognormvariate(0, 0.3),
        )
    # sometimes-oom
    spike = rng.random() < 0.1
    return (1.6 if spike else 1) * rng.gauss(1, 0.05), rng.gauss(1, 0.1), rng.gauss(1, 0.1)


def generate(
    seed: int = 1,
    projects: int = 10,
    days: float = 14.0,
    runs_per_day: float = 12.0,
    record_limit: float = 2 * GIB,
) -> list[TraceRun]:
    """A trace of `projects` x 6 jobs (one per family) over `days`, as recorded under
    `record_limit`: a peak above it is a kill, its peak cut off at the limit."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    span = days * DAY
    trace: list[TraceRun] = []
    for p in range(projects):
        project_id, org, repo = str(100 + p), f"group-{p % 3}", f"app-{p}"
        for j, family in enumerate(FAMILIES):
            job = f"{family}-{j}"
            memory = math.exp(rng.uniform(math.log(100 * MIB), math.log(440 * MIB)))
            if family == "sometimes-oom":
                memory = rng.uniform(1.3, 1.6) * GIB
            elif family == "heavy":
                memory *= 0.6
            cores = math.exp(rng.uniform(math.log(0.35), math.log(1.75)))
            seconds = rng.uniform(180, 1800)
            refs = [("main", 1.0, 0.0, span)]
            for f in range(2):
                begin = rng.uniform(0, span * 0.8)
                refs.append((f"feature/{p}-{f}", rng.uniform(0.6, 1.8), begin, begin + 3 * DAY))
            for ref, factor, begin, end in refs:
                rate = runs_per_day if ref == "main" else runs_per_day / 2
                at = begin + rng.expovariate(rate / DAY)
                while at < min(end, span):
                    m, c, d = _usage(family, rng, at / span)
                    peak = max(memory * factor * m, 8 * MIB)
                    duration = max(seconds * d, 30.0)
                    mean_cores = max(cores * c, 0.01)
                    killed = peak > record_limit
                    if killed:
                        peak = record_limit
                        duration *= rng.uniform(0.3, 1.0)
                    trace.append(
                        TraceRun(
                            project_id,
                            org,
                            repo,
                            ref,
                            job,
                            EPOCH + round(at, 3),
                            round(duration, 1),
                            round(mean_cores * round(duration, 1), 1),
                            float(int(peak)),
                            killed,
                        )
                    )
                    at += rng.expovariate(rate / DAY)
    trace.sort(key=lambda r: r.start)
    return trace


def calibration(
    trace: Sequence[TraceRun], cpu: float = 1.0, memory: float = 2 * GIB
) -> dict[str, float]:
    """Figures to compare with the published ones, under static `cpu` / `memory`."""
    runs = len(trace)
    return {
        "memory_peak_mean_to_request": round(sum(r.peak_memory for r in trace) / runs / memory, 3),
        "cpu_mean_to_request": round(
            sum(r.cpu_seconds / r.duration for r in trace) / runs / cpu, 3
        ),
        "static_oom_rate": round(sum(r.oom_killed for r in trace) / runs, 4),
    }


def rfc3339(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def write_trace(trace: Sequence[TraceRun], stream: TextIO) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in trace:
        writer.writerow(
            [
                r.project_id,
                r.org,
                r.repo,
                r.ref,
                r.job,
                rfc3339(r.start),
                r.duration,
                r.cpu_seconds,
                int(r.peak_memory),
                "true" if r.oom_killed else "false",
            ]
        )
