"""Register a mutating webhook the apiserver reaches by URL on loopback."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from runner_sizer.kube.client import KubeClient, KubeError
from runner_sizer.webhook.mutation import STATUS_ANNOTATION

RUNNER_17_9_SELECTOR = {
    "matchExpressions": [{"key": "job.runner.gitlab.com/pod", "operator": "Exists"}]
}


def has_status_annotation(pod: dict[str, Any]) -> bool:
    return STATUS_ANNOTATION in (pod.get("metadata", {}).get("annotations") or {})


def url_webhook_configuration(
    name: str,
    url: str,
    ca_pem: bytes,
    *,
    namespace_selector: dict[str, Any] | None = None,
    object_selector: dict[str, Any] | None = None,
    timeout_seconds: int = 5,
    failure_policy: str = "Ignore",
) -> dict[str, Any]:
    """A MutatingWebhookConfiguration for pod CREATE, called at `url`.

    `clientConfig.url` (never `service`) keeps the apiserver's traffic on
    loopback; `caBundle` must hold the CA that signed the server's cert.
    """
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{name}.runner-sizer.io",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": namespace_selector or {},
                "objectSelector": object_selector or {},
                "failurePolicy": failure_policy,
                "matchPolicy": "Equivalent",
                "reinvocationPolicy": "IfNeeded",
                "sideEffects": "NoneOnDryRun",  # API dry-run mints no push token
                "timeoutSeconds": timeout_seconds,
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


def apply_mutating_webhook(kube: KubeClient, manifest: dict[str, Any]) -> None:
    """Create the configuration, replacing one of the same name."""
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    try:
        kube.delete(f"{path}/{manifest['metadata']['name']}")
    except KubeError as error:
        if error.status != 404:
            raise
    kube.post(path, manifest)


def register_and_wait(
    kube: KubeClient,
    manifest: dict[str, Any],
    *,
    namespace: str,
    probe_pod: dict[str, Any],
    active_when: Callable[[dict[str, Any]], bool],
    timeout: float = 15.0,
) -> None:
    """Register, then dry-run `probe_pod` until the answer satisfies `active_when`.

    The apiserver picks up webhook configurations asynchronously; without this
    the first real pod may slip through unmutated.
    """
    apply_mutating_webhook(kube, manifest)
    deadline = time.monotonic() + timeout
    path = f"/api/v1/namespaces/{namespace}/pods"
    while time.monotonic() < deadline:
        if active_when(kube.post(path, probe_pod, params={"dryRun": "All"})):
            return
        time.sleep(0.05)
    raise TimeoutError(f"webhook {manifest['metadata']['name']} not active after {timeout}s")
