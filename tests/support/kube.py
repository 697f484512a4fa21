"""Test helpers that talk to a Kubernetes API server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from runner_sizer.kube.client import JSON, KubeClient

T = TypeVar("T")


def mint_token(kube: KubeClient, namespace: str, service_account: str, seconds: int = 600) -> str:
    """A bound ServiceAccount token through the TokenRequest API."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
    token: str = kube.post(path, request)["status"]["token"]
    return token


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pods_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods" + (f"/{name}" if name else "")


def create_pod(
    kube: KubeClient, namespace: str, manifest: dict[str, Any], dry_run: bool = False
) -> JSON:
    return kube.post(pods_path(namespace), manifest, params={"dryRun": "All"} if dry_run else None)


def bound_node(kube: KubeClient, namespace: str, name: str) -> str | None:
    node: str | None = kube.get(pods_path(namespace, name))["spec"].get("nodeName")
    return node


def token_kubeconfig(path: Path, kube: KubeClient, token: str) -> Path:
    """A kubeconfig for the same server that authenticates with `token` only."""
    cluster: dict[str, Any] = {"server": kube.server}
    if isinstance(kube.session.verify, str):
        cluster["certificate-authority"] = kube.session.verify
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return path
