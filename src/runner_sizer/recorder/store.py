"""The history ConfigMap: load, and merge-write with optimistic concurrency."""

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
from runner_sizer.kube.client import KubeClient
from runner_sizer.kube.configmap import ConfigMapData


@dataclass
class FlushResult:
    history: History
    writes: int
    conflicts: int
    evicted: list[str]
    data_bytes: int


class ConfigMapStore:
    def __init__(self, kube: KubeClient, namespace: str, name: str) -> None:
        self._configmap = ConfigMapData(kube, namespace, name)

    def load(self) -> History:
        """The stored history (empty when there is no ConfigMap)."""
        return from_data(self._configmap.read())

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
            merged = merge(ours, from_data(stored), max_nodes)
            drop_nodes(merged, forgotten_nodes)
            evicted = evict(merged, max_keys, max_bytes)
            return to_data(merged), (merged, evicted)

        update = self._configmap.update(change)
        merged, evicted = update.result
        return FlushResult(
            merged, update.writes, update.conflicts, evicted, data_bytes(update.data)
        )
