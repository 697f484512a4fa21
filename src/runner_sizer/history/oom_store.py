"""The OOM records' record set: read by anyone, merge-written by the recorder.

They are stored the way the history is (history/recordset.py: a head ConfigMap
with the changes since the last compaction, and shards), in a few shards: at
--oom-max-records 5,000 they take ~650 KB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from runner_sizer.history.ooms import OomRecord, bound, from_data, merge, to_data
from runner_sizer.history.recordset import difference
from runner_sizer.history.recordset_store import RecordSet
from runner_sizer.kube.client import KubeClient

# Within the 900 KiB the records are bounded to, each shard stays far below 1 MiB.
OOM_SHARDS = 2


def read_oom_records(kube: KubeClient, namespace: str, name: str) -> list[OomRecord]:
    """The stored records, oldest first (empty when nothing is stored)."""
    return from_data(RecordSet(kube, namespace, name, OOM_SHARDS).read())


@dataclass(frozen=True)
class OomFlush:
    records: list[OomRecord]  # what is stored now, oldest first
    added: list[OomRecord]  # ours, stored by this flush for the first time
    evicted: list[OomRecord]
    writes: int
    conflicts: int


class OomStore:
    def __init__(self, kube: KubeClient, namespace: str, name: str) -> None:
        self._records = RecordSet(kube, namespace, name, OOM_SHARDS)
        # The records as of the record set's last read, and as we last wrote them:
        # a flush parses what is stored only after it was read again.
        self._known: tuple[int, list[OomRecord]] = (-1, [])

    def _parsed(self, stored: Mapping[str, str]) -> list[OomRecord]:
        if self._records.reads != self._known[0]:
            self._known = self._records.reads, from_data(stored)
        return self._known[1]

    def load(self) -> list[OomRecord]:
        return self._parsed(self._records.read())

    def flush(
        self, ours: Iterable[OomRecord], now: float, window: float, max_records: int
    ) -> OomFlush:
        """The union of `ours` and what is stored, bounded, written; merged again on 409."""
        mine = list(ours)

        def change(stored: Mapping[str, str]) -> tuple[dict[str, str], OomFlush]:
            theirs = self._parsed(stored)
            known = {r.pod_uid for r in theirs}
            kept = bound(merge(mine, theirs), now, window, max_records)
            added = [r for r in kept.kept if r.pod_uid not in known]
            edits = difference(stored, to_data(kept.kept))
            return edits, OomFlush(kept.kept, added, kept.evicted, 0, 0)

        update = self._records.update(change)
        result = update.result
        self._known = self._records.reads, result.records
        return OomFlush(
            result.records, result.added, result.evicted, update.writes, update.conflicts
        )
