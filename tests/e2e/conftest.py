"""A real Kubernetes API server for the end-to-end suite.

By default a local control plane (etcd, kube-apiserver, kube-scheduler,
kube-controller-manager) is started once per session; `--kubeconfig PATH`
uses an existing cluster instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner_sizer.devcluster.binaries import BinariesUnavailableError, ensure_binaries
from runner_sizer.devcluster.cluster import LocalCluster
from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhooks import register_and_wait, url_webhook_configuration
from runner_sizer.kube.client import KubeClient
from tests.support.kube import pods_path

WATCH_LABEL = "ci-sizer.devfw.io/watch"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kubeconfig", default=None, help="use this cluster, not a local one")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@dataclass
class ClusterUnderTest:
    kubeconfig: Path
    kube: KubeClient
    node_names: list[str]
    local: LocalCluster | None


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterUnderTest]:
    existing = request.config.getoption("--kubeconfig")
    if existing:
        kube = KubeClient.from_kubeconfig(existing)
        nodes = [n["metadata"]["name"] for n in kube.get("/api/v1/nodes")["items"]]
        yield ClusterUnderTest(Path(existing), kube, nodes, None)
        return
    try:
        binaries = ensure_binaries()
    except BinariesUnavailableError as error:
        # CI must never pass on a skipped end-to-end suite.
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))
    local = LocalCluster(binaries).start()
    print(f"\nlocal control plane started in {local.started_in_seconds:.1f}s")
    kube = KubeClient.from_kubeconfig(str(local.kubeconfig))
    try:
        yield ClusterUnderTest(local.kubeconfig, kube, list(local.node_names), local)
    finally:
        kept = local.stop(keep_logs=request.session.testsfailed > 0)
        if kept:
            print(f"\ncontrol-plane logs kept in {kept}")


@pytest.fixture
def namespace(cluster: ClusterUnderTest, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, labelled for the webhook, removed afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kube.post(
        "/api/v1/namespaces", {"metadata": {"name": name, "labels": {WATCH_LABEL: "true"}}}
    )
    yield name
    # No kubelet finishes graceful deletion: remove pods at once, then the namespace.
    cluster.kube.delete(pods_path(name), params={"gracePeriodSeconds": 0})
    cluster.kube.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="session")
def test_ca() -> CertificateAuthority:
    return CertificateAuthority("runner-sizer-test-webhook-ca")


@pytest.fixture
def register_webhook(
    cluster: ClusterUnderTest,
) -> Iterator[Callable[..., str]]:
    """Register a URL webhook scoped to one namespace; removed after the test."""
    names: list[str] = []

    def register(
        url: str,
        ca_pem: bytes,
        namespace: str,
        active_when: Callable[[dict[str, Any]], bool],
        **kwargs: Any,
    ) -> str:
        name = f"test-{uuid.uuid4().hex[:8]}"
        selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        manifest = url_webhook_configuration(
            name, url, ca_pem, namespace_selector=selector, **kwargs
        )
        names.append(name)
        register_and_wait(
            cluster.kube,
            manifest,
            namespace=namespace,
            probe_pod=runner_pod(RunnerJob()),
            active_when=active_when,
        )
        return name

    yield register
    for name in names:
        cluster.kube.delete(
            f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
        )


_skipped_e2e: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "tests/e2e" in report.nodeid:
        _skipped_e2e.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _skipped_e2e:
        print(f"\nCI: {len(_skipped_e2e)} end-to-end tests were skipped; that is a failure")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
