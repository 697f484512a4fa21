"""Sizing math: a receiver recommendation + bounds + mode → container resources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from runner_sizer.webhook.quantity import FORMATTERS, QuantityError, parse_quantity

RESOURCES = ("cpu", "memory")
# Past these no node exists: a larger bound or recommendation is a mistake, not a size.
PLAUSIBLE_MAXIMUM = {"cpu": Decimal(1024), "memory": Decimal(2) ** 50}  # 1024 cores, 1 PiB


class SizingMode(StrEnum):
    REQUESTS_ONLY = "RequestsOnly"
    REQUESTS_AND_LIMITS = "RequestsAndLimits"


@dataclass(frozen=True)
class Recommendation:
    requests: Mapping[str, Decimal]
    limits: Mapping[str, Decimal] = field(default_factory=dict)


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


def _quantities(section: Any) -> dict[str, Decimal]:
    if not isinstance(section, dict):
        return {}
    parsed: dict[str, Decimal] = {}
    for resource in RESOURCES:
        try:
            value = parse_quantity(section[resource])
        except (KeyError, QuantityError, TypeError):
            continue
        if value > 0:
            parsed[resource] = value
    return parsed


def parse_recommendation(body: Any) -> Recommendation | None:
    """The receiver's 200 body; unknown fields ignored, unusable → None."""
    if not isinstance(body, dict):
        return None
    requests, limits = _quantities(body.get("requests")), _quantities(body.get("limits"))
    if not requests and not limits:
        return None
    return Recommendation(requests, limits)


def sized_resources(
    current: Mapping[str, Any],
    recommendation: Recommendation,
    bounds: Bounds,
    mode: SizingMode,
) -> dict[str, Any]:
    """The container's new `resources`: requests never exceed limits.

    RequestsOnly leaves limits the operator set alone and caps requests at them;
    RequestsAndLimits sets both and raises a limit that would sit below its request.
    Resources other than cpu/memory are kept as they are.
    """
    requests = dict(current.get("requests") or {})
    limits = dict(current.get("limits") or {})
    for resource in RESOURCES:
        old_request, old_limit = _existing(requests.get(resource)), _existing(limits.get(resource))
        request, limit = old_request, old_limit
        if resource in recommendation.requests:
            request = bounds.clamp(resource, recommendation.requests[resource])
        if mode is SizingMode.REQUESTS_AND_LIMITS and resource in recommendation.limits:
            limit = bounds.clamp(resource, recommendation.limits[resource])
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


def _existing(value: Any) -> Decimal | None:
    try:
        return parse_quantity(value)
    except (QuantityError, TypeError, AttributeError):
        return None
