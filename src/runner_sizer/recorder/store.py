"""The history ConfigMap: load, and write with optimistic concurrency."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from runner_sizer.history.ledger import (
    History,
    data_bytes,
    drop_nodes,
    evict,
    from_data,
    merge,
    to_data,
)
from runner_sizer.kube.client import KubeClient, KubeError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10


@dataclass
class FlushResult:
    history: History
    writes: int
    conflicts: int
    evicted: list[str]
    data_bytes: int


class ConfigMapStore:
    def __init__(self, kube: KubeClient, namespace: str, name: str) -> None:
        self._kube = kube
        self._collection = f"/api/v1/namespaces/{namespace}/configmaps"
        self._name = name

    def load(self) -> tuple[History, str | None]:
        """The stored history and its resourceVersion (None when there is no ConfigMap)."""
        try:
            stored = self._kube.get(f"{self._collection}/{self._name}")
        except KubeError as error:
            if error.status == 404:
                return {}, None
            raise
        return from_data(stored.get("data") or {}), stored["metadata"]["resourceVersion"]

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
        bounds are evicted.
        """
        conflicts = 0
        for _ in range(MAX_ATTEMPTS):
            theirs, version = self.load()
            merged = merge(ours, theirs, max_nodes)
            drop_nodes(merged, forgotten_nodes)
            evicted = evict(merged, max_keys, max_bytes)
            data = to_data(merged)
            if theirs == merged and version is not None:
                return FlushResult(merged, 0, conflicts, evicted, data_bytes(data))
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self._name,
                    "labels": {"app.kubernetes.io/name": "runner-sizer"},
                },
                "data": data,
            }
            try:
                if version is None:
                    self._kube.post(self._collection, body)
                else:
                    body["metadata"]["resourceVersion"] = version
                    self._kube.put(f"{self._collection}/{self._name}", body)
            except KubeError as error:
                if error.status in (409, 404):  # someone wrote (or created/deleted) first
                    conflicts += 1
                    continue
                raise
            return FlushResult(merged, 1, conflicts, evicted, data_bytes(data))
        raise RuntimeError(f"history ConfigMap still conflicting after {MAX_ATTEMPTS} attempts")
