"""OOM kills against a real API server: caught before the runner deletes the pod, kept, counted."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.history.oom_store import read_oom_records
from runner_sizer.history.ooms import OomRecord
from tests.chart.conftest import find, render
from tests.e2e.conftest import ClusterUnderTest
from tests.support.ended_pods import OOM_KILLED, SUSPECTED, build_ended
from tests.support.kube import create_pod, mint_token, pods_path, token_kubeconfig, wait_for
from tests.support.promtool import assert_promtool_accepts

GIB = 2**30
OOMS = "runner-sizer-ooms"
FAST = ["--flush-interval=0.3"]


@pytest.fixture
def recorders(cluster: ClusterUnderTest, namespace: str) -> Iterator[list[RecorderProcess]]:
    started: list[RecorderProcess] = []
    yield started
    for process in started:
        process.stop()


def start(
    cluster: ClusterUnderTest, namespace: str, started: list[RecorderProcess], *args: str
) -> RecorderProcess:
    process = RecorderProcess(
        cluster.kubeconfig,
        namespace,
        extra_args=[f"--namespaces={namespace}", *FAST, *args],
        identity=f"recorder-{len(started)}",
    ).start()
    started.append(process)
    return process


def stored(cluster: ClusterUnderTest, namespace: str, name: str = OOMS) -> dict[str, OomRecord]:
    return {r.pod_uid: r for r in read_oom_records(cluster.kube, namespace, name)}


def kills(recorder: RecorderProcess, certainty: str) -> float:
    return recorder.metric(f'runner_sizer_oom_kills_total{{certainty="{certainty}"}}')


def ended_job(
    cluster: ClusterUnderTest, namespace: str, ending: dict[str, Any], delete: bool = True
) -> dict[str, Any]:
    """A runner pod whose build container ends so; deleted at once, as the runner would."""
    job = RunnerJob(runner_short=uuid.uuid4().hex[:8], job_name=f"test-{uuid.uuid4().hex[:4]}")
    manifest = runner_pod(job)
    manifest["spec"]["nodeName"] = cluster.node_names[0]
    pod = create_pod(cluster.kube, namespace, manifest)
    path = pods_path(namespace, pod["metadata"]["name"])
    finished = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cluster.kube.patch(
        f"{path}/status",
        {"status": build_ended(ending, finished.isoformat().replace("+00:00", "Z"))},
    )
    ended = time.monotonic()
    if delete:
        cluster.kube.delete(path, params={"gracePeriodSeconds": 0})
        assert time.monotonic() - ended < 3, "deleted within the runner's ~3 s"
    return pod | {"finished": finished.timestamp(), "job": job}


def test_an_oom_kill_is_kept_counted_once_and_survives_a_restart(
    cluster: ClusterUnderTest, namespace: str, recorders: list[RecorderProcess]
) -> None:
    first = start(cluster, namespace, recorders)
    gone = ended_job(cluster, namespace, OOM_KILLED)
    lingering = ended_job(cluster, namespace, OOM_KILLED, delete=False)
    uids = {p["metadata"]["uid"] for p in (gone, lingering)}
    wait_for(lambda: uids <= set(stored(cluster, namespace)), timeout=10, what="both kills stored")
    record = stored(cluster, namespace)[gone["metadata"]["uid"]]
    job: RunnerJob = gone["job"]
    assert record == OomRecord(
        project_id=str(job.project_id),
        org="acme",
        repo="ml-pipeline",
        ref="main",
        job=job.job_name,
        pod_uid=gone["metadata"]["uid"],
        at=gone["finished"],
        memory_limit=4 * GIB,
        memory_request=2 * GIB,
        certain=True,
    )
    assert kills(first, "oom_killed") == 2 and kills(first, "suspected") == 0

    first.stop()
    second = start(cluster, namespace, recorders)
    # The lingering pod is listed again: known, so neither stored nor counted twice.
    assert second.metric("runner_sizer_recorder_oom_records") == 2
    later = ended_job(cluster, namespace, OOM_KILLED)
    wait_for(
        lambda: later["metadata"]["uid"] in stored(cluster, namespace),
        timeout=10,
        what="a kill after the restart",
    )
    assert set(stored(cluster, namespace)) == uids | {later["metadata"]["uid"]}
    assert kills(second, "oom_killed") == 1


def test_exit_137_without_oom_killed_is_kept_as_suspected(
    cluster: ClusterUnderTest, namespace: str, recorders: list[RecorderProcess]
) -> None:
    recorder = start(cluster, namespace, recorders)
    pod = ended_job(cluster, namespace, SUSPECTED)
    uid = pod["metadata"]["uid"]
    wait_for(lambda: uid in stored(cluster, namespace), timeout=10, what="the suspected kill")
    assert not stored(cluster, namespace)[uid].certain
    assert kills(recorder, "suspected") == 1 and kills(recorder, "oom_killed") == 0
    assert_promtool_accepts(requests.get(f"{recorder.url}/metrics", timeout=5).text)


def test_the_oldest_kills_are_evicted_past_the_cap_and_counted(
    cluster: ClusterUnderTest, namespace: str, recorders: list[RecorderProcess]
) -> None:
    recorder = start(cluster, namespace, recorders, "--oom-max-records=2")
    uids = []
    for _ in range(3):
        uids.append(ended_job(cluster, namespace, OOM_KILLED)["metadata"]["uid"])
        time.sleep(1.1)  # finishedAt has whole seconds: each kill its own
    wait_for(
        lambda: set(stored(cluster, namespace)) == set(uids[1:]),
        timeout=10,
        what="the two newest kills stored",
    )
    assert recorder.metric("runner_sizer_recorder_oom_evictions_total") >= 1


def test_the_recorder_keeps_kills_through_the_charts_rbac(
    cluster: ClusterUnderTest, namespace: str, recorders: list[RecorderProcess], tmp_path: Path
) -> None:
    """The chart's Role, RoleBindings and pod-reading ClusterRole, for one watched namespace."""
    manifests = render(
        None,
        f"recorder.namespaces={{{namespace}}}",
        "recorder.pruneDeletedNodes=false",
        namespace=namespace,
    )
    kube = cluster.kube
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    kube.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "rs-recorder"}}
    )
    (pods_role,) = find(manifests, "ClusterRole", "rs-recorder-pods")
    pods_role["metadata"]["name"] = cluster_role = f"{namespace}-recorder-pods"
    kube.post(f"{rbac}/clusterroles", pods_role)
    try:
        for binding in find(manifests, "RoleBinding"):
            if binding["metadata"]["name"].startswith("rs-recorder"):
                if binding["roleRef"]["kind"] == "ClusterRole":
                    binding["roleRef"]["name"] = cluster_role
                kube.post(f"{rbac}/namespaces/{namespace}/rolebindings", binding)
        (role,) = find(manifests, "Role", "rs-recorder")
        kube.post(f"{rbac}/namespaces/{namespace}/roles", role)
        token = mint_token(kube, namespace, "rs-recorder")
        process = RecorderProcess(
            token_kubeconfig(tmp_path / "kubeconfig", kube, token),
            namespace,
            extra_args=[
                f"--namespaces={namespace}",
                "--configmap-name=rs-runner-sizer-history",
                "--oom-configmap=rs-runner-sizer-ooms",
                "--lease-name=rs-recorder",
                "--prune-deleted-nodes=false",
                *FAST,
            ],
        ).start()
        recorders.append(process)
        uid = ended_job(cluster, namespace, OOM_KILLED)["metadata"]["uid"]
        wait_for(
            lambda: uid in stored(cluster, namespace, "rs-runner-sizer-ooms"),
            timeout=10,
            what="the kill stored through the chart's RBAC",
        )
        assert kills(process, "oom_killed") == 1
        assert process.metric("runner_sizer_recorder_flush_errors_total") == 0
    finally:
        kube.delete(f"{rbac}/clusterroles/{cluster_role}")


def test_two_replicas_count_a_kill_once(
    cluster: ClusterUnderTest, namespace: str, recorders: list[RecorderProcess]
) -> None:
    election = ["--lease-duration=3", "--renew-deadline=2", "--retry-period=0.5"]
    replicas = [start(cluster, namespace, recorders, *election) for _ in range(2)]
    wait_for(
        lambda: sum(r.metric("runner_sizer_recorder_leader") for r in replicas) == 1,
        what="a leader",
    )
    uid = ended_job(cluster, namespace, SUSPECTED)["metadata"]["uid"]
    wait_for(lambda: uid in stored(cluster, namespace), timeout=10, what="the kill stored")
    wait_for(
        lambda: all(r.metric("runner_sizer_recorder_oom_records") == 1 for r in replicas),
        what="both replicas to know the kill",
    )
    assert sum(kills(r, "suspected") for r in replicas) == 1
