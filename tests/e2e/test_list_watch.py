"""The shared list-then-watch loop against a real apiserver: 410 Gone means list again."""

from __future__ import annotations

import threading

import pytest

from runner_sizer.kube.client import KubeClient
from runner_sizer.kube.informer import ListWatch
from tests.e2e.conftest import ClusterUnderTest
from tests.support.kube import wait_for


class StaleOnce(ListWatch):
    """The first list claims a resourceVersion that etcd has compacted away."""

    stale_served = False

    def _list(self, kube: KubeClient) -> str:
        if not self.stale_served:
            self.stale_served = True
            self.on_list([])
            return "1"
        return super()._list(kube)


def test_expired_resource_version_relists_and_keeps_watching(
    cluster: ClusterUnderTest, namespace: str
) -> None:
    if cluster.local is None:
        pytest.skip("needs the local control plane to compact its etcd")
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    cluster.kube.post(path, {"metadata": {"name": "before"}})
    cluster.local.compact_etcd()
    restarts: list[str] = []
    listed: list[list[str]] = []
    seen: list[tuple[str, str]] = []
    watch = StaleOnce(
        connect=lambda: cluster.kube,
        path=path,
        on_list=lambda items: listed.append([i["metadata"]["name"] for i in items]),
        on_event=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
        on_restart=restarts.append,
        stop=threading.Event(),
    )
    watch.start("test-watch")
    try:
        wait_for(lambda: "gone" in restarts, what="410 Gone on the compacted resourceVersion")
        wait_for(lambda: any("before" in names for names in listed), what="a fresh list")
        cluster.kube.post(path, {"metadata": {"name": "after"}})
        wait_for(lambda: ("ADDED", "after") in seen, what="events after the re-list")
        assert restarts == ["gone"], "re-listed at once, without an error back-off"
    finally:
        watch.stop.set()
