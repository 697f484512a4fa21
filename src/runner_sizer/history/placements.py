"""Where a key's pods ran, most recent first, as stored in ConfigMap values."""

from __future__ import annotations

import json
from dataclasses import dataclass


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
