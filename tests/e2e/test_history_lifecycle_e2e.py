"""The history ConfigMap through a release's whole life: no entry lost, Helm never refuses.

upgrade → disable the recorder → uninstall → reinstall, with a recorder running on
the chart's own ServiceAccount in between (it writes, and re-creates the ConfigMap
when it is deleted). The chart's Deployments never run here (no kubelet); the
recorder runs as a local process, as in test_chart_e2e.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob
from tests.chart.conftest import CHART
from tests.e2e.conftest import ClusterUnderTest
from tests.e2e.test_chart_e2e import helm
from tests.e2e.test_recorder_e2e import bound_pod, history_path, job_key, stored_history
from tests.support.kube import create_pod, mint_token, token_kubeconfig, wait_for

NAMESPACE = "runner-sizer-lifecycle"
RELEASE = "life"


@pytest.fixture
def release_namespace(cluster: ClusterUnderTest) -> Iterator[str]:
    cluster.kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    yield NAMESPACE
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--ignore-not-found")
    cluster.kube.delete(f"/api/v1/namespaces/{NAMESPACE}")


def install(cluster: ClusterUnderTest, *values: str) -> None:
    helm(
        cluster,
        *("upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE),
        *("--set", "webhook.enabled=false"),
        # The name the local recorder process uses (the chart's default is release-scoped).
        *("--set", "global.history.configMapName=runner-sizer-history"),
        *(arg for value in values for arg in ("--set", value)),
    )


def chart_recorder(cluster: ClusterUnderTest, watched: str, workdir: Path) -> RecorderProcess:
    """The real recorder, authenticated as the chart's recorder ServiceAccount."""
    account = f"{RELEASE}-recorder"
    token = mint_token(cluster.kube, NAMESPACE, account)
    kubeconfig = token_kubeconfig(workdir / f"{uuid.uuid4().hex[:6]}", cluster.kube, token)
    return RecorderProcess(
        kubeconfig,
        NAMESPACE,
        extra_args=[
            f"--namespaces={watched}",
            f"--lease-name={account}",
            f"--oom-configmap={RELEASE}-runner-sizer-ooms",  # the chart's; RBAC allows no other
            "--flush-interval=0.3",
        ],
    ).start()


def owned_by_the_release(cluster: ClusterUnderTest) -> bool:
    metadata = cluster.kube.get(history_path(NAMESPACE))["metadata"]
    return bool(
        metadata["labels"].get("app.kubernetes.io/managed-by") == "Helm"
        and metadata["annotations"].get("meta.helm.sh/release-name") == RELEASE
        and metadata["annotations"].get("meta.helm.sh/release-namespace") == NAMESPACE
        and metadata["annotations"].get("helm.sh/resource-policy") == "keep"
    )


def record(cluster: ClusterUnderTest, watched: str, node: str) -> str:
    """Create a bound runner pod and wait until its key is stored."""
    job = RunnerJob(runner_short=uuid.uuid4().hex[:8])
    create_pod(cluster.kube, watched, bound_pod(job, node))
    wait_for(
        lambda: stored_history(cluster, NAMESPACE).get(job_key(job)) == [node],
        timeout=15,
        what=f"{job_key(job)} stored",
    )
    return job_key(job)


def test_no_history_is_lost_across_upgrade_disable_uninstall_reinstall(
    cluster: ClusterUnderTest, release_namespace: str, namespace: str, tmp_path: Path
) -> None:
    install(cluster)
    recorder = chart_recorder(cluster, namespace, tmp_path)
    try:
        keys = {record(cluster, namespace, node) for node in cluster.node_names}
        assert owned_by_the_release(cluster), "the recorder's writes keep Helm's metadata"
        cluster.kube.delete(history_path(NAMESPACE))
        keys.add(record(cluster, namespace, cluster.node_names[0]))
    finally:
        recorder.stop()
    history = stored_history(cluster, NAMESPACE)
    assert set(history) == keys, "re-created through the chart's RBAC, with all it knew"
    assert owned_by_the_release(cluster), "and with Helm's metadata"

    for step in (
        lambda: install(cluster, "recorder.flushInterval=2"),
        lambda: install(cluster, "recorder.enabled=false"),
        lambda: helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE),
        lambda: install(cluster),  # reinstall: Helm adopts the ConfigMap it kept
    ):
        step()
        assert stored_history(cluster, NAMESPACE) == history
    assert owned_by_the_release(cluster)

    recorder = chart_recorder(cluster, namespace, tmp_path)
    try:
        late = record(cluster, namespace, cluster.node_names[1])
    finally:
        recorder.stop()
    assert set(stored_history(cluster, NAMESPACE)) == keys | {late}
    install(cluster, "recorder.logLevel=debug")  # and Helm still owns it afterwards
