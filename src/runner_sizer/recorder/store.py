"""The history's record set (a head ConfigMap and shards): load, and merge-write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runner_sizer.history.ledger import (
    History,
    data_bytes,
    drop_nodes,
    evict,
    from_data,
    merge,
    to_data,
)
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

    def load(self) -> History:
        """The stored history (empty when nothing is stored)."""
        return from_data(self._records.read())

    def _theirs(self, stored: Mapping[str, str]) -> History:
        data, history = self._known
        return history if stored is data else from_data(stored)

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
        are filtered from both sides, and the least recently used keys past the
        bounds are evicted. A missing ConfigMap is created.
        """

        def change(stored: Mapping[str, str]) -> tuple[dict[str, str], tuple[History, list[str]]]:
            merged = merge(ours, self._theirs(stored), max_nodes)
            drop_nodes(merged, forgotten_nodes)
            evicted = evict(merged, max_keys, max_bytes)
            return to_data(merged), (merged, evicted)

        update = self._records.update(change)
        merged, evicted = update.result
        self._known = (update.data, merged)
        return FlushResult(
            merged, update.writes, update.conflicts, evicted, data_bytes(update.data)
        )
