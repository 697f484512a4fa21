"""An in-memory copy of the recorder's history, kept current by watches.

Admissions read a dict; only background watches talk to the API server: one on
the head ConfigMap, and one per shard the head names, each by `metadata.name`
(so RBAC can name every object). A recorder flush changes the head only, and
only the entries that changed are parsed again. A missing head means "no
history", not an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from functools import partial

from runner_sizer.history.ledger import decode_entry
from runner_sizer.history.recordset_view import Changed, RecordSetCopy
from runner_sizer.kube.client import JSON, KubeClient
from runner_sizer.kube.informer import ListWatch
from runner_sizer.webhook.metrics import WebhookMetrics


class HistoryView:
    def __init__(
        self,
        connect: Callable[[], KubeClient],
        namespace: str,
        name: str,
        metrics: WebhookMetrics,
    ) -> None:
        self._connect = connect
        self._path = f"/api/v1/namespaces/{namespace}/configmaps"
        self._metrics = metrics
        self._lock = threading.Lock()
        self._copy = RecordSetCopy(name)
        self._nodes: dict[str, tuple[str, ...]] = {}
        # stored key → (its entry, history key): an entry that moved from the head to
        # a shard at a compaction is not parsed again, and a removal finds its key.
        self._entries: dict[str, tuple[str, str]] = {}
        self._shard_watches: dict[str, ListWatch] = {}
        self._head_listed = False
        self.synced = False
        self.problem = "history not read yet"
        self._head = self._watch(name, self._head_changed)

    def nodes(self, key: str) -> tuple[str, ...]:
        return self._nodes.get(key, ())

    def start(self) -> None:
        self._head.start("history-view")

    def stop(self) -> None:
        with self._lock:
            for watch in (self._head, *self._shard_watches.values()):
                watch.stop.set()

    def _watch(
        self, name: str, changed: Callable[[Mapping[str, str] | None], Changed]
    ) -> ListWatch:
        def apply(data: Mapping[str, str] | None) -> None:
            with self._lock:
                if watch.stop.is_set():
                    return  # a shard of a layout left behind
                self._apply(changed(data))

        def listed(items: list[JSON]) -> None:
            apply(items[0].get("data") if items else None)
            if watch is self._head:
                self._head_listed = True
            self._synced()

        watch = ListWatch(
            connect=self._connect,
            path=self._path,
            params={"fieldSelector": f"metadata.name={name}"},
            on_list=listed,
            on_event=lambda kind, obj: apply(None if kind == "DELETED" else obj.get("data")),
            on_problem=self._trouble,
        )
        return watch

    def _head_changed(self, data: Mapping[str, str] | None) -> Changed:
        changed = self._copy.head(data)
        wanted = set(self._copy.wanted())
        for name in set(self._shard_watches) - wanted:
            self._shard_watches.pop(name).stop.set()
        for name in wanted - set(self._shard_watches):
            watch = self._watch(name, partial(self._copy.shard, name))
            self._shard_watches[name] = watch
            watch.start(f"history-{name}")
        return changed

    def _apply(self, changed: Changed) -> None:
        """Call with the lock held."""
        if changed is None:  # a new layout: a new dict, swapped in whole
            nodes: dict[str, tuple[str, ...]] = {}
            self._entries = {}
            entries: Iterable[tuple[str, str]] = self._copy.records().items()
        else:
            nodes = self._nodes
            entries = ((k, self._copy.entry(k) or "") for k in changed)
        for stored_key, value in entries:
            known = self._entries.get(stored_key)
            if known is not None and known[0] == value:
                continue
            if known is not None:
                del self._entries[stored_key]
                nodes.pop(known[1], None)
            entry = decode_entry(stored_key, value) if value else None
            if entry is not None:
                nodes[entry[0]] = tuple(p.node for p in entry[1])
                self._entries[stored_key] = (value, entry[0])
        self._nodes = nodes
        self._metrics.history_keys.set(len(nodes))

    def _synced(self) -> None:
        with self._lock:
            if self._head_listed and self._copy.complete() and not self.synced:
                self.synced, self.problem = True, ""
                self._metrics.history_synced.set(1)

    def _trouble(self, problem: str) -> None:
        self.problem = f"history ConfigMap unavailable: {problem}"
