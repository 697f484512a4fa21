"""The recorder against a real API server: the cache-affinity loop, restarts, writers, leaders."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import requests

from runner_sizer.devcluster.receiver_standin import StandinServer
from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import webhook_for
from runner_sizer.devcluster.webhooks import RUNNER_17_9_SELECTOR, has_status_annotation
from runner_sizer.history.ledger import from_data
from runner_sizer.kube.client import KubeError
from tests.e2e.conftest import ClusterUnderTest
from tests.e2e.test_control_plane import preferred_node
from tests.support.kube import bound_node, create_pod, wait_for
from tests.support.promtool import assert_promtool_accepts

FAST = ["--flush-interval=0.3"]
StartRecorder = Callable[..., RecorderProcess]


@pytest.fixture
def start_recorder(cluster: ClusterUnderTest, namespace: str) -> Iterator[StartRecorder]:
    started: list[RecorderProcess] = []

    def start(
        *args: str, identity: str = "recorder-0", watch: str | None = None
    ) -> RecorderProcess:
        process = RecorderProcess(
            cluster.kubeconfig,
            namespace,
            extra_args=[f"--namespaces={watch or namespace}", *args],
            identity=identity,
        ).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def stored_history(cluster: ClusterUnderTest, namespace: str) -> dict[str, list[str]]:
    try:
        data = cluster.kube.get(
            f"/api/v1/namespaces/{namespace}/configmaps/runner-sizer-history"
        ).get("data")
    except KubeError as error:
        if error.status == 404:
            return {}
        raise
    return {key: [p.node for p in placements] for key, placements in from_data(data or {}).items()}


def job_key(job: RunnerJob) -> str:
    return f"runner-{job.runner_short}-project-{job.project_id}"


def bound_pod(job: RunnerJob, node: str) -> dict[str, Any]:
    """A runner pod created already bound (as if scheduled)."""
    manifest = runner_pod(job)
    manifest["spec"]["nodeName"] = node
    return manifest


def new_job() -> RunnerJob:
    return RunnerJob(runner_short=uuid.uuid4().hex[:8])


def test_the_cache_affinity_loop_closes(
    cluster: ClusterUnderTest,
    namespace: str,
    start_recorder: StartRecorder,
    register_webhook: Callable[..., str],
) -> None:
    start_recorder(*FAST)
    standin = StandinServer().start()
    webhook = webhook_for(
        standin.url, f"--kubeconfig={cluster.kubeconfig}", f"--history-namespace={namespace}"
    ).start()
    try:
        webhook.wait_ready()
        register_webhook(
            f"{webhook.url}/mutate",
            webhook.ca.cert_pem,
            namespace,
            active_when=has_status_annotation,
            object_selector=RUNNER_17_9_SELECTOR,
        )
        jobs = {node: new_job() for node in cluster.node_names}
        for node, job in jobs.items():
            # Pod 1 of each key goes where we steer it, through kube-scheduler.
            first = create_pod(cluster.kube, namespace, runner_pod(job, preferred_node(node)))
            assert (
                wait_for(partial(bound_node, cluster.kube, namespace, first["metadata"]["name"]))
                == node
            )
        started = time.monotonic()
        wait_for(
            lambda: all(
                stored_history(cluster, namespace).get(job_key(j)) == [n] for n, j in jobs.items()
            ),
            timeout=10,
            what="recorder to write every binding",
        )
        assert time.monotonic() - started < 0.3 + 3.0, "recorded within a flush interval (+ slack)"
        for node, job in jobs.items():
            second = runner_pod(RunnerJob(runner_short=job.runner_short, concurrent=1))

            def has_affinity(pod_job: dict[str, Any] = second) -> bool:
                probe = create_pod(cluster.kube, namespace, pod_job, dry_run=True)
                return "affinity" in probe["spec"]

            wait_for(has_affinity, timeout=10, what="webhook to see the history")
            created = create_pod(cluster.kube, namespace, second)
            terms = created["spec"]["affinity"]["nodeAffinity"][
                "preferredDuringSchedulingIgnoredDuringExecution"
            ]
            assert terms[0]["preference"]["matchExpressions"][0]["values"] == [node]
            chosen = wait_for(
                partial(bound_node, cluster.kube, namespace, created["metadata"]["name"])
            )
            assert chosen == node
    finally:
        webhook.stop()
        standin.stop()


def test_history_survives_a_recorder_restart(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    first = start_recorder(*FAST)
    jobs = [new_job() for _ in range(5)]
    for index, job in enumerate(jobs):
        create_pod(cluster.kube, namespace, bound_pod(job, cluster.node_names[index % 3]))
    wait_for(
        lambda: len(stored_history(cluster, namespace)) == 5, timeout=10, what="5 keys written"
    )
    before = stored_history(cluster, namespace)
    first.stop()
    start_recorder(*FAST, identity="recorder-1")
    late = new_job()
    create_pod(cluster.kube, namespace, bound_pod(late, "node-b"))
    wait_for(
        lambda: job_key(late) in stored_history(cluster, namespace), timeout=10, what="new key"
    )
    after = stored_history(cluster, namespace)
    assert {k: v for k, v in after.items() if k != job_key(late)} == before


def test_recorder_recovers_when_the_apiserver_restarts(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    if cluster.local is None:
        pytest.skip("needs the local control plane to restart its apiserver")
    recorder = start_recorder(*FAST)
    cluster.local.restart_apiserver()
    job = new_job()
    create_pod(cluster.kube, namespace, bound_pod(job, "node-c"))
    wait_for(
        lambda: stored_history(cluster, namespace).get(job_key(job)) == ["node-c"],
        timeout=30,
        what="binding recorded after the apiserver restart",
    )
    assert recorder.metric("runner_sizer_recorder_watch_restarts_total") >= 1


def test_concurrent_writers_lose_no_entry(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    other = f"{namespace}-b"
    cluster.kube.post("/api/v1/namespaces", {"metadata": {"name": other}})
    try:
        writers = [
            start_recorder(
                "--leader-elect=false", "--flush-interval=0.05", identity=f"w{i}", watch=ns
            )
            for i, ns in enumerate((namespace, other))
        ]
        expected = set()
        for index in range(40):
            for ns in (namespace, other):
                job = new_job()
                expected.add(job_key(job))
                create_pod(cluster.kube, ns, bound_pod(job, cluster.node_names[index % 3]))
        wait_for(
            lambda: expected <= set(stored_history(cluster, namespace)),
            timeout=20,
            what="all 80 keys from both writers",
        )
        conflicts = sum(w.metric("runner_sizer_recorder_write_conflicts_total") for w in writers)
        print(f"\nconcurrent writers: {conflicts:.0f} conflicts resolved by merge")
    finally:
        cluster.kube.delete(f"/api/v1/namespaces/{other}/pods", params={"gracePeriodSeconds": 0})
        cluster.kube.delete(f"/api/v1/namespaces/{other}")


def test_one_leader_writes_and_a_follower_takes_over(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    election = ["--lease-duration=3", "--renew-deadline=2", "--retry-period=0.5", *FAST]
    replicas = [start_recorder(*election, identity=f"replica-{i}") for i in range(2)]
    leaders = wait_for(
        lambda: [r for r in replicas if r.metric("runner_sizer_recorder_leader") == 1],
        what="a leader",
    )
    assert len(leaders) == 1
    leader = leaders[0]
    follower = next(r for r in replicas if r is not leader)
    job = new_job()
    create_pod(cluster.kube, namespace, bound_pod(job, "node-a"))
    wait_for(
        lambda: job_key(job) in stored_history(cluster, namespace), timeout=10, what="leader writes"
    )
    assert follower.metric("runner_sizer_recorder_configmap_writes_total") == 0
    leader.kill()
    killed = time.monotonic()
    wait_for(
        lambda: follower.metric("runner_sizer_recorder_leader") == 1, timeout=15, what="failover"
    )
    assert time.monotonic() - killed < 3 + 2.0, "takes over within the lease duration (+ one retry)"
    late = new_job()
    create_pod(cluster.kube, namespace, bound_pod(late, "node-b"))
    wait_for(
        lambda: job_key(late) in stored_history(cluster, namespace),
        timeout=10,
        what="new leader writes",
    )


def test_recorder_metrics_pass_promtool(
    cluster: ClusterUnderTest, start_recorder: StartRecorder
) -> None:
    recorder = start_recorder(*FAST)
    text = requests.get(f"{recorder.url}/metrics", timeout=5).text
    for name in (
        "events_total",
        "bindings_recorded_total",
        "configmap_writes_total",
        "write_conflicts_total",
        "evictions_total",
        "history_keys",
        "history_bytes",
        "watch_restarts_total",
        "leader",
    ):
        assert f"runner_sizer_recorder_{name}" in text, name
    assert_promtool_accepts(text)
