"""The metrics collector, injected as a native sidecar (init container, restartPolicy Always)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import orjson

from runner_sizer.identity import JobIdentity
from runner_sizer.webhook.constraints import LimitItem
from runner_sizer.webhook.quantity import FORMATTERS

# CI variables the collector may see: identifiers only, never credentials.
FORWARDED_CI_VARIABLES = (
    "GITLAB_CI",
    "CI_SERVER_URL",
    "CI_PROJECT_ID",
    "CI_PROJECT_NAME",
    "CI_PROJECT_PATH",
    "CI_PROJECT_NAMESPACE",
    "CI_PROJECT_ROOT_NAMESPACE",
    "CI_PIPELINE_ID",
    "CI_PIPELINE_SOURCE",
    "CI_JOB_ID",
    "CI_JOB_NAME",
    "CI_JOB_STAGE",
    "CI_COMMIT_REF_NAME",
    "CI_COMMIT_SHA",
    "CI_RUNNER_ID",
    "CI_CONCURRENT_ID",
)
# Requests equal to limits: every quota that tracks limits sees them, and any
# maxLimitRequestRatio holds. Fitted into a namespace's LimitRange min/max.
SIDECAR_SIZE = {"cpu": Decimal("0.025"), "memory": Decimal(64 * 2**20)}
RESTRICTED_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Limits that keep the container startable: execve fails (E2BIG) past 128 KiB for
# one string, and the environment shares its budget with the command line.
ENV_VALUE_LIMIT = 32 * 1024
ENV_TOTAL_LIMIT = 64 * 1024
FORWARDED_VALUE_LIMIT = 1024  # an identifier longer than this is not forwarded


def sidecar_resources(limits: Iterable[LimitItem]) -> dict[str, dict[str, str]]:
    """The collector's size, moved inside every Container min/max of the namespace."""
    size = dict(SIDECAR_SIZE)
    for item in limits:
        if item.kind != "Container":
            continue
        for name, value in size.items():
            raised = max(value, item.minimum.get(name, value))
            size[name] = min(raised, item.maximum.get(name, raised))
    values = {name: FORMATTERS[name](value) for name, value in size.items()}
    return {"requests": dict(values), "limits": dict(values)}


def _process_name(container: Mapping[str, Any]) -> str:
    command = container.get("command") or []
    if command:
        return str(command[0]).rsplit("/", 1)[-1]
    image = str(container.get("image", "")).rsplit("/", 1)[-1]
    return image.split("@", 1)[0].split(":", 1)[0]


def collector_env(
    *,
    identity: JobIdentity,
    token: str,
    sizer_url: str,
    build_env: Mapping[str, str],
    containers: Iterable[Mapping[str, Any]],
    resources_after: Mapping[str, Any],
    applied_sizing: Mapping[str, Any],
) -> list[dict[str, Any]] | None:
    """The collector's environment, or None when it would not fit in a startable pod."""
    process_map: dict[str, str] = {}
    for container in containers:
        process_map.setdefault(_process_name(container), str(container.get("name", "")))
    env: list[dict[str, Any]] = [
        {"name": "COLLECTOR_PUSH_TOKEN", "value": token},
        {"name": "SIZER_URL", "value": sizer_url},
        {"name": "SIZER_ORG", "value": identity.org},
        {"name": "SIZER_REPO", "value": identity.repo},
        {"name": "SIZER_WORKFLOW", "value": identity.workflow},
        {"name": "SIZER_JOB", "value": identity.job},
        {"name": "SIZER_RUN_ID", "value": identity.run_id},
        {"name": "SIZER_PROJECT_ID", "value": identity.project_id},
        {"name": "RUNNER_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "RUNNER_POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
    ]
    env += [
        {"name": name, "value": build_env[name]}
        for name in FORWARDED_CI_VARIABLES
        if len(build_env.get(name, "").encode()) in range(1, FORWARDED_VALUE_LIMIT + 1)
    ]
    env += [
        {"name": "CGROUP_PROCESS_MAP", "value": _compact(process_map)},
        {"name": "CGROUP_LIMITS", "value": _compact(resources_after)},
        {"name": "APPLIED_SIZING", "value": _compact(applied_sizing)},
    ]
    sizes = [len(str(e.get("value", "")).encode()) for e in env]
    if max(sizes) > ENV_VALUE_LIMIT or sum(sizes) > ENV_TOTAL_LIMIT:
        return None
    return env


def _compact(value: Any) -> str:
    return orjson.dumps(value).decode()


def sidecar_container(
    *,
    name: str,
    image: str,
    env: list[dict[str, Any]],
    resources: Mapping[str, Any],
    volume_mounts: Iterable[tuple[str, str]],
    pod_volumes: Iterable[str],
) -> dict[str, Any]:
    sidecar: dict[str, Any] = {
        "name": name,
        "image": image,
        "restartPolicy": "Always",
        "env": env,
        "resources": dict(resources),
        "securityContext": RESTRICTED_SECURITY_CONTEXT,
    }
    present = set(pod_volumes)
    mounts = [
        {"name": volume, "mountPath": path, "readOnly": True}
        for volume, path in volume_mounts
        if volume in present
    ]
    if mounts:
        sidecar["volumeMounts"] = mounts
    return sidecar
