"""Preferred node affinity toward the nodes where the same key ran before."""

from __future__ import annotations

from typing import Any

from runner_sizer.webhook.patch import pointer

AFFINITY_WEIGHTS = (100, 50, 25, 12, 6, 3, 1)
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


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
    if not isinstance(affinity, dict):
        value = {"nodeAffinity": {_PREFERRED: terms}}
        return [{"op": "add", "path": pointer("spec", "affinity"), "value": value}]
    node_affinity = affinity.get("nodeAffinity")
    if not isinstance(node_affinity, dict):
        path = pointer("spec", "affinity", "nodeAffinity")
        return [{"op": "add", "path": path, "value": {_PREFERRED: terms}}]
    if not node_affinity.get(_PREFERRED):
        path = pointer("spec", "affinity", "nodeAffinity", _PREFERRED)
        return [{"op": "add", "path": path, "value": terms}]
    path = pointer("spec", "affinity", "nodeAffinity", _PREFERRED, "-")
    return [{"op": "add", "path": path, "value": term} for term in terms]
