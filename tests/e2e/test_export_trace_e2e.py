"""`export-trace` against a real Prometheus and OOM records in the real apiserver; its CSV
feeds `backtest`."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_sizer.devcluster.prometheus import PrometheusServer
from runner_sizer.history.oom_store import OomStore
from runner_sizer.history.ooms import OomRecord
from runner_sizer.recommender.backtest import STRATEGIES, read_trace
from runner_sizer.recommender.promql import Identity
from tests.e2e.conftest import ClusterUnderTest
from tests.support.recommender import GIB, SCRIPT, PastRun, prometheus_holding

WHO = Identity("4100", "acme", "exporter", "main", "build")
HOUR = 3600.0


def past_runs(now: float) -> list[PastRun]:
    """Six 20-minute runs of one job, 2 h apart, the last ending 2 h ago."""
    return [
        PastRun(
            WHO, f"runner-x-project-4100-c-{i}", now - 14 * HOUR + i * 2 * HOUR, 1200.0, 1.5, GIB
        )
        for i in range(6)
    ]


@pytest.fixture(scope="module")
def now() -> float:
    return float(int(time.time()) // 10 * 10)


@pytest.fixture(scope="module")
def prometheus(now: float) -> Iterator[PrometheusServer]:
    with prometheus_holding(past_runs(now)) as server:
        yield server


def oom(at: float, uid: str, limit: float) -> OomRecord:
    return OomRecord("4100", "acme", "exporter", "main", "build", uid, at, limit, limit / 2, True)


def test_the_exported_trace_holds_prometheus_runs_and_recorded_kills_and_replays(
    cluster: ClusterUnderTest,
    namespace: str,
    prometheus: PrometheusServer,
    now: float,
    tmp_path: Path,
) -> None:
    killed = past_runs(now)[2]
    records = [
        oom(killed.start + killed.seconds + 5, "uid-killed", 0.75 * GIB),
        oom(now - HOUR, "uid-lone", 2 * GIB),  # deleted before any scrape
    ]
    OomStore(cluster.kube, namespace, "ooms").flush(records, now, 14 * 86400.0, 100)
    trace_file = tmp_path / "trace.csv"
    exported = subprocess.run(
        [
            str(SCRIPT),
            "export-trace",
            "--since=14d",
            f"--output={trace_file}",
            f"--prometheus-url={prometheus.url}",
            f"--oom-configmap={namespace}/ooms",
            f"--kubeconfig={cluster.kubeconfig}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    assert "7 runs, 2 OOM-killed (1 with no usage seen)" in exported.stderr
    with trace_file.open(encoding="utf-8") as stream:
        trace = read_trace(stream)
    assert [r.oom_killed for r in trace] == [False, False, True, False, False, False, True]
    for row, run in zip(trace, past_runs(now), strict=False):
        assert row.start == pytest.approx(run.start, abs=30)
        assert row.duration == pytest.approx(run.seconds, abs=30)
        assert row.cpu_seconds / row.duration == pytest.approx(run.cores, rel=0.01)
        assert row.peak_memory == GIB  # the killed run's too: above its 0.75 Gi limit
    assert trace[-1].peak_memory == 2 * GIB and trace[-1].end == pytest.approx(now - HOUR)

    replayed = subprocess.run(
        [str(SCRIPT), "backtest", f"--trace={trace_file}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert [r["strategy"] for r in results] == list(STRATEGIES)
    assert all(r["runs"] == 7 for r in results)
