"""Step back rather than break the pod: the most the namespace's rules let through.

Candidates go from everything (each sized resource and the sidecar) down to
nothing; the first that adds no problem the original pod did not already have
wins. What was left out is reported with the rule that stood in the way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner_sizer.webhook.constraints import (
    Box,
    NamespaceRules,
    Problem,
    Rule,
    box,
    boxes,
    problems_of,
)

SIDECAR = "sidecar"
# Memory before cpu: memory is what kills a build when it is too small.
_RESOURCE_ORDER = ("memory", "cpu")


@dataclass(frozen=True)
class Fit:
    resources: frozenset[str]  # sized resources applied
    sidecar: bool
    blocked: Mapping[str, Rule] = field(default_factory=dict)  # resource or "sidecar" → rule


def build_resources(
    original: Mapping[str, Any], sized: Mapping[str, Any], keep: frozenset[str]
) -> dict[str, Any]:
    """The original resources with the sized values of `keep` only."""
    result = {k: dict(v) if isinstance(v, Mapping) else v for k, v in original.items()}
    for section in ("requests", "limits"):
        for name in keep:
            value = (sized.get(section) or {}).get(name)
            if value is not None:
                result.setdefault(section, {})[name] = value
    return result


def _candidates(resources: frozenset[str], sidecar: bool) -> Iterator[tuple[frozenset[str], bool]]:
    """Every non-empty combination, the most complete first; nothing at all comes last."""
    ordered = [r for r in _RESOURCE_ORDER if r in resources]
    subsets = [frozenset(ordered)] if ordered else []
    subsets += [frozenset({r}) for r in ordered if len(ordered) > 1]
    for subset in subsets:
        if sidecar:
            yield subset, True
        yield subset, False
    if sidecar:
        yield frozenset(), True


def _candidate_boxes(
    parsed: list[Box],
    build_index: int | None,
    build: Mapping[str, Any],
    sidecar: Mapping[str, Any] | None,
) -> list[Box]:
    """The pod's parsed containers with the build container resized and the sidecar added."""
    candidate = list(parsed)
    if build_index is not None:
        candidate[build_index] = box(
            {"name": parsed[build_index].name, "resources": build}, init=False
        )
    if sidecar is not None:
        candidate.append(box(sidecar, init=True))
    return candidate


def fit(
    spec: Mapping[str, Any],
    *,
    build_index: int | None,
    sized: Mapping[str, Any],
    sized_resources: frozenset[str],
    sidecar: Mapping[str, Any] | None,
    rules: NamespaceRules,
) -> Fit:
    """The largest subset of the mutation that breaks no rule the original kept."""
    original = (
        (spec.get("containers") or [])[build_index].get("resources") or {}
        if build_index is not None
        else {}
    )
    pod_resources = spec.get("resources") or {}
    if not (sized_resources or sidecar) or not (rules.limits or rules.quotas or pod_resources):
        # Nothing to add, or nothing but requests ≤ limits to keep, which sizing and the
        # sidecar already do.
        return Fit(sized_resources, sidecar is not None)
    parsed = boxes(spec)
    known = problems_of(parsed, pod_resources, rules)
    first_new: set[Problem] = set()
    for keep, with_sidecar in _candidates(sized_resources, sidecar is not None):
        candidate = _candidate_boxes(
            parsed,
            build_index,
            build_resources(original, sized, keep),
            sidecar if with_sidecar else None,
        )
        new = problems_of(candidate, pod_resources, rules) - known
        if new:
            first_new = first_new or new
            continue
        blocked = dict.fromkeys(sized_resources - keep, _rule(first_new))
        if sidecar is not None and not with_sidecar:
            blocked[SIDECAR] = _rule(first_new)
        return Fit(keep, with_sidecar, blocked)
    blocked = dict.fromkeys(sized_resources, _rule(first_new))
    if sidecar is not None:
        blocked[SIDECAR] = _rule(first_new)
    return Fit(frozenset(), False, blocked)


def _rule(found: set[Problem]) -> Rule:
    return min((p.rule for p in found), default=Rule.LIMIT_RANGE)
