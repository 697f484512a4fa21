"""The recommender reads the recorder's OOM records through the chart's own RBAC, and
nothing else; without it a refresh fails and says why, and the table stays served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner_sizer.devcluster.prometheus import PrometheusServer
from runner_sizer.history.oom_store import OomStore
from runner_sizer.kube.client import KubeError
from runner_sizer.recommender.promql import Identity
from tests.chart.conftest import one, render
from tests.e2e.conftest import ClusterUnderTest
from tests.support.kube import mint_token, token_kubeconfig, wait_for
from tests.support.ooms import oom_record
from tests.support.recommender import RecommenderProcess, prometheus_holding, sizing_path

WHO = Identity("5100", "acme", "rbac", "main", "build")
OOMS = "rs-runner-sizer-ooms"  # the chart's name for release `rs`


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    """An empty one: the job's only fact is its kill, an answer on its own."""
    with prometheus_holding([]) as server:
        yield server


def chart_rbac(namespace: str) -> list[dict[str, Any]]:
    """The recommender's Role and RoleBinding as the chart renders them."""
    manifests = render(
        None,
        "global.recommender.enabled=true",
        "recommender.prometheus.url=http://127.0.0.1:9",
        "global.sizer.readToken=r",
        namespace=namespace,
    )
    return [one(manifests, kind, "rs-recommender") for kind in ("Role", "RoleBinding")]


def test_the_oom_records_are_read_with_the_charts_role_and_nothing_more(
    cluster: ClusterUnderTest, namespace: str, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    kube = cluster.kube
    kube.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "rs-recommender"}}
    )
    record = oom_record(project_id=WHO.project_id, repo=WHO.repo, at=1_790_000_000.0)
    OomStore(kube, namespace, OOMS).flush([record], record.at, 86400.0, 100)  # as the recorder
    token = mint_token(kube, namespace, "rs-recommender")
    recommender = RecommenderProcess(
        prometheus.url,
        extra_args=[
            f"--oom-configmap={namespace}/{OOMS}",
            f"--kubeconfig={token_kubeconfig(tmp_path / 'kubeconfig', kube, token)}",
            "--refresh-interval=1s",
        ],
    ).start()
    try:
        ready = recommender.get("/readyz").json()
        assert "403" in ready["last_refresh_error"] and OOMS in ready["last_refresh_error"]
        assert recommender.get(sizing_path(WHO), project_id=WHO.project_id).status_code == 404

        role, binding = chart_rbac(namespace)
        kube.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles", role)
        kube.post(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings", binding
        )

        def bumped() -> dict[str, Any] | None:
            answer = recommender.get(sizing_path(WHO), project_id=WHO.project_id)
            return answer.json() if answer.status_code == 200 else None

        body = wait_for(bumped, timeout=30, what="the kill read through the chart's Role")
        assert body["oom"]["memory_floor"] == "1844Mi"  # max(1.5 Gi x 1.2, + 100 Mi)
        wait_for(
            lambda: "last_refresh_error" not in recommender.get("/readyz").json(),
            what="a clean refresh",
        )
        as_recommender = kube.with_token(token)
        for path in ("configmaps/other", "configmaps", "secrets"):
            with pytest.raises(KubeError) as refused:
                as_recommender.get(f"/api/v1/namespaces/{namespace}/{path}")
            assert refused.value.status == 403, path
    finally:
        recommender.stop()
