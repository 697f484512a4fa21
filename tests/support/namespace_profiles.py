"""Namespaces as platform teams configure them: LimitRanges, ResourceQuotas, Pod Security.

The property test reuses one namespace per profile: creating namespaces per case
would not fit its time budget, and the pods it sends vary around these fixed values.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from runner_sizer.kube.client import KubeClient
from tests.support.kube import wait_for

CONTAINER_DEFAULTS = {
    "type": "Container",
    "default": {"cpu": "500m", "memory": "512Mi"},
    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
}
CONTAINER_MIN_MAX = {
    "type": "Container",
    "min": {"cpu": "50m", "memory": "64Mi"},
    "max": {"cpu": "4", "memory": "8Gi"},
}
CONTAINER_RATIO = {"type": "Container", "maxLimitRequestRatio": {"cpu": "4", "memory": "2"}}
POD_MAX = {"type": "Pod", "max": {"cpu": "6", "memory": "12Gi"}}
POD_BOUNDS = {"type": "Pod", "max": {"cpu": "6", "memory": "12Gi"}, "min": {"cpu": "100m"}}
# A LimitRange holds one item per type: everything for containers at once.
CONTAINER_ALL = {
    "type": "Container",
    "default": {"cpu": "500m", "memory": "512Mi"},
    "defaultRequest": {"cpu": "200m", "memory": "256Mi"},
    "min": {"cpu": "50m", "memory": "64Mi"},
    "max": {"cpu": "4", "memory": "8Gi"},
    "maxLimitRequestRatio": {"cpu": "4", "memory": "2"},
}
POD_RATIO = {"type": "Pod", "maxLimitRequestRatio": {"memory": "3"}}

REQUESTS_QUOTA = {"requests.cpu": "6", "requests.memory": "12Gi"}
LIMITS_QUOTA = {"limits.cpu": "8", "limits.memory": "16Gi"}
PLAIN_QUOTA = {"cpu": "4", "memory": "8Gi", "pods": "10"}
PODS_QUOTA = {"pods": "3"}


@dataclass(frozen=True)
class Profile:
    name: str
    limits: tuple[dict[str, Any], ...] = ()
    quota: dict[str, str] = field(default_factory=dict)
    pod_security: str = ""
    filler: bool = False  # a pod already running there, using part of the quota


PROFILES = (
    Profile("open"),
    Profile("defaults", (CONTAINER_DEFAULTS,)),
    Profile("min-max", (CONTAINER_MIN_MAX,)),
    Profile("ratio", (CONTAINER_RATIO,)),
    Profile("pod-bounds", (POD_BOUNDS,)),
    Profile("pod-ratio", (POD_RATIO, CONTAINER_DEFAULTS)),
    Profile("all-limits", (CONTAINER_ALL, POD_MAX)),
    Profile("requests-quota", quota=REQUESTS_QUOTA, filler=True),
    Profile("limits-quota", quota=LIMITS_QUOTA),
    Profile("limits-quota-defaults", (CONTAINER_DEFAULTS,), LIMITS_QUOTA, filler=True),
    Profile("plain-quota", (CONTAINER_MIN_MAX,), PLAIN_QUOTA, filler=True),
    Profile("pods-quota", quota=PODS_QUOTA, filler=True),
    Profile("baseline", pod_security="baseline"),
    Profile("restricted", pod_security="restricted"),
    Profile("restricted-quota", (CONTAINER_DEFAULTS,), LIMITS_QUOTA | REQUESTS_QUOTA, "restricted"),
)

FILLER_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "filler"},
    "spec": {
        "containers": [
            {
                "name": "app",
                "image": "registry.example/app:1",
                "resources": {
                    "requests": {"cpu": "1", "memory": "2Gi"},
                    "limits": {"cpu": "2", "memory": "4Gi"},
                },
            }
        ]
    },
}


def create_namespace(kube: KubeClient, profile: Profile, labels: dict[str, str]) -> str:
    """A namespace configured as `profile`, ready once its quota is being enforced."""
    name = f"inv-{profile.name}-{uuid.uuid4().hex[:6]}"
    all_labels = dict(labels)
    if profile.pod_security:
        all_labels["pod-security.kubernetes.io/enforce"] = profile.pod_security
    kube.post("/api/v1/namespaces", {"metadata": {"name": name, "labels": all_labels}})
    base = f"/api/v1/namespaces/{name}"
    if profile.limits:
        kube.post(
            f"{base}/limitranges",
            {"metadata": {"name": "limits"}, "spec": {"limits": list(profile.limits)}},
        )
    if profile.quota:
        kube.post(
            f"{base}/resourcequotas",
            {"metadata": {"name": "quota"}, "spec": {"hard": profile.quota}},
        )
        # The quota admission refuses pods until the controller has filled status.hard.
        wait_for(
            lambda: kube.get(f"{base}/resourcequotas/quota").get("status", {}).get("hard"),
            what=f"quota status in {name}",
        )
    if profile.filler:
        kube.post(f"{base}/pods", FILLER_POD)
    return name
