"""A real Prometheus: backfilled history answers queries, and it scrapes the real recorder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from runner_sizer.devcluster.binaries import (
    Binaries,
    BinariesUnavailableError,
    ensure_binaries,
)
from runner_sizer.devcluster.prometheus import (
    Family,
    PrometheusError,
    PrometheusServer,
    Series,
    scrape_config,
)
from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from tests.e2e.conftest import ClusterUnderTest
from tests.support.kube import create_pod, pods_path, wait_for

DAY = 86400.0
STEP = 60.0
# What a ServiceMonitor attaches: the recorder's own namespace and pod.
TARGET_LABELS = {"namespace": "ci-sizer", "pod": "runner-sizer-recorder-0"}


@pytest.fixture(scope="module")
def binaries() -> Binaries:
    try:
        return ensure_binaries()
    except BinariesUnavailableError as error:
        pytest.skip(str(error))  # CI turns a skipped end-to-end test into a failure


def usage_history(end: float, days: int) -> list[Family]:
    """cAdvisor-shaped history of one build container: a job every 6 h, 20 min each."""
    cpu: list[Series] = []
    memory: list[Series] = []
    for run in range(days * 4):
        start = end - days * DAY + run * 6 * 3600
        points = [start + i * STEP for i in range(20)]
        labels = {"namespace": "ci", "pod": f"runner-x-project-1-concurrent-0-{run}"}
        build = labels | {"container": "build"}
        cpu.append(Series(build, [(t, 2.0 * i * STEP) for i, t in enumerate(points)]))
        memory.append(Series(build, [(t, 1e9 + run) for t in points]))
    return [
        Family("container_cpu_usage_seconds_total", "counter", cpu),
        Family("container_memory_working_set_bytes", "gauge", memory),
    ]


def instant(prometheus: PrometheusServer, query: str, at: float) -> list[float]:
    """The sample values of an instant query at `at`."""
    return [float(r["value"][1]) for r in prometheus.api("query", query=query, time=at)["result"]]


def test_backfilled_history_answers_instant_and_range_queries(binaries: Binaries) -> None:
    now = time.time()
    end = float(int(now) - 600)  # whole seconds: the left-open bound below is exact
    prometheus = PrometheusServer(binaries)
    started = time.monotonic()
    prometheus.backfill(usage_history(end, days=20))
    backfilled = time.monotonic()
    prometheus.start()
    print(
        f"\n20 days backfilled in {backfilled - started:.1f}s, "
        f"ready {time.monotonic() - backfilled:.1f}s later"
    )
    try:
        # Retention counts from the newest block: the oldest runs survive start-up.
        runs = 'count(count_over_time(container_memory_working_set_bytes{container="build"}[21d]))'
        assert instant(prometheus, runs, now) == [80.0]
        # The CPU-seconds of every run: 19 minutes at 2 cores.
        cpu_seconds = "max_over_time(container_cpu_usage_seconds_total[21d])"
        assert set(instant(prometheus, cpu_seconds, now)) == {2.0 * 19 * STEP}
        # Left-open range selectors (Prometheus 3): [19m] from the last sample of a
        # run sees 19 samples, not 20.
        last_run_end = end - 6 * 3600 + 19 * STEP
        window = 'count_over_time(container_memory_working_set_bytes{pod=~".*-79"}[19m])'
        assert instant(prometheus, window, last_run_end) == [19.0]
        peaks = prometheus.api(
            "query_range",
            query='max by (namespace) (container_memory_working_set_bytes{container="build"})',
            start=end - 3 * DAY,
            end=end,
            step=600,
        )
        series = peaks["result"]
        assert [s["metric"] for s in series] == [{"namespace": "ci"}]
        assert max(float(v) for _, v in series[0]["values"]) == 1e9 + 79
        with pytest.raises(PrometheusError, match="11,000 points"):
            prometheus.api(
                "query_range",
                query="container_memory_working_set_bytes",
                start=end - 20 * DAY,
                end=end,
                step=STEP,
            )
    finally:
        prometheus.stop()


@pytest.fixture
def recorders(cluster: ClusterUnderTest, namespace: str) -> Iterator[list[RecorderProcess]]:
    """Two replicas of the real recorder watching `namespace`: one leads."""
    started = [
        RecorderProcess(
            cluster.kubeconfig,
            namespace,
            extra_args=[
                f"--namespaces={namespace}",
                "--flush-interval=0.3",
                "--lease-duration=3",
                "--renew-deadline=2",
                "--retry-period=0.5",
            ],
            identity=f"replica-{i}",
        )
        for i in range(2)
    ]
    try:
        yield [r.start() for r in started]
    finally:
        for recorder in started:
            recorder.stop()


def test_prometheus_scrapes_the_job_info_of_live_pods_from_the_leader(
    cluster: ClusterUnderTest,
    namespace: str,
    binaries: Binaries,
    recorders: list[RecorderProcess],
) -> None:
    jobs = {
        "current": RunnerJob(project_id=4242, project_path="acme/tools/app", ref="feat/x.y"),
        "legacy": RunnerJob(project_id=77, job_name="test 1/2", runner_version=(17, 5)),
    }
    pods = {
        kind: create_pod(cluster.kube, namespace, runner_pod(job))["metadata"]["name"]
        for kind, job in jobs.items()
    }
    targets = [f"127.0.0.1:{r.port}" for r in recorders]
    prometheus = PrometheusServer(binaries)
    prometheus.scrape_configs = [
        scrape_config(f"{kind}-{i}", t, labels=TARGET_LABELS, honor_labels=kind == "honoured")
        for kind in ("honoured", "plain")
        for i, t in enumerate(targets)
    ]
    # No kubelet runs here: the pods' working sets of the last minute are backfilled.
    now = time.time()
    usage = [
        Series(
            {"namespace": namespace, "pod": pod, "container": "build"},
            [(now - 60 + i * 10, 1e9 * (n + 1)) for i in range(5)],
        )
        for n, pod in enumerate(pods.values())
    ]
    prometheus.backfill([Family("container_memory_working_set_bytes", "gauge", usage)])
    prometheus.start()

    def info(selector: str, count: int | None = None) -> list[dict[str, Any]] | None:
        """The job info series `selector` picks; None until there are `count` of them."""
        result: list[dict[str, Any]] = prometheus.api(
            "query", query=f"runner_sizer_job_info{{{selector}}}", time=time.time()
        )["result"]
        return None if count is not None and len(result) != count else result

    try:
        honoured = wait_for(
            lambda: info(f'job=~"honoured-.*",namespace="{namespace}"', count=2),
            what="both pods' job info scraped",
        )
        exported = {s["metric"]["pod"]: s["metric"] for s in honoured}
        assert exported[pods["current"]] == {
            "__name__": "runner_sizer_job_info",
            "namespace": namespace,
            "pod": pods["current"],
            "project_id": "4242",
            "root_namespace": "acme",
            "project": "app",
            "ref": "feat/x.y",
            "job_name": "build",
            "instance": exported[pods["current"]]["instance"],
            "job": exported[pods["current"]]["job"],
        }
        assert exported[pods["legacy"]]["project_id"] == "77"
        assert exported[pods["legacy"]]["job_name"] == "test 1/2"
        # Only the leader exports: one series per pod although both replicas are scraped.
        assert len({s["metric"]["job"] for s in honoured}) == 1
        # Without honor_labels the target's labels win and the pod's move to exported_*.
        plain = wait_for(lambda: info('job=~"plain-.*"', count=2), what="the plain scrape")
        assert {s["metric"]["namespace"] for s in plain} == {"ci-sizer"}
        assert {s["metric"]["exported_namespace"] for s in plain} == {namespace}
        # The join the README shows: peak working set per job.
        joined = prometheus.api(
            "query",
            query=(
                "max by (namespace, pod) (max_over_time("
                f'container_memory_working_set_bytes{{namespace="{namespace}"}}[1h]))'
                " * on (namespace, pod) group_left (project_id, ref, job_name)"
                " max by (namespace, pod, project_id, ref, job_name)"
                ' (max_over_time(runner_sizer_job_info{job=~"honoured-.*"}[1h]))'
            ),
            time=time.time(),
        )["result"]
        assert {(s["metric"]["job_name"], float(s["value"][1])) for s in joined} == {
            ("build", 1e9),
            ("test 1/2", 2e9),
        }

        cluster.kube.delete(pods_path(namespace, pods["current"]), params={"gracePeriodSeconds": 0})
        wait_for(
            lambda: info(f'namespace="{namespace}",pod="{pods["current"]}"') == [],
            what="the deleted pod's series to go stale",
        )
        assert info(f'namespace="{namespace}",pod="{pods["legacy"]}"')
    finally:
        prometheus.stop()
