"""Where a key's pods ran, most recent first, as stored in ConfigMap values.

A value is compact so 5,000 keys fit the 1 MiB object limit:
`node@unix-milliseconds` entries joined by commas, e.g.
`ip-10-0-7-19.ec2.internal@1764000000000,node-b@1763990000000`.
Node names are DNS subdomains, so neither `,` nor `@` can occur in them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    node: str
    at: int  # unix time, milliseconds


def parse_placements(value: str) -> list[Placement]:
    """A stored value; malformed entries are skipped."""
    placements = []
    for entry in value.split(","):
        node, sep, at = entry.strip().rpartition("@")
        if sep and node and at.isdigit():
            placements.append(Placement(node, int(at)))
    return placements


def serialize_placements(placements: list[Placement]) -> str:
    return ",".join(f"{p.node}@{p.at}" for p in placements)
