"""Sizing math: a receiver recommendation + bounds + mode → container resources."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from runner_sizer.webhook.quantity import FORMATTERS, QuantityError, parse_quantity, round_up

RESOURCES = ("cpu", "memory")
# Past these no node exists: a larger bound or recommendation is a mistake, not a size.
PLAUSIBLE_MAXIMUM = {"cpu": Decimal(1024), "memory": Decimal(2) ** 50}  # 1024 cores, 1 PiB
# Below these no build runs: a smaller recommendation is a mistake too.
PLAUSIBLE_MINIMUM = {"cpu": Decimal("0.001"), "memory": Decimal(2) ** 22}  # 1m, 4 MiB
# Variables with which a job sets its own build resources (see the runner's overwrites.go).
EXPLICIT_VARIABLES = {
    "cpu": ("KUBERNETES_CPU_REQUEST", "KUBERNETES_CPU_LIMIT"),
    "memory": ("KUBERNETES_MEMORY_REQUEST", "KUBERNETES_MEMORY_LIMIT"),
}


class SizingMode(StrEnum):
    REQUESTS_ONLY = "RequestsOnly"
    REQUESTS_AND_LIMITS = "RequestsAndLimits"


@dataclass(frozen=True)
class Recommendation:
    requests: Mapping[str, Decimal]
    limits: Mapping[str, Decimal] = field(default_factory=dict)
    # The memory an OOM kill of the job holds it at (the answer's optional `oom` field).
    memory_floor: Decimal | None = None

    def without(self, resources: Collection[str]) -> Recommendation:
        return Recommendation(
            {r: v for r, v in self.requests.items() if r not in resources},
            {r: v for r, v in self.limits.items() if r not in resources},
            self.memory_floor,
        )

    @property
    def resources(self) -> set[str]:
        return set(self.requests) | set(self.limits)


@dataclass(frozen=True)
class Bounds:
    minimum: Mapping[str, Decimal] = field(default_factory=dict)
    maximum: Mapping[str, Decimal] = field(default_factory=dict)

    def clamp(self, resource: str, value: Decimal) -> Decimal:
        low, high = self.minimum.get(resource), self.maximum.get(resource)
        if low is not None:
            value = max(value, low)
        if high is not None:
            value = min(value, high)
        return value


def _plausible(resource: str, value: Any) -> Decimal | None:
    try:
        parsed = parse_quantity(value)
    except QuantityError:
        return None
    if PLAUSIBLE_MINIMUM[resource] <= parsed <= PLAUSIBLE_MAXIMUM[resource]:
        return parsed
    return None


def _quantities(section: Any) -> dict[str, Decimal]:
    if not isinstance(section, dict):
        return {}
    parsed = {r: _plausible(r, section.get(r)) for r in RESOURCES}
    return {r: v for r, v in parsed.items() if v is not None}


def parse_recommendation(body: Any) -> Recommendation | None:
    """The receiver's 200 body; unknown fields ignored, implausible values dropped.

    A value no machine could hold (`1e20`), a negative, NaN, a wrong type or a
    unit-less typo is not a size: it is left out, and a body with nothing usable
    is None, as if the receiver had no recommendation. An unusable `oom` field is
    left out alone.
    """
    if not isinstance(body, dict):
        return None
    requests, limits = _quantities(body.get("requests")), _quantities(body.get("limits"))
    if not requests and not limits:
        return None
    oom = body.get("oom")
    floor = _plausible("memory", oom.get("memory_floor")) if isinstance(oom, dict) else None
    return Recommendation(requests, limits, floor)


def explicit_resources(build_env: Mapping[str, str]) -> set[str]:
    """Resources the job set itself through KUBERNETES_* variables."""
    return {
        resource
        for resource, variables in EXPLICIT_VARIABLES.items()
        if any(build_env.get(v, "").strip() for v in variables)
    }


def sized_resources(
    current: Mapping[str, Any],
    recommendation: Recommendation,
    bounds: Bounds,
    mode: SizingMode,
) -> dict[str, Any]:
    """The container's new `resources`: requests never exceed limits.

    Values are rounded up to whole millicores and MiB, then capped again, so a
    rounding never lifts a value over its limit or bound. RequestsOnly leaves the
    limits the operator set alone and caps requests at them; RequestsAndLimits sets
    both and raises a limit that would sit below its request. Resources other than
    cpu/memory are kept as they are.
    """
    requests = dict(current.get("requests") or {})
    limits = dict(current.get("limits") or {})
    for resource in RESOURCES:
        old_request = quantity_or_none(requests.get(resource))
        old_limit = quantity_or_none(limits.get(resource))
        request, limit = old_request, old_limit
        if resource in recommendation.requests:
            request = _bounded(resource, recommendation.requests[resource], bounds)
        if mode is SizingMode.REQUESTS_AND_LIMITS and resource in recommendation.limits:
            limit = _bounded(resource, recommendation.limits[resource], bounds)
        if request is not None and limit is not None and request > limit:
            if mode is SizingMode.REQUESTS_AND_LIMITS:
                limit = request
            else:
                request = limit
        fmt = FORMATTERS[resource]
        if request is not None and request != old_request:
            requests[resource] = fmt(request)
        if limit is not None and limit != old_limit:
            limits[resource] = fmt(limit)
    resources = {k: v for k, v in current.items() if k not in ("requests", "limits")}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _bounded(resource: str, value: Decimal, bounds: Bounds) -> Decimal:
    """Rounded up to a readable step, then clamped: the bound wins over the rounding."""
    return bounds.clamp(resource, round_up(resource, bounds.clamp(resource, value)))


def quantity_or_none(value: Any) -> Decimal | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None
