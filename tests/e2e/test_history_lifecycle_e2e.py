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
from prometheus_client import CollectorRegistry

from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob
from runner_sizer.history.ledger import to_data
from runner_sizer.history.placements import Placement
from runner_sizer.history.recordset import Layout, read_head
from runner_sizer.kube.client import KubeClient
from runner_sizer.webhook.history_view import HistoryView
from runner_sizer.webhook.metrics import build_metrics
from tests.chart.conftest import CHART, one, render
from tests.e2e.conftest import ClusterUnderTest
from tests.e2e.test_chart_e2e import helm
from tests.e2e.test_recorder_e2e import bound_pod, history_path, job_key, stored_history
from tests.support.kube import create_pod, mint_token, token_kubeconfig, wait_for

NAMESPACE = "runner-sizer-lifecycle"
RELEASE = "life"


@pytest.fixture(scope="module")
def module_namespace(cluster: ClusterUnderTest) -> Iterator[str]:
    cluster.kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    yield NAMESPACE
    cluster.kube.delete(f"/api/v1/namespaces/{NAMESPACE}")


@pytest.fixture
def release_namespace(cluster: ClusterUnderTest, module_namespace: str) -> Iterator[str]:
    """The release's namespace, without the release or the ConfigMaps it keeps afterwards."""
    yield module_namespace
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--ignore-not-found")
    collection = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
    for item in cluster.kube.get(collection)["items"]:
        if item["metadata"]["name"] != "kube-root-ca.crt":
            cluster.kube.delete(f"{collection}/{item['metadata']['name']}")


def install(cluster: ClusterUnderTest, *values: str) -> None:
    helm(
        cluster,
        *("upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE),
        *("--set", "webhook.enabled=false"),
        # The name the local recorder process uses (the chart's default is release-scoped).
        *("--set", "global.history.configMapName=runner-sizer-history"),
        *(arg for value in values for arg in ("--set", value)),
    )


def chart_kubeconfig(cluster: ClusterUnderTest, component: str, workdir: Path) -> Path:
    """A kubeconfig authenticated as the chart's ServiceAccount of `component`."""
    token = mint_token(cluster.kube, NAMESPACE, f"{RELEASE}-{component}")
    return token_kubeconfig(workdir / f"{uuid.uuid4().hex[:6]}", cluster.kube, token)


def chart_recorder(
    cluster: ClusterUnderTest, watched: str, workdir: Path, *args: str
) -> RecorderProcess:
    """The real recorder, authenticated as the chart's recorder ServiceAccount."""
    return RecorderProcess(
        chart_kubeconfig(cluster, "recorder", workdir),
        NAMESPACE,
        extra_args=[
            f"--namespaces={watched}",
            f"--lease-name={RELEASE}-recorder",
            f"--oom-configmap={RELEASE}-runner-sizer-ooms",  # the chart's; RBAC allows no other
            "--flush-interval=0.3",
            *args,
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


def chart_webhook_kubeconfig(cluster: ClusterUnderTest, workdir: Path) -> Path:
    """A kubeconfig of the chart's webhook ServiceAccount with its Role, and nothing else.

    Only the RBAC objects are applied: the chart's webhook would register a
    Service-based admission webhook, which the test apiserver must never call.
    """
    manifests = render(None, "global.history.configMapName=runner-sizer-history")
    for kind, collection in (
        ("ServiceAccount", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts"),
        ("Role", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles"),
        ("RoleBinding", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings"),
    ):
        manifest = one(manifests, kind, "rs-webhook")
        manifest["metadata"]["namespace"] = NAMESPACE
        for subject in manifest.get("subjects", []):
            subject["namespace"] = NAMESPACE
        cluster.kube.post(collection, manifest)
    token = mint_token(cluster.kube, NAMESPACE, "rs-webhook")
    return token_kubeconfig(workdir / "webhook", cluster.kube, token)


def stored_layout(cluster: ClusterUnderTest) -> Layout | None:
    return read_head(cluster.kube.get(history_path(NAMESPACE)).get("data") or {})[0]


def history_configmaps(cluster: ClusterUnderTest) -> set[str]:
    items = cluster.kube.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps")["items"]
    return {i["metadata"]["name"] for i in items if "history" in i["metadata"]["name"]}


def test_no_entry_is_lost_across_layout_changes_and_restarts(
    cluster: ClusterUnderTest, release_namespace: str, namespace: str, tmp_path: Path
) -> None:
    """Single ConfigMap → 2 shards → 5 shards → 1 shard, a recorder restart at each step, all
    through the chart's RBAC; the webhook's view (its ServiceAccount) follows every move."""
    install(cluster)
    seeded = {
        f"runner-{i:08x}-project-{i}": [Placement(cluster.node_names[i % 3], 10**12 + i)]
        for i in range(400)
    }
    cluster.kube.patch(history_path(NAMESPACE), {"data": to_data(seeded)})  # today's layout
    webhook_kube = chart_webhook_kubeconfig(cluster, tmp_path)
    view = HistoryView(
        lambda: KubeClient.from_kubeconfig(str(webhook_kube)),
        NAMESPACE,
        "runner-sizer-history",
        build_metrics(CollectorRegistry()),
    )
    view.start()
    try:
        wait_for(lambda: view.synced, what="the webhook's view of the single ConfigMap")
        assert view.nodes("runner-00000007-project-7") == (cluster.node_names[1],)
        keys = set(seeded)
        for shards in (2, 5, 1):
            recorder = chart_recorder(cluster, namespace, tmp_path, f"--history-shards={shards}")
            try:
                keys.add(record(cluster, namespace, cluster.node_names[shards % 3]))
            finally:
                recorder.stop()
            layout = stored_layout(cluster)
            assert layout is not None and layout.shards == shards
            assert set(stored_history(cluster, NAMESPACE)) == keys, f"all kept at {shards}"
            expected = {"runner-sizer-history", *layout.names("runner-sizer-history")}
            wait_for(
                lambda e=expected: history_configmaps(cluster) == e,  # type: ignore[misc]
                what=f"only the {shards}-shard layout's objects left",
            )
            wait_for(
                lambda: all(view.nodes(k) for k in keys),
                what=f"the webhook's view to hold every key at {shards} shards",
            )
    finally:
        view.stop()
