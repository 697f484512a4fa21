"""Deleted nodes, remembered so that late pod updates cannot bring them back.

Pod garbage collection updates (and then deletes) pods still bound to a node
after the node is gone; without a tombstone each update would record the dead
node again. Only the most recent deletions are kept: by the time a tombstone
falls off, the pods bound to that node are long gone.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_TOMBSTONES = 4096


class Tombstones:
    def __init__(self, limit: int = MAX_TOMBSTONES) -> None:
        self._limit = limit
        self._nodes: dict[str, None] = {}  # an ordered set, oldest deletion first

    def bury(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            self._nodes.pop(node, None)
            self._nodes[node] = None
        for oldest in list(self._nodes)[: max(0, len(self._nodes) - self._limit)]:
            del self._nodes[oldest]

    def revive(self, nodes: Iterable[str]) -> None:
        """Node names that exist (again)."""
        for node in nodes:
            self._nodes.pop(node, None)

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def nodes(self) -> set[str]:
        return set(self._nodes)
