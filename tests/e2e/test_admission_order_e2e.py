"""Kubernetes facts the webhook's model of admission relies on, checked on the real apiserver.

A minimal recording webhook (in this process) sees what the apiserver sends it and
adds a native sidecar with no resources, like any webhook that forgets them.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, Response, request

from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.kube.client import KubeError
from tests.e2e.conftest import ClusterUnderTest
from tests.support.inprocess_webhook import register_fail_closed, serve_tls
from tests.support.kube import wait_for

LABEL = "runner-sizer-test/order"
DEFAULTS = {
    "type": "Container",
    "default": {"cpu": "500m", "memory": "256Mi"},
    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
}
DEFAULTED = {"limits": DEFAULTS["default"], "requests": DEFAULTS["defaultRequest"]}
SIDECAR = {"name": "added-by-webhook", "image": "registry.example/c:1", "restartPolicy": "Always"}


@dataclass
class Recorder:
    seen: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Flask:
        app = Flask("recording-webhook")

        @app.post("/mutate")
        def mutate() -> Response:
            review = json.loads(request.get_data())
            pod = review["request"]["object"]
            self.seen.append(pod)
            present = pod["spec"].get("initContainers") or []
            patch: list[dict[str, Any]] = [
                {"op": "add", "path": "/spec/initContainers", "value": [SIDECAR]}
            ]
            if any(c["name"] == SIDECAR["name"] for c in present):
                patch = []  # reinvoked (reinvocationPolicy IfNeeded): added already
            elif present:
                patch = [{"op": "add", "path": "/spec/initContainers/-", "value": SIDECAR}]
            answer = {
                "uid": review["request"]["uid"],
                "allowed": True,
                "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
            }
            body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
            return Response(json.dumps(body | {"response": answer}), mimetype="application/json")

        return app


def _pod(resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "order-"},
        "spec": {"containers": [{"name": "build", "image": "alpine:3.20", "resources": resources}]},
    }


@pytest.fixture(scope="module")
def recording(cluster: ClusterUnderTest) -> Iterator[tuple[Recorder, str]]:
    recorder = Recorder()
    ca = CertificateAuthority("order-test-ca")
    server = serve_tls(recorder.app(), ca)
    namespace = f"order-{uuid.uuid4().hex[:6]}"
    kube = cluster.kube
    kube.post("/api/v1/namespaces", {"metadata": {"name": namespace, "labels": {LABEL: "on"}}})
    limits = {"metadata": {"name": "defaults"}, "spec": {"limits": [DEFAULTS]}}
    kube.post(f"/api/v1/namespaces/{namespace}/limitranges", limits)
    name = register_fail_closed(kube, server, ca, namespace_selector={"matchLabels": {LABEL: "on"}})
    wait_for(lambda: _create(cluster, namespace, _pod({})), what="the webhook to be called")
    yield recorder, namespace
    kube.delete(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}")
    kube.delete(f"/api/v1/namespaces/{namespace}")
    server.shutdown()


def _create(cluster: ClusterUnderTest, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = cluster.kube.post(
        f"/api/v1/namespaces/{namespace}/pods", pod, params={"dryRun": "All"}
    )
    return created


def _sidecar(pod: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c for c in pod["spec"]["initContainers"] if c["name"] == SIDECAR["name"]
    )
    return found


def test_limit_range_defaults_come_before_the_webhook(
    cluster: ClusterUnderTest, recording: tuple[Recorder, str]
) -> None:
    recorder, namespace = recording
    recorder.seen.clear()
    _create(cluster, namespace, _pod({}))
    assert recorder.seen[0]["spec"]["containers"][0]["resources"] == DEFAULTED


def test_limit_range_defaults_also_land_on_what_the_webhook_added(
    cluster: ClusterUnderTest, recording: tuple[Recorder, str]
) -> None:
    _, namespace = recording
    created = _create(cluster, namespace, _pod({}))
    assert _sidecar(created)["resources"] == DEFAULTED


def test_the_quota_counts_the_defaults_on_what_the_webhook_added(
    cluster: ClusterUnderTest, recording: tuple[Recorder, str]
) -> None:
    """ResourceQuota runs last: the sidecar's defaulted 500m limit tips limits.cpu over."""
    _, namespace = recording
    base = f"/api/v1/namespaces/{namespace}/resourcequotas"
    cluster.kube.post(base, {"metadata": {"name": "q"}, "spec": {"hard": {"limits.cpu": "1"}}})
    try:
        wait_for(
            lambda: cluster.kube.get(f"{base}/q").get("status", {}).get("hard"),
            what="the quota to be enforced",
        )
        fits_alone = _pod({"requests": {"cpu": "700m"}, "limits": {"cpu": "700m"}})
        with pytest.raises(KubeError) as refused:
            _create(cluster, namespace, fits_alone)
        assert refused.value.status == 403 and "exceeded quota" in str(refused.value)
        assert "limits.cpu=1200m" in str(refused.value)
    finally:
        cluster.kube.delete(f"{base}/q")
