"""What the apiserver will check after the webhook: a pure model of it.

Order inside the apiserver (verified on the local control plane by the property
test): LimitRanger fills defaults before mutating webhooks; when a webhook changes
the pod, the built-in mutating plugins run again, so LimitRange defaults also land
on what the webhook added; then LimitRanger validates, and ResourceQuota runs last.
The webhook therefore predicts LimitRanger's defaults on its own result, then
checks LimitRange min/max/ratio (per container and per pod), the quota's remaining
headroom and the quota's "must specify" rule, and pod-level `spec.resources`.

A problem is a short stable string: the same problem found on the original pod and
on the mutated one cancels out, so the webhook only steps back from what it adds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from runner_sizer.webhook.quantity import QuantityError, parse_quantity

ResourceList = dict[str, Decimal]
COMPUTE = ("cpu", "memory")
# Resources the quota's "every container must specify" rule looks at.
_QUOTA_REQUIRED = {
    "cpu": ("requests", "cpu"),
    "requests.cpu": ("requests", "cpu"),
    "memory": ("requests", "memory"),
    "requests.memory": ("requests", "memory"),
    "limits.cpu": ("limits", "cpu"),
    "limits.memory": ("limits", "memory"),
}


class Rule(StrEnum):
    """Which kind of rule a problem breaks; also a skip reason."""

    LIMIT_RANGE = "limit_range"
    QUOTA = "quota"
    POD_RESOURCES = "pod_resources"


@dataclass(frozen=True)
class Problem:
    rule: Rule
    detail: str


@dataclass(frozen=True)
class LimitItem:
    """One `spec.limits[]` entry of a LimitRange, as stored (defaults already filled)."""

    kind: str
    minimum: ResourceList = field(default_factory=dict)
    maximum: ResourceList = field(default_factory=dict)
    default: ResourceList = field(default_factory=dict)
    default_request: ResourceList = field(default_factory=dict)
    max_ratio: ResourceList = field(default_factory=dict)


@dataclass(frozen=True)
class Quota:
    name: str
    hard: ResourceList
    used: ResourceList


@dataclass(frozen=True)
class NamespaceRules:
    limits: tuple[LimitItem, ...] = ()
    quotas: tuple[Quota, ...] = ()


NO_RULES = NamespaceRules()


def resource_list(raw: Any) -> ResourceList:
    """`{"cpu": "500m"}` → `{"cpu": Decimal("0.5")}`; unreadable entries are left out."""
    parsed: ResourceList = {}
    if isinstance(raw, Mapping):
        for name, value in raw.items():
            try:
                parsed[str(name)] = parse_quantity(value)
            except (QuantityError, TypeError, AttributeError):
                continue
    return parsed


def limit_items(limit_range: Mapping[str, Any]) -> tuple[LimitItem, ...]:
    items = (limit_range.get("spec") or {}).get("limits") or []
    return tuple(
        LimitItem(
            kind=str(item.get("type", "")),
            minimum=resource_list(item.get("min")),
            maximum=resource_list(item.get("max")),
            default=resource_list(item.get("default")),
            default_request=resource_list(item.get("defaultRequest")),
            max_ratio=resource_list(item.get("maxLimitRequestRatio")),
        )
        for item in items
        if isinstance(item, Mapping)
    )


def quota_of(resource_quota: Mapping[str, Any]) -> Quota | None:
    """The quota as enforced: `status.hard` (None until the controller has filled it)."""
    status = resource_quota.get("status") or {}
    hard = resource_list(status.get("hard"))
    if not hard:
        return None
    name = str((resource_quota.get("metadata") or {}).get("name", ""))
    return Quota(name, hard, resource_list(status.get("used")))


# --- the pod's containers and their resources ------------------------------------


@dataclass(frozen=True)
class Box:
    """One container's resources, parsed."""

    name: str
    requests: ResourceList
    limits: ResourceList
    init: bool = False
    sidecar: bool = False  # an init container with restartPolicy Always


def box(container: Mapping[str, Any], *, init: bool) -> Box:
    resources = container.get("resources") or {}
    return Box(
        name=str(container.get("name", "")),
        requests=resource_list(resources.get("requests")),
        limits=resource_list(resources.get("limits")),
        init=init,
        sidecar=init and container.get("restartPolicy") == "Always",
    )


def boxes(spec: Mapping[str, Any]) -> list[Box]:
    """Containers first, then init containers, in the pod's order."""
    return [
        box(container, init=init)
        for init, key in ((False, "containers"), (True, "initContainers"))
        for container in spec.get(key) or []
    ]


def with_limit_defaults(items: Iterable[LimitItem], box: Box) -> Box:
    """LimitRanger's defaulting: missing limits from `default`, requests from `defaultRequest`."""
    limits, requests = dict(box.limits), dict(box.requests)
    for item in items:
        if item.kind != "Container":
            continue
        for name, value in item.default.items():
            limits.setdefault(name, value)
        for name, value in item.default_request.items():
            requests.setdefault(name, value)
    return Box(box.name, requests, limits, box.init, box.sidecar)


def aggregate(pod_boxes: Iterable[Box], section: str) -> ResourceList:
    """Pod requests or limits as Kubernetes sums them: containers and sidecars added,
    each plain init container counted with the sidecars started before it, the max taken."""
    total: ResourceList = {}
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for box in pod_boxes:
        values: ResourceList = getattr(box, section)
        if not box.init:
            _add(total, values)
        elif box.sidecar:
            _add(total, values)
            _add(sidecars, values)
            _max(init_peak, sidecars)
        else:
            running = dict(values)
            _add(running, sidecars)
            _max(init_peak, running)
    _max(total, init_peak)
    return total


def _add(into: ResourceList, values: Mapping[str, Decimal]) -> None:
    for name, value in values.items():
        into[name] = into.get(name, Decimal(0)) + value


def _max(into: ResourceList, values: Mapping[str, Decimal]) -> None:
    for name, value in values.items():
        into[name] = max(into.get(name, value), value)


# --- the checks ---------------------------------------------------------------------


def problems(spec: Mapping[str, Any], rules: NamespaceRules) -> set[Problem]:
    """Every rule the pod (after LimitRanger's defaults) would break."""
    return problems_of(boxes(spec), spec.get("resources") or {}, rules)


def problems_of(
    parsed: Iterable[Box], pod_resources: Mapping[str, Any], rules: NamespaceRules
) -> set[Problem]:
    """`problems` for containers already parsed (the webhook varies one or two of them)."""
    pod_boxes = [with_limit_defaults(rules.limits, b) for b in parsed]
    found: set[Problem] = set()
    found.update(_container_problems(pod_boxes))
    found.update(_limit_range_problems(pod_boxes, rules.limits))
    found.update(_pod_level_problems(pod_boxes, pod_resources))
    found.update(_quota_problems(pod_boxes, pod_resources, rules.quotas))
    return found


def _container_problems(pod_boxes: Iterable[Box]) -> Iterator[Problem]:
    for box in pod_boxes:
        for name, request in box.requests.items():
            limit = box.limits.get(name)
            if limit is not None and request > limit:
                yield Problem(Rule.LIMIT_RANGE, f"{box.name}: {name} request above limit")


def _bound_problems(
    scope: str, item: LimitItem, requests: ResourceList, limits: ResourceList
) -> Iterator[Problem]:
    """LimitRanger's min, max and maxLimitRequestRatio checks, at milli precision."""
    for name, low in item.minimum.items():
        request, limit = requests.get(name), limits.get(name)
        if request is None or _milli(request) < _milli(low):
            yield Problem(Rule.LIMIT_RANGE, f"{scope}: {name} below min")
        if limit is not None and _milli(limit) < _milli(low):
            yield Problem(Rule.LIMIT_RANGE, f"{scope}: {name} limit below min")
    for name, high in item.maximum.items():
        request, limit = requests.get(name), limits.get(name)
        if limit is None or _milli(limit) > _milli(high):
            yield Problem(Rule.LIMIT_RANGE, f"{scope}: {name} above max")
        if request is not None and _milli(request) > _milli(high):
            yield Problem(Rule.LIMIT_RANGE, f"{scope}: {name} request above max")
    for name, ratio in item.max_ratio.items():
        request, limit = requests.get(name), limits.get(name)
        if not request or not limit or _milli(limit) * 1000 > _milli(ratio) * _milli(request):
            yield Problem(Rule.LIMIT_RANGE, f"{scope}: {name} limit/request ratio")


def _milli(value: Decimal) -> int:
    """Kubernetes compares LimitRange values as MilliValue(): rounded up to 1/1000."""
    return math.ceil(value * 1000)


def _limit_range_problems(pod_boxes: list[Box], items: Iterable[LimitItem]) -> Iterator[Problem]:
    for item in items:
        if item.kind == "Container":
            for box in pod_boxes:
                yield from _bound_problems(box.name, item, box.requests, box.limits)
        elif item.kind == "Pod":
            requests, limits = aggregate(pod_boxes, "requests"), aggregate(pod_boxes, "limits")
            yield from _bound_problems("pod", item, requests, limits)


def _pod_level_problems(
    pod_boxes: list[Box], pod_resources: Mapping[str, Any]
) -> Iterator[Problem]:
    """Pod-level `spec.resources`: containers' requests fit in it, each limit under it."""
    pod_requests = resource_list(pod_resources.get("requests"))
    pod_limits = resource_list(pod_resources.get("limits"))
    summed = aggregate(pod_boxes, "requests")
    for name, allowed in pod_requests.items():
        if summed.get(name, Decimal(0)) > allowed:
            yield Problem(Rule.POD_RESOURCES, f"pod: {name} requests above pod-level request")
    for name, allowed in pod_limits.items():
        for box in pod_boxes:
            if box.limits.get(name, Decimal(0)) > allowed:
                yield Problem(Rule.POD_RESOURCES, f"{box.name}: {name} limit above pod-level")


def pod_usage(pod_boxes: list[Box], pod_resources: Mapping[str, Any]) -> ResourceList:
    """What the pod charges to a quota (pod-level values win where they are set)."""
    requests = aggregate(pod_boxes, "requests") | resource_list(pod_resources.get("requests"))
    limits = aggregate(pod_boxes, "limits") | resource_list(pod_resources.get("limits"))
    usage: ResourceList = {"pods": Decimal(1), "count/pods": Decimal(1)}
    for name, value in requests.items():
        usage[name] = value
        usage[f"requests.{name}"] = value
    for name, value in limits.items():
        usage[f"limits.{name}"] = value
    return usage


def _quota_problems(
    pod_boxes: list[Box], pod_resources: Mapping[str, Any], quotas: Iterable[Quota]
) -> Iterator[Problem]:
    usage = pod_usage(pod_boxes, pod_resources)
    for quota in quotas:
        for tracked, (section, name) in _QUOTA_REQUIRED.items():
            if tracked not in quota.hard:
                continue
            for box in pod_boxes:
                if name not in getattr(box, section):
                    yield Problem(Rule.QUOTA, f"{quota.name}: {box.name} must specify {tracked}")
        for name, hard in quota.hard.items():
            if name in usage and quota.used.get(name, Decimal(0)) + usage[name] > hard:
                yield Problem(Rule.QUOTA, f"{quota.name}: {name} exceeded")
