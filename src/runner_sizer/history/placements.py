"""Where a key's pods ran, most recent first, as stored in ConfigMap values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from runner_sizer.history.keys import from_configmap_key


@dataclass(frozen=True)
class Placement:
    node: str
    at: str  # RFC 3339, UTC


def parse_placements(value: str) -> list[Placement]:
    """A stored value; anything malformed reads as no history."""
    try:
        entries = json.loads(value)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    return [
        Placement(str(e["node"]), str(e.get("at", "")))
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("node"), str) and e["node"]
    ]


def serialize_placements(placements: list[Placement]) -> str:
    return json.dumps([{"node": p.node, "at": p.at} for p in placements], separators=(",", ":"))


def nodes_by_key(data: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """ConfigMap `data` → key → nodes, most recent first."""
    result: dict[str, tuple[str, ...]] = {}
    for stored_key, value in data.items():
        try:
            key = from_configmap_key(stored_key)
        except ValueError:
            continue
        nodes = tuple(p.node for p in parse_placements(value))
        if nodes:
            result[key] = nodes
    return result
