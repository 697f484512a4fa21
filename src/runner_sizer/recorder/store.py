"""The history's record set (a head ConfigMap and shards): load, and merge-write."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from runner_sizer.history.keys import to_configmap_key
from runner_sizer.history.ledger import (
    EntrySizes,
    History,
    drop_nodes,
    evict,
    from_data,
    merged_entry,
    to_data,
)
from runner_sizer.history.placements import Placement, serialize_placements
from runner_sizer.history.recordset import Records, difference
from runner_sizer.history.recordset_store import RecordSet


@dataclass
class FlushResult:
    # Each key whose stored entry is not the one flushed: what is stored now (None: nothing).
    adopted: dict[str, list[Placement] | None]
    writes: int
    conflicts: int
    evicted: list[str]
    data_bytes: int


class ConfigMapStore:
    def __init__(self, records: RecordSet) -> None:
        self._records = records
        # The stored history as this store last read or wrote it, and its sizes: a
        # flush merges only the keys that changed while the record set has not had
        # to read it again (another writer, an error) since.
        self._history: History = {}
        self._sizes = EntrySizes()
        self._reads = -1

    def load(self) -> History:
        """The stored history (empty when nothing is stored)."""
        self._history = from_data(self._records.read())
        self._sizes = EntrySizes(self._history)
        self._reads = self._records.reads
        return dict(self._history)

    def flush(
        self,
        ours: History,
        changed: Collection[str] | None,
        forgotten_nodes: set[str],
        *,
        max_nodes: int,
        max_keys: int,
        max_bytes: int,
    ) -> FlushResult:
        """Merge `ours` into what is stored and write it; on 409 re-read and merge again.

        `changed`: the keys of `ours` changed since the last flush, None for any.
        While what is stored is what this store last wrote, only they are merged;
        otherwise every key is.

        The union keeps every entry of every writer; nodes known to be deleted
        are filtered from what comes from what is stored (`ours` holds none: the
        recorder drops a node from its history when it buries it and records no
        binding to a buried one), and the least recently used keys past the
        bounds are evicted. A missing ConfigMap is created.
        """

        def change(stored: Mapping[str, str]) -> tuple[Records, FlushResult]:
            keys: Collection[str]
            if changed is not None and self._reads == self._records.reads:
                history, sizes, keys, as_written = self._history, self._sizes, changed, True
            else:
                history = from_data(stored)
                sizes, keys, as_written = EntrySizes(history), ours.keys() | history.keys(), False
            rewritten, adopted = [], []
            for key in keys:
                mine, theirs = ours.get(key), history.get(key)
                entry = merged_entry(mine, theirs, max_nodes)
                if entry is not theirs and entry is not None:
                    history[key] = entry
                    rewritten.append(key)
                if entry is not mine:
                    adopted.append(key)
            rewritten += drop_nodes(history, forgotten_nodes, adopted)
            for key in rewritten:
                sizes.set(key, history.get(key))
            evicted = evict(history, max_keys, max_bytes, sizes)
            self._history, self._sizes = history, sizes
            if as_written:
                edits = {
                    to_configmap_key(k): serialize_placements(history.get(k) or [])
                    for k in [*rewritten, *evicted]
                }
            else:
                edits = difference(stored, to_data(history))
            stored_now = ((k, history.get(k)) for k in [*adopted, *evicted])
            outcome = {k: entry for k, entry in stored_now if entry != ours.get(k)}
            return edits, FlushResult(outcome, 0, 0, evicted, sizes.total)

        update = self._records.update(change)
        self._reads = self._records.reads
        return replace(update.result, writes=update.writes, conflicts=update.conflicts)
