"""The history's record set (a head ConfigMap and shards): load, and merge-write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runner_sizer.history.keys import to_configmap_key
from runner_sizer.history.ledger import (
    EntrySizes,
    History,
    data_bytes,
    drop_nodes,
    evict,
    from_data,
    merge,
)
from runner_sizer.history.placements import Placement, serialize_placements
from runner_sizer.history.recordset_store import RecordSet


@dataclass
class FlushResult:
    history: History
    writes: int
    conflicts: int
    evicted: list[str]
    data_bytes: int


class ConfigMapStore:
    def __init__(self, records: RecordSet) -> None:
        self._records = records
        # The stored records last written and their history: a flush parses
        # what is stored only after another writer changed it.
        self._known: tuple[Mapping[str, str], History] = ({}, {})
        # history key → (its placements, stored key, stored value) as last encoded:
        # an unchanged entry (the same list) is not serialised again.
        self._encoded: dict[str, tuple[list[Placement], str, str]] = {}
        self._sizes = EntrySizes()

    def load(self) -> History:
        """The stored history (empty when nothing is stored)."""
        return from_data(self._records.read())

    def _theirs(self, stored: Mapping[str, str]) -> History:
        data, history = self._known
        return history if stored is data else from_data(stored)

    def _encode(self, history: History) -> dict[str, str]:
        """`to_data(history)`, serialising only the entries that changed."""
        encoded: dict[str, tuple[list[Placement], str, str]] = {}
        for key, placements in history.items():
            known = self._encoded.get(key)
            if known is None or known[0] is not placements:
                known = (placements, to_configmap_key(key), serialize_placements(placements))
            encoded[key] = known
        self._encoded = encoded
        return {stored_key: value for _, stored_key, value in encoded.values()}

    def flush(
        self,
        ours: History,
        forgotten_nodes: set[str],
        max_nodes: int,
        max_keys: int,
        max_bytes: int,
    ) -> FlushResult:
        """Merge `ours` into what is stored and write it; on 409 re-read and merge again.

        The union keeps every entry of every writer; nodes known to be deleted
        are filtered from both sides (`ours` holds none: the recorder drops a node
        from its history when it buries it and records no binding to a buried one),
        and the least recently used keys past the bounds are evicted. A missing
        ConfigMap is created.
        """

        def change(stored: Mapping[str, str]) -> tuple[dict[str, str], tuple[History, list[str]]]:
            merged = merge(ours, self._theirs(stored), max_nodes)
            theirs_only = [
                key for key, placements in merged.items() if ours.get(key) is not placements
            ]
            drop_nodes(merged, forgotten_nodes, theirs_only)
            evicted = evict(merged, max_keys, max_bytes, self._sizes)
            return self._encode(merged), (merged, evicted)

        update = self._records.update(change)
        merged, evicted = update.result
        self._known = (update.data, merged)
        return FlushResult(
            merged, update.writes, update.conflicts, evicted, data_bytes(update.data)
        )
