"""Pure admission logic: what a runner pod needs, and the JSONPatch that gives it.

`plan_admission` decides from the review and settings alone; the server then
fetches what the plan asks for (recommendation, push token, history) and
`build_mutation` turns plan + fetched answers into patch operations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runner_sizer.history.keys import history_key
from runner_sizer.identity import (
    IdentityGap,
    JobIdentity,
    container_env,
    is_runner_pod,
    job_identity,
    job_timeout_seconds,
)
from runner_sizer.webhook.review import AdmissionRequest
from runner_sizer.webhook.settings import WebhookSettings
from runner_sizer.webhook.sizing import Recommendation, sized_resources

STATUS_ANNOTATION = "runner-sizer.io/status"
OPT_OUT_ANNOTATION = "runner-sizer.io/inject"
AFFINITY_WEIGHTS = (100, 50, 25, 12, 6, 3, 1)

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
SIDECAR_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}
RESTRICTED_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


class Reason(StrEnum):
    """Why a feature was not applied; a label value of the skipped-injections metric."""

    OPT_OUT = "opt_out"
    DISABLED = "disabled"
    NO_IDENTITY = "no_identity"
    UNVERIFIED_IDENTITY = "unverified_identity"
    NO_BUILD_CONTAINER = "no_build_container"
    NO_CACHE_VOLUME = "no_cache_volume"
    NO_HISTORY = "no_history"
    COLD_START = "cold_start"
    TIMEOUT = "timeout"
    RECEIVER_ERROR = "receiver_error"
    INVALID_ANSWER = "invalid_answer"
    BREAKER_OPEN = "breaker_open"


class Ignore(StrEnum):
    """Why a review is answered without any change."""

    NOT_POD_CREATE = "not_pod_create"
    NOT_RUNNER_POD = "not_runner_pod"
    OPT_OUT = "opt_out"
    ALREADY_INJECTED = "already_injected"


@dataclass(frozen=True)
class Plan:
    pod: dict[str, Any]
    identity: JobIdentity | None
    build_index: int | None
    build_env: Mapping[str, str]  # the build container's literal env (CI variables)
    want_sizing: bool
    want_sidecar: bool
    history_key: str | None
    skipped: Mapping[str, Reason]  # feature → reason decided without any I/O
    namespace: str = ""
    dry_run: bool = False  # API dry-run: the same patch, but nothing with side effects
    job_timeout_seconds: float | None = None  # from the runner's timeout annotation


@dataclass(frozen=True)
class Fetched:
    """What the server obtained for a plan; a None answer comes with its reason."""

    recommendation: Recommendation | None = None
    recommendation_raw: str = ""
    sizing_reason: Reason | None = None
    push_token: str | None = None
    token_reason: Reason | None = None
    history_nodes: tuple[str, ...] = ()


@dataclass
class Mutation:
    patch: list[dict[str, Any]] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # sizing, sidecar, affinity
    skipped: dict[str, Reason] = field(default_factory=dict)


def pointer(*tokens: str | int) -> str:
    """A JSON Pointer (RFC 6901): '~' → '~0', '/' → '~1'."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def plan_admission(request: AdmissionRequest, settings: WebhookSettings) -> Plan | Ignore:
    if request.operation != "CREATE" or request.resource != "pods" or not request.pod:
        return Ignore.NOT_POD_CREATE
    pod = request.pod
    metadata = pod.get("metadata") or {}
    if not is_runner_pod(metadata):
        return Ignore.NOT_RUNNER_POD
    annotations = metadata.get("annotations") or {}
    if str(annotations.get(OPT_OUT_ANNOTATION, "")).lower() == "false":
        return Ignore.OPT_OUT
    spec = pod.get("spec") or {}
    init_names = {c.get("name") for c in spec.get("initContainers") or []}
    if STATUS_ANNOTATION in annotations or settings.sidecar_name in init_names:
        return Ignore.ALREADY_INJECTED

    containers = spec.get("containers") or []
    build_index = next(
        (i for i, c in enumerate(containers) if c.get("name") == settings.build_container), None
    )
    build_env = container_env(containers[build_index]) if build_index is not None else {}
    found = job_identity(metadata, build_env)
    identity = found if isinstance(found, JobIdentity) else None
    identity_gap = Reason(found.value) if isinstance(found, IdentityGap) else Reason.NO_IDENTITY
    skipped: dict[str, Reason] = {}

    want_sizing = settings.sizing_enabled
    if not want_sizing:
        skipped["sizing"] = Reason.DISABLED
    elif build_index is None:
        want_sizing, skipped["sizing"] = False, Reason.NO_BUILD_CONTAINER
    elif identity is None:
        want_sizing, skipped["sizing"] = False, identity_gap

    want_sidecar = settings.sidecar_enabled
    if not want_sidecar:
        skipped["sidecar"] = Reason.DISABLED
    elif identity is None:
        want_sidecar, skipped["sidecar"] = False, identity_gap

    key, affinity_reason = _affinity_key(metadata, spec, settings)
    if affinity_reason is not None:
        skipped["affinity"] = affinity_reason
    return Plan(
        pod,
        identity,
        build_index,
        build_env,
        want_sizing,
        want_sidecar,
        key,
        skipped,
        namespace=request.namespace,
        dry_run=request.dry_run,
        job_timeout_seconds=job_timeout_seconds(metadata),
    )


def _affinity_key(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], settings: WebhookSettings
) -> tuple[str | None, Reason | None]:
    if not settings.enable_affinity:
        return None, Reason.DISABLED
    volumes = spec.get("volumes") or []
    if not any(str(v.get("name", "")).startswith(settings.cache_volume_prefix) for v in volumes):
        return None, Reason.NO_CACHE_VOLUME
    key = history_key(settings.history_key, metadata)
    return key, None if key is not None else Reason.NO_IDENTITY


def build_mutation(plan: Plan, fetched: Fetched, settings: WebhookSettings) -> Mutation:
    """The patch for a planned pod; in dry-run only the status annotation is written."""
    mutation = Mutation(skipped=dict(plan.skipped))
    spec = plan.pod.get("spec") or {}
    containers: list[dict[str, Any]] = spec.get("containers") or []
    resources_after = {c.get("name", ""): c.get("resources") or {} for c in containers}
    ops: list[dict[str, Any]] = []
    sizing_status, build_resources = _sizing(plan, fetched, settings, mutation)
    if build_resources is not None and plan.build_index is not None:
        resources_after[settings.build_container] = build_resources
        path = pointer("spec", "containers", plan.build_index, "resources")
        ops.append({"op": "add", "path": path, "value": build_resources})
    if plan.want_sidecar:
        if fetched.push_token is None:
            mutation.skipped["sidecar"] = fetched.token_reason or Reason.RECEIVER_ERROR
        else:
            sidecar = sidecar_container(plan, fetched, settings, resources_after)
            if spec.get("initContainers"):
                ops.append(
                    {"op": "add", "path": pointer("spec", "initContainers", "-"), "value": sidecar}
                )
            else:
                ops.append(
                    {"op": "add", "path": pointer("spec", "initContainers"), "value": [sidecar]}
                )
            ops.append(
                {"op": "add", "path": pointer("spec", "shareProcessNamespace"), "value": True}
            )
            mutation.applied.append("sidecar")
    nodes = fetched.history_nodes[: settings.affinity_max_nodes]
    if plan.history_key is not None:
        if nodes:
            ops.extend(affinity_ops(spec.get("affinity"), nodes))
            mutation.applied.append("affinity")
        else:
            mutation.skipped["affinity"] = Reason.NO_HISTORY

    status = {
        "sizing": sizing_status,
        "sidecar": "injected" if "sidecar" in mutation.applied else _skip(mutation, "sidecar"),
        "affinity": list(nodes) if "affinity" in mutation.applied else _skip(mutation, "affinity"),
        "dryRun": settings.dry_run,
    }
    if settings.dry_run:
        ops = []
    annotations = (plan.pod.get("metadata") or {}).get("annotations")
    value = json.dumps(status, separators=(",", ":"))
    if annotations:
        ops.append(
            {
                "op": "add",
                "path": pointer("metadata", "annotations", STATUS_ANNOTATION),
                "value": value,
            }
        )
    else:
        ops.append(
            {
                "op": "add",
                "path": pointer("metadata", "annotations"),
                "value": {STATUS_ANNOTATION: value},
            }
        )
    mutation.patch = ops
    return mutation


def _skip(mutation: Mutation, feature: str) -> str:
    return f"skipped:{mutation.skipped.get(feature, Reason.DISABLED)}"


def _sizing(
    plan: Plan, fetched: Fetched, settings: WebhookSettings, mutation: Mutation
) -> tuple[str, dict[str, Any] | None]:
    """The sizing status word and the build container's new resources, if any."""
    if not plan.want_sizing or plan.build_index is None:
        return _skip(mutation, "sizing"), None
    recommendation, status = fetched.recommendation, "applied"
    cold = fetched.sizing_reason is Reason.COLD_START
    if recommendation is None and cold and settings.default_requests:
        recommendation, status = Recommendation(requests=settings.default_requests), "default"
    if recommendation is None:
        mutation.skipped["sizing"] = fetched.sizing_reason or Reason.RECEIVER_ERROR
        return _skip(mutation, "sizing"), None
    current = plan.pod["spec"]["containers"][plan.build_index].get("resources") or {}
    mutation.applied.append("sizing")
    return status, sized_resources(current, recommendation, settings.bounds, settings.sizing_mode)


def affinity_ops(affinity: Any, nodes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Append preferred node terms (100 for the latest node, then halving); keep all others."""
    terms = [
        {
            "weight": weight,
            "preference": {
                "matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                ]
            },
        }
        for node, weight in zip(nodes, AFFINITY_WEIGHTS, strict=False)
    ]
    preferred_field = "preferredDuringSchedulingIgnoredDuringExecution"
    if not isinstance(affinity, dict):
        return [
            {
                "op": "add",
                "path": pointer("spec", "affinity"),
                "value": {"nodeAffinity": {preferred_field: terms}},
            }
        ]
    node_affinity = affinity.get("nodeAffinity")
    if not isinstance(node_affinity, dict):
        return [
            {
                "op": "add",
                "path": pointer("spec", "affinity", "nodeAffinity"),
                "value": {preferred_field: terms},
            }
        ]
    if not node_affinity.get(preferred_field):
        path = pointer("spec", "affinity", "nodeAffinity", preferred_field)
        return [{"op": "add", "path": path, "value": terms}]
    path = pointer("spec", "affinity", "nodeAffinity", preferred_field, "-")
    return [{"op": "add", "path": path, "value": term} for term in terms]


def _process_name(container: Mapping[str, Any]) -> str:
    command = container.get("command") or []
    if command:
        return str(command[0]).rsplit("/", 1)[-1]
    image = str(container.get("image", "")).rsplit("/", 1)[-1]
    return image.split("@", 1)[0].split(":", 1)[0]


def sidecar_container(
    plan: Plan, fetched: Fetched, settings: WebhookSettings, resources_after: Mapping[str, Any]
) -> dict[str, Any]:
    """The collector as a native sidecar (init container with restartPolicy Always)."""
    assert plan.identity is not None and fetched.push_token is not None
    spec = plan.pod.get("spec") or {}
    containers = spec.get("containers") or []
    build_env = plan.build_env
    process_map: dict[str, str] = {}
    for container in containers:
        process_map.setdefault(_process_name(container), container.get("name", ""))
    identity = plan.identity
    env: list[dict[str, Any]] = [
        {"name": "COLLECTOR_PUSH_TOKEN", "value": fetched.push_token},
        {"name": "SIZER_URL", "value": settings.sizer_url},
        {"name": "SIZER_ORG", "value": identity.org},
        {"name": "SIZER_REPO", "value": identity.repo},
        {"name": "SIZER_WORKFLOW", "value": identity.workflow},
        {"name": "SIZER_JOB", "value": identity.job},
        {"name": "SIZER_RUN_ID", "value": identity.run_id},
        {"name": "RUNNER_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "RUNNER_POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
    ]
    env += [
        {"name": name, "value": build_env[name]}
        for name in FORWARDED_CI_VARIABLES
        if name in build_env
    ]
    env += [
        {"name": "CGROUP_PROCESS_MAP", "value": json.dumps(process_map, separators=(",", ":"))},
        {"name": "CGROUP_LIMITS", "value": json.dumps(resources_after, separators=(",", ":"))},
        {"name": "APPLIED_SIZING", "value": fetched.recommendation_raw},
    ]
    volume_names = {v.get("name") for v in spec.get("volumes") or []}
    sidecar: dict[str, Any] = {
        "name": settings.sidecar_name,
        "image": settings.sidecar_image,
        "restartPolicy": "Always",
        "env": env,
        "resources": SIDECAR_RESOURCES,
        "securityContext": RESTRICTED_SECURITY_CONTEXT,
    }
    mounts = [
        {"name": name, "mountPath": path, "readOnly": True}
        for name, path in settings.sidecar_volume_mounts
        if name in volume_names
    ]
    if mounts:
        sidecar["volumeMounts"] = mounts
    return sidecar
