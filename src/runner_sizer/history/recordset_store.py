"""A keyed record set in ConfigMaps (see recordset.py): read it, and update it like one ConfigMap.

`update(change)` applies a `Change` (kube/configmap.py) to the records: the
change names the entries it edits, so a flush that edits a few of 50,000 costs
what those few cost. What is stored is cached from the last read or write: a
write is conditional on each object's resourceVersion, and a 409 (another
writer) or 404 re-reads everything and applies the change again; `reads`
counts those reads, so a change can tell whether the records are still the ones
it last saw. The head
keeps its labels and annotations (Helm's among them); shards are the
recorder's own.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from runner_sizer.history.recordset import (
    DEFAULT_COMPACT_AFTER,
    DEFAULT_SHARDS,
    RECORDS_KEY,
    Records,
    Stored,
    apply_edits,
    decode,
    encode,
    head_data,
    plan,
    read_head,
    shard_of,
    stored_after,
)
from runner_sizer.kube.client import JSON, KubeClient, KubeError
from runner_sizer.kube.configmap import MAX_ATTEMPTS, RECORDER_LABELS, Change, Update, create

log = logging.getLogger(__name__)
T = TypeVar("T")


class _ConflictError(Exception):
    """Another writer changed an object since it was read."""


class RecordSet:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        shards: int = DEFAULT_SHARDS,
        compact_after: int = DEFAULT_COMPACT_AFTER,
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._collection = f"/api/v1/namespaces/{namespace}/configmaps"
        self._name = name
        self._shards = shards
        self._compact_after = compact_after
        # Each object as last seen, without its data: its resourceVersion makes a write conditional.
        self._objects: dict[str, JSON] = {}
        self._head_metadata: dict[str, Any] = {"labels": RECORDER_LABELS}
        self._stored: Stored | None = None
        self._records: Records = {}
        self.reads = 0

    def _get(self, name: str) -> dict[str, str] | None:
        try:
            found = self._kube.get(f"{self._collection}/{name}")
        except KubeError as error:
            if error.status == 404:
                self._objects.pop(name, None)
                return None
            raise
        data: dict[str, str] = found.pop("data", None) or {}
        self._objects[name] = found
        return data

    def _read(self) -> Stored:
        head = self._get(self._name)
        if head is not None:
            metadata = self._objects[self._name].get("metadata") or {}
            self._head_metadata = {
                k: metadata[k] for k in ("labels", "annotations") if k in metadata
            }
        layout, delta = read_head(head or {})
        shards = {}
        for name in layout.names(self._name) if layout else []:
            shards[name] = decode((self._get(name) or {}).get(RECORDS_KEY, ""))
        return Stored(layout, delta, shards)

    def read(self) -> Records:
        """Every record stored (empty when nothing is)."""
        self._stored = self._read()
        self._records = self._stored.records()
        self.reads += 1
        return self._records

    def _put(self, name: str, data: dict[str, str]) -> None:
        """Write one object, conditionally when known, else create it; 409/404: a conflict."""
        path = f"{self._collection}/{name}"
        known = self._objects.get(name)
        try:
            if known is None:
                labels = self._head_metadata if name == self._name else {"labels": RECORDER_LABELS}
                metadata = {"name": name, **labels}
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
                written = create(self._kube, self._collection, self._namespace, body)
            else:
                # No managedFields: the server keeps them as they are.
                metadata = {k: v for k, v in known["metadata"].items() if k != "managedFields"}
                written = self._kube.put(path, {**known, "metadata": metadata, "data": data})
        except KubeError as error:
            if error.status in (409, 404):
                raise _ConflictError(name) from error
            raise
        written.pop("data", None)
        self._objects[name] = written

    def _put_new_shard(self, name: str, index: int, part: Records) -> bool:
        """Write a shard of a bank no head names yet; True if records found there were kept.

        What is there is read first: another writer moving at the same moment
        writes the same names, and its records (the keys of this shard we lack)
        are kept, so neither move loses the other's; the write is conditional.
        """
        found = decode((self._get(name) or {}).get(RECORDS_KEY, ""))
        kept = {
            k: v
            for k, v in found.items()
            if v and k not in part and shard_of(k, self._shards) == index
        }
        self._put(name, {RECORDS_KEY: encode({**kept, **part})})
        return bool(kept)

    def _delete(self, name: str) -> None:
        try:
            self._kube.delete(f"{self._collection}/{name}")
        except KubeError as error:
            if error.status != 404:
                raise
        self._objects.pop(name, None)

    def _write(self, stored: Stored, edits: Records) -> int:
        """Apply `edits` over `stored`; returns how many objects were written."""
        step = plan(self._name, stored, edits, self._shards, self._compact_after)
        if (
            not step.shards
            and step.layout == stored.layout
            and step.delta == stored.delta
            and self._name in self._objects
        ):
            return 0
        new_bank = stored.layout is None or step.layout.bank != stored.layout.bank
        kept = False
        for index, (name, part) in enumerate(step.shards.items()):
            if new_bank:
                kept |= self._put_new_shard(name, index, part)
            else:
                self._put(name, {RECORDS_KEY: encode(part)})
        self._put(self._name, head_data(step.layout, step.delta))
        if new_bank:
            log.info("records moved", extra={"head": self._name, "layout": step.layout.format()})
        for name in step.deletions:
            self._delete(name)
        # Records kept from another writer's move: read it all again at the next update.
        self._stored = None if kept else stored_after(stored, step, self._name)
        return len(step.shards) + 1 + len(step.deletions)

    def update(self, change: Change[T]) -> Update[T]:
        """Apply `change` to the stored records and store them; on a conflict re-read and again.

        Nothing is written when the records stay as they are. The records the change
        sees are changed in place afterwards: it must not keep them.
        """
        conflicts = 0
        for _ in range(MAX_ATTEMPTS):
            if self._stored is None:
                self.read()
            assert self._stored is not None
            edits, result = change(self._records)
            try:
                writes = self._write(self._stored, edits)
            except _ConflictError:
                conflicts += 1
                self._stored = None
                continue
            except Exception:
                self._stored = None  # half written: read it all again next time
                raise
            apply_edits(self._records, edits)
            return Update(result, writes, conflicts)
        raise RuntimeError(f"records {self._name} still conflicting after {MAX_ATTEMPTS} attempts")
