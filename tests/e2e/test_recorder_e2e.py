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
from runner_sizer.history.keys import HistoryKey, history_key
from runner_sizer.history.ledger import from_data
from runner_sizer.history.recordset_store import RecordSet
from tests.e2e.conftest import ClusterUnderTest
from tests.e2e.test_control_plane import preferred_node
from tests.support.kube import bound_node, create_pod, pods_path, wait_for
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


def history_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/runner-sizer-history"


def stored_history(cluster: ClusterUnderTest, namespace: str) -> dict[str, list[str]]:
    """The history as a reader of the head and the shards it names sees it."""
    records = RecordSet(cluster.kube, namespace, "runner-sizer-history").read()
    return {key: [p.node for p in placements] for key, placements in from_data(records).items()}


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


def test_long_job_names_are_stored_under_valid_keys(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    recorder = start_recorder("--history-key=project-job", *FAST)
    jobs = [RunnerJob(runner_short=uuid.uuid4().hex[:8], job_name=n * 200) for n in "ab"]
    for job in jobs:
        create_pod(cluster.kube, namespace, bound_pod(job, "node-a"))
    keys = [history_key(HistoryKey.PROJECT_JOB, runner_pod(job)["metadata"]) for job in jobs]
    wait_for(
        lambda: all(stored_history(cluster, namespace).get(k or "") == ["node-a"] for k in keys),
        timeout=10,
        what="both long keys written (the apiserver accepts them)",
    )
    assert recorder.metric("runner_sizer_recorder_flush_errors_total") == 0


def test_writes_keep_the_configmaps_metadata_and_recreate_it(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    helm_metadata = {
        "labels": {"app.kubernetes.io/managed-by": "Helm", "team": "ci"},
        "annotations": {
            "meta.helm.sh/release-name": "rs",
            "meta.helm.sh/release-namespace": namespace,
            "helm.sh/resource-policy": "keep",
        },
    }
    cluster.kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "runner-sizer-history", **helm_metadata}},
    )
    start_recorder(*FAST)
    first, second = new_job(), new_job()
    create_pod(cluster.kube, namespace, bound_pod(first, "node-a"))
    wait_for(lambda: job_key(first) in stored_history(cluster, namespace), what="first write")

    def kept_metadata() -> bool:
        metadata = cluster.kube.get(history_path(namespace))["metadata"]
        return all(metadata.get(k, {}).items() >= v.items() for k, v in helm_metadata.items())

    assert kept_metadata()
    cluster.kube.delete(history_path(namespace))
    create_pod(cluster.kube, namespace, bound_pod(second, "node-b"))
    wait_for(
        lambda: {job_key(first), job_key(second)} <= set(stored_history(cluster, namespace)),
        timeout=10,
        what="the deleted ConfigMap re-created with the whole history",
    )
    assert kept_metadata(), "re-created with the metadata it last had"


def test_a_deleted_node_stays_forgotten_while_its_pods_are_updated(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    node = f"gone-{uuid.uuid4().hex[:8]}"
    cluster.kube.post("/api/v1/nodes", {"metadata": {"name": node}})
    start_recorder(*FAST)
    job = new_job()
    pod = create_pod(cluster.kube, namespace, bound_pod(job, node))
    wait_for(lambda: stored_history(cluster, namespace).get(job_key(job)) == [node])
    cluster.kube.delete(f"/api/v1/nodes/{node}")
    wait_for(lambda: job_key(job) not in stored_history(cluster, namespace), what="node dropped")
    # What pod garbage collection does to pods still bound to the node: update, later delete.
    for step in range(3):
        cluster.kube.patch(
            pods_path(namespace, pod["metadata"]["name"]),
            {"metadata": {"annotations": {"gc-step": str(step)}}},
        )
        time.sleep(0.6)  # two flush intervals
        assert job_key(job) not in stored_history(cluster, namespace), step


def test_the_key_bound_holds_on_followers(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    election = ["--lease-duration=3", "--renew-deadline=2", "--retry-period=0.5"]
    replicas = [
        start_recorder(*election, *FAST, "--max-keys=3", identity=f"replica-{i}") for i in range(2)
    ]
    wait_for(
        lambda: [r for r in replicas if r.metric("runner_sizer_recorder_leader") == 1],
        what="a leader",
    )
    for index in range(8):
        create_pod(cluster.kube, namespace, bound_pod(new_job(), cluster.node_names[index % 3]))
    wait_for(
        lambda: all(
            r.metric("runner_sizer_recorder_evictions_total") >= 5
            and r.metric("runner_sizer_recorder_history_keys") == 3
            for r in replicas
        ),
        timeout=10,
        what="every replica to evict down to 3 keys",
    )
    # The leader writes at its next flush, after its in-memory eviction.
    wait_for(
        lambda: len(stored_history(cluster, namespace)) == 3,
        timeout=10,
        what="the leader to write the 3 kept keys",
    )


def test_a_missing_namespace_is_named_and_the_bound_holds(
    cluster: ClusterUnderTest, namespace: str
) -> None:
    missing = f"missing-{uuid.uuid4().hex[:6]}"
    recorders = [
        RecorderProcess(
            cluster.kubeconfig,
            missing,
            extra_args=[f"--namespaces={namespace}", "--max-keys=2", *FAST, *election],
            identity=f"lonely-{index}",
        ).start()
        for index, election in enumerate([["--leader-elect=false"], []])
    ]
    try:
        for index in range(5):
            create_pod(cluster.kube, namespace, bound_pod(new_job(), cluster.node_names[index % 3]))
        writer, candidate = recorders
        wait_for(
            lambda: writer.metric("runner_sizer_recorder_flush_errors_total") >= 3,
            timeout=10,
            what="flushes to fail",
        )
        wait_for(
            lambda: "lease update failed" in candidate.process.log_file.read_text(),
            what="the lease candidate to fail",
        )
        assert writer.metric("runner_sizer_recorder_history_keys") == 2, "bounded, unwritten"
        logs = {r.identity: r.process.log_file.read_text() for r in recorders}
    finally:
        for recorder in recorders:
            recorder.stop()
    named = f"namespace '{missing}' does not exist"
    assert "still conflicting" not in logs["lonely-0"]
    flush_lines = [line for line in logs["lonely-0"].splitlines() if "flush failed" in line]
    assert len(flush_lines) == 1 and named in flush_lines[0] and "ConfigMap" in flush_lines[0]
    lease_lines = [line for line in logs["lonely-1"].splitlines() if "lease update" in line]
    assert len(lease_lines) == 1 and named in lease_lines[0] and "Lease" in lease_lines[0]


def test_only_runner_pods_are_recorded(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    start_recorder(*FAST)
    impostor = {
        "metadata": {"name": "web-0", "labels": {"pod": "web"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "nginx"}]},
    }
    create_pod(cluster.kube, namespace, impostor)
    job = new_job()
    create_pod(cluster.kube, namespace, bound_pod(job, "node-b"))
    wait_for(lambda: job_key(job) in stored_history(cluster, namespace), what="runner pod")
    assert "web" not in stored_history(cluster, namespace)


def test_the_job_info_of_a_live_pod_passes_promtool(
    cluster: ClusterUnderTest, namespace: str, start_recorder: StartRecorder
) -> None:
    recorder = start_recorder(*FAST)
    create_pod(cluster.kube, namespace, runner_pod(new_job()))

    def with_job_info() -> str | None:
        text = requests.get(f"{recorder.url}/metrics", timeout=5).text
        return text if "runner_sizer_job_info{" in text else None

    text = wait_for(with_job_info, what="the pod's job info")
    assert 'runner_sizer_recorder_identity_gaps{reason="no_identity"} 0.0' in text
    assert_promtool_accepts(text)
