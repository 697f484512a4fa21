"""Pure admission logic: what a runner pod needs, and the JSONPatch that gives it.

`plan_admission` decides from the review and settings alone; the server then
fetches what the plan asks for (recommendation, push token, history) and
`build_mutation` turns plan + fetched answers into patch operations.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

from runner_sizer.history.keys import history_key
from runner_sizer.identity import (
    IdentityGap,
    JobIdentity,
    container_env,
    is_runner_pod,
    job_identity,
    job_timeout_seconds,
)
from runner_sizer.webhook.affinity import affinity_ops
from runner_sizer.webhook.constraints import NO_RULES, NamespaceRules, Rule
from runner_sizer.webhook.fitting import SIDECAR, Fit, build_resources, fit
from runner_sizer.webhook.patch import pointer
from runner_sizer.webhook.quantity import format_memory
from runner_sizer.webhook.review import AdmissionRequest
from runner_sizer.webhook.settings import WebhookSettings
from runner_sizer.webhook.sidecar import collector_env, sidecar_container, sidecar_resources
from runner_sizer.webhook.sizing import (
    Recommendation,
    SizingMode,
    explicit_resources,
    quantity_or_none,
    sized_resources,
)

STATUS_ANNOTATION = "runner-sizer.io/status"
OPT_OUT_ANNOTATION = "runner-sizer.io/inject"


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
    EXPLICIT_OVERWRITE = "explicit_overwrite"
    NAME_COLLISION = "name_collision"
    ENV_TOO_LARGE = "env_too_large"
    RULES_UNKNOWN = "rules_unknown"
    LIMIT_RANGE = Rule.LIMIT_RANGE.value
    QUOTA = Rule.QUOTA.value
    POD_RESOURCES = Rule.POD_RESOURCES.value
    OOM_BUMP_BLOCKED = "oom_bump_blocked"


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
    sizing_reason: Reason | None = None
    push_token: str | None = None
    token_reason: Reason | None = None
    history_nodes: tuple[str, ...] = ()
    rules: NamespaceRules | None = None  # None: the namespace's rules are not known yet


@dataclass
class Mutation:
    patch: list[dict[str, Any]] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # sizing, sidecar, affinity
    skipped: dict[str, Reason] = field(default_factory=dict)
    kept: dict[str, Reason] = field(default_factory=dict)  # resource left as the pod had it

    def reasons(self) -> Iterator[tuple[str, Reason]]:
        """(feature, reason) for everything not done, partial sizing included."""
        yield from self.skipped.items()
        for reason in self.kept.values():
            yield "sizing", reason


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
    elif any(c.get("name") == settings.sidecar_name for c in containers):
        want_sidecar, skipped["sidecar"] = False, Reason.NAME_COLLISION

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
    spec: dict[str, Any] = plan.pod.get("spec") or {}
    sizing_status, sized = _sizing(plan, fetched, settings, mutation)
    token = _token(plan, fetched, mutation)
    if fetched.rules is None and (token is not None or (sized and sized.resources)):
        sized, token, mutation.kept = None, None, {}
        for feature in ("sizing", "sidecar"):
            mutation.skipped.setdefault(feature, Reason.RULES_UNKNOWN)
        sizing_status = _skip(mutation, "sizing")
    rules = fetched.rules or NO_RULES
    stub = None if token is None else _sidecar_stub(settings, rules)
    chosen = fit(
        spec,
        build_index=plan.build_index,
        sized=sized.values if sized else {},
        sized_resources=frozenset(sized.resources) if sized else frozenset(),
        sidecar=stub,
        rules=rules,
    )
    for name, rule in chosen.blocked.items():
        if name == SIDECAR:
            mutation.skipped["sidecar"] = Reason(rule.value)
        else:
            mutation.kept[name] = Reason(rule.value)
    ops, resources_after, applied_sizing = _sizing_ops(plan, settings, sized, chosen, mutation)
    if sized is not None and not chosen.resources:
        sizing_status = _skip(mutation, "sizing")
    oom_status = _oom_bump(
        plan, fetched, settings, mutation, resources_after.get(settings.build_container) or {}
    )
    if chosen.sidecar and stub is not None and token is not None:
        ops += _sidecar_ops(
            plan,
            settings,
            mutation,
            token=token,
            stub=stub,
            resources_after=resources_after,
            applied_sizing=applied_sizing,
        )
    nodes = fetched.history_nodes[: settings.affinity_max_nodes]
    if plan.history_key is not None:
        if nodes:
            ops.extend(affinity_ops(spec.get("affinity"), nodes))
            mutation.applied.append("affinity")
        else:
            mutation.skipped["affinity"] = Reason.NO_HISTORY
    status: dict[str, Any] = {"sizing": sizing_status}
    if mutation.kept:
        status["sizingKept"] = dict(mutation.kept)
    status |= oom_status
    status |= {
        "sidecar": "injected" if "sidecar" in mutation.applied else _skip(mutation, "sidecar"),
        "affinity": list(nodes) if "affinity" in mutation.applied else _skip(mutation, "affinity"),
        "dryRun": settings.dry_run,
    }
    mutation.patch = [*([] if settings.dry_run else ops), _status_op(plan, status)]
    return mutation


def _sidecar_stub(settings: WebhookSettings, rules: NamespaceRules) -> dict[str, Any]:
    """What the namespace's rules see of the sidecar: its name, kind and size."""
    return {
        "name": settings.sidecar_name,
        "restartPolicy": "Always",
        "resources": sidecar_resources(rules.limits),
    }


def _sizing_ops(
    plan: Plan,
    settings: WebhookSettings,
    sized: _Sized | None,
    chosen: Fit,
    mutation: Mutation,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The sizing patch, every container's resources after it, and what sizing applied."""
    containers: list[dict[str, Any]] = (plan.pod.get("spec") or {}).get("containers") or []
    resources_after = {c.get("name", ""): c.get("resources") or {} for c in containers}
    if sized is None or plan.build_index is None:
        return [], resources_after, {}
    if not chosen.resources:
        # Every sized resource was held back: sizing as a whole was skipped, for that reason.
        mutation.skipped["sizing"] = next(iter(mutation.kept.values()), Reason.LIMIT_RANGE)
        mutation.kept = {}
        return [], resources_after, {}
    original = containers[plan.build_index].get("resources") or {}
    after = build_resources(original, sized.values, chosen.resources)
    resources_after[settings.build_container] = after
    mutation.applied.append("sizing")
    path = pointer("spec", "containers", plan.build_index, "resources")
    return (
        [{"op": "add", "path": path, "value": after}],
        resources_after,
        _applied(after, chosen.resources),
    )


@dataclass(frozen=True)
class _Sized:
    values: dict[str, Any]  # the build container's resources with every recommendation
    resources: set[str]  # cpu/memory the recommendation changes


def _sizing(
    plan: Plan, fetched: Fetched, settings: WebhookSettings, mutation: Mutation
) -> tuple[str, _Sized | None]:
    """The sizing status word and the build container's resources as sized."""
    if not plan.want_sizing or plan.build_index is None:
        return _skip(mutation, "sizing"), None
    recommendation, status = fetched.recommendation, "applied"
    cold = fetched.sizing_reason is Reason.COLD_START
    if recommendation is None and cold and settings.default_requests:
        recommendation, status = Recommendation(requests=settings.default_requests), "default"
    if recommendation is None:
        mutation.skipped["sizing"] = fetched.sizing_reason or Reason.RECEIVER_ERROR
        return _skip(mutation, "sizing"), None
    explicit = explicit_resources(plan.build_env) & recommendation.resources
    for resource in explicit:
        mutation.kept[resource] = Reason.EXPLICIT_OVERWRITE
    if explicit == recommendation.resources:
        mutation.skipped["sizing"], mutation.kept = Reason.EXPLICIT_OVERWRITE, {}
        return _skip(mutation, "sizing"), None
    current = plan.pod["spec"]["containers"][plan.build_index].get("resources") or {}
    sized = sized_resources(
        current, recommendation.without(explicit), settings.bounds, settings.sizing_mode
    )
    return status, _Sized(sized, recommendation.resources - explicit)


def _oom_bump(
    plan: Plan,
    fetched: Fetched,
    settings: WebhookSettings,
    mutation: Mutation,
    build: Mapping[str, Any],
) -> dict[str, Any]:
    """Status entries for an answer that carries an OOM floor: did the limit reach it?

    A build container without a memory limit is not held under the floor. When the
    limit stays below it, what held it back: the reason memory was kept or sizing
    skipped, else RequestsOnly (the limit is the operator's), else the answer's own
    limit, else --max-memory.
    """
    recommendation = fetched.recommendation
    if recommendation is None or recommendation.memory_floor is None or not plan.want_sizing:
        return {}
    floor = recommendation.memory_floor
    limit = quantity_or_none((build.get("limits") or {}).get("memory"))
    if limit is None or limit >= floor:
        return {"oomBump": "applied"}
    mutation.skipped["oom_bump"] = Reason.OOM_BUMP_BLOCKED
    held = mutation.kept.get("memory")
    if held is None and "sizing" not in mutation.applied:
        held = mutation.skipped.get("sizing")
    if held is not None:
        cause = held.value
    elif settings.sizing_mode is SizingMode.REQUESTS_ONLY:
        cause = "requests_only"
    elif recommendation.limits.get("memory", Decimal(0)) < floor:
        cause = "answer"  # the answer's own memory limit, or none, is below its floor
    else:
        cause = "max_memory"
    details = {"floor": format_memory(floor), "limit": format_memory(limit), "by": cause}
    return {"oomBump": _skip(mutation, "oom_bump"), "oomBumpBlocked": details}


def _token(plan: Plan, fetched: Fetched, mutation: Mutation) -> str | None:
    if not plan.want_sidecar:
        return None
    if fetched.push_token is None:
        mutation.skipped["sidecar"] = fetched.token_reason or Reason.RECEIVER_ERROR
    return fetched.push_token


def _applied(resources: Mapping[str, Any], sized: frozenset[str]) -> dict[str, Any]:
    """What sizing set on the build container: the values the collector reports against."""
    applied: dict[str, Any] = {}
    for section in ("requests", "limits"):
        values = {r: v for r, v in (resources.get(section) or {}).items() if r in sized}
        if values:
            applied[section] = values
    return applied


def _sidecar_ops(
    plan: Plan,
    settings: WebhookSettings,
    mutation: Mutation,
    *,
    token: str,
    stub: Mapping[str, Any],
    resources_after: Mapping[str, Any],
    applied_sizing: Mapping[str, Any],
) -> list[dict[str, Any]]:
    assert plan.identity is not None  # a token is only fetched for a known identity
    spec = plan.pod.get("spec") or {}
    env = collector_env(
        identity=plan.identity,
        token=token,
        sizer_url=settings.sizer_url,
        build_env=plan.build_env,
        containers=spec.get("containers") or [],
        resources_after=resources_after,
        applied_sizing=applied_sizing,
    )
    if env is None:
        mutation.skipped["sidecar"] = Reason.ENV_TOO_LARGE
        return []
    mutation.applied.append("sidecar")
    sidecar = sidecar_container(
        name=settings.sidecar_name,
        image=settings.sidecar_image,
        env=env,
        resources=stub["resources"],
        volume_mounts=settings.sidecar_volume_mounts,
        pod_volumes=[str(v.get("name")) for v in spec.get("volumes") or []],
    )
    value: Any = sidecar
    path = pointer("spec", "initContainers", "-")
    if not spec.get("initContainers"):
        path, value = pointer("spec", "initContainers"), [sidecar]
    add = {"op": "add", "path": path, "value": value}
    share = {"op": "add", "path": pointer("spec", "shareProcessNamespace"), "value": True}
    return [add, share]


def _status_op(plan: Plan, status: Mapping[str, Any]) -> dict[str, Any]:
    value = orjson.dumps(status).decode()
    if (plan.pod.get("metadata") or {}).get("annotations"):
        path = pointer("metadata", "annotations", STATUS_ANNOTATION)
        return {"op": "add", "path": path, "value": value}
    return {
        "op": "add",
        "path": pointer("metadata", "annotations"),
        "value": {STATUS_ANNOTATION: value},
    }


def _skip(mutation: Mutation, feature: str) -> str:
    return f"skipped:{mutation.skipped.get(feature, Reason.DISABLED)}"
