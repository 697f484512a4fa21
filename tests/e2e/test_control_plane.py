"""The local control plane is a real one: scheduler, webhooks and RBAC work."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.kube.client import KubeError
from tests.e2e.conftest import ClusterUnderTest
from tests.support.kube import bound_node, create_pod, mint_token, pods_path, wait_for

MUTATED_LABEL = "e2e.runner-sizer.io/mutated"


def preferred_node(node: str) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                        ]
                    },
                }
            ]
        }
    }


def test_scheduler_binds_to_the_preferred_node(cluster: ClusterUnderTest, namespace: str) -> None:
    assert len(cluster.node_names) >= 3
    wanted: dict[str, str] = {}
    for index in range(3 * len(cluster.node_names)):
        node = cluster.node_names[index % len(cluster.node_names)]
        job = RunnerJob(job_id=9000 + index, concurrent=index)
        created = create_pod(cluster.kube, namespace, runner_pod(job, preferred_node(node)))
        wanted[created["metadata"]["name"]] = node
    for name, node in wanted.items():
        chosen = wait_for(partial(bound_node, cluster.kube, namespace, name), what=f"{name} bound")
        assert chosen == node, f"{name} went to {chosen}, preferred {node}"


class _LabellingWebhook(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]]

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(review)
        patch = [
            {
                "op": "add",
                "path": f"/metadata/labels/{MUTATED_LABEL.replace('/', '~1')}",
                "value": "yes",
            }
        ]
        body = json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": review["request"]["uid"],
                    "allowed": True,
                    "patchType": "JSONPatch",
                    "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def labelling_webhook(
    test_ca: CertificateAuthority, tmp_path: Path
) -> Iterator[tuple[str, type[_LabellingWebhook]]]:
    handler = type("Handler", (_LabellingWebhook,), {"calls": []})
    cert, key = test_ca.serving("test-webhook").write(tmp_path, "webhook")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/mutate", handler
    server.shutdown()
    server.server_close()


def test_url_webhook_is_called_and_its_patch_stored(
    cluster: ClusterUnderTest,
    namespace: str,
    test_ca: CertificateAuthority,
    register_webhook: Callable[..., str],
    labelling_webhook: tuple[str, type[_LabellingWebhook]],
) -> None:
    url, handler = labelling_webhook
    register_webhook(
        url,
        test_ca.cert_pem,
        namespace,
        active_when=lambda pod: pod["metadata"]["labels"].get(MUTATED_LABEL) == "yes",
    )
    created = create_pod(cluster.kube, namespace, runner_pod(RunnerJob()))
    stored = cluster.kube.get(pods_path(namespace, created["metadata"]["name"]))
    assert stored["metadata"]["labels"][MUTATED_LABEL] == "yes"
    real_calls = [c for c in handler.calls if not c["request"]["dryRun"]]
    assert [c["request"]["operation"] for c in real_calls] == ["CREATE"]
    assert real_calls[0]["request"]["namespace"] == namespace


def test_service_account_token_gets_exactly_its_role(
    cluster: ClusterUnderTest, namespace: str
) -> None:
    kube = cluster.kube
    ns = f"/api/v1/namespaces/{namespace}"
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    kube.post(f"{ns}/serviceaccounts", {"metadata": {"name": "narrow"}})
    kube.post(
        f"{rbac}/roles",
        {
            "metadata": {"name": "read-configmaps"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    kube.post(
        f"{rbac}/rolebindings",
        {
            "metadata": {"name": "narrow-reads-configmaps"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-configmaps",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "narrow", "namespace": namespace}],
        },
    )
    kube.post(f"{ns}/configmaps", {"metadata": {"name": "history"}, "data": {"k": "v"}})
    narrow = kube.with_token(mint_token(kube, namespace, "narrow"))

    # The authorizer's RBAC cache is fed by informers: let the binding land.
    wait_for(partial(_allowed, narrow.get, f"{ns}/configmaps"), what="role binding in effect")
    assert narrow.get(f"{ns}/configmaps/history")["data"] == {"k": "v"}
    refused: list[tuple[str, str]] = [
        ("POST", f"{ns}/configmaps"),
        ("DELETE", f"{ns}/configmaps/history"),
        ("GET", f"{ns}/pods"),
        ("GET", "/api/v1/namespaces/kube-system/configmaps"),
        ("GET", "/api/v1/nodes"),
    ]
    for method, path in refused:
        body = {"metadata": {"name": "x"}} if method == "POST" else None
        with pytest.raises(KubeError) as raised:
            narrow.request(method, path, body=body)
        assert raised.value.status == 403, f"{method} {path}"


def _allowed(call: Callable[[str], object], path: str) -> bool:
    try:
        call(path)
    except KubeError as error:
        if error.status == 403:
            return False
        raise
    return True
