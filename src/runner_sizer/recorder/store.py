"""The history ConfigMap: load, and write with optimistic concurrency.

Writes replace `data` only: the object's labels and annotations (Helm's
ownership metadata and `helm.sh/resource-policy: keep` among them) are kept,
and given back to the ConfigMap when it has to be re-created.
"""

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
from runner_sizer.kube.client import JSON, KubeClient, KubeError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
RECORDER_LABELS = {"app.kubernetes.io/name": "runner-sizer"}


class MissingNamespaceError(RuntimeError):
    """The configured namespace does not exist, so nothing can be created in it."""


def create(kube: KubeClient, collection: str, namespace: str, body: JSON) -> JSON:
    """POST `body` into `collection` of `namespace`; a 404 names the missing namespace."""
    try:
        return kube.post(collection, body)
    except KubeError as error:
        if error.status != 404:
            raise
        raise MissingNamespaceError(
            f"namespace {namespace!r} does not exist, so {body['kind']} "
            f"{body['metadata']['name']!r} cannot be created there (--configmap-namespace)"
        ) from error


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
        self._namespace = namespace
        self._collection = f"/api/v1/namespaces/{namespace}/configmaps"
        self._path = f"{self._collection}/{name}"
        self._name = name
        # Labels and annotations last seen on the object, for a re-created one.
        self._metadata: dict[str, Any] = {"labels": RECORDER_LABELS}

    def _read(self) -> JSON | None:
        """The stored ConfigMap, or None when there is none."""
        try:
            stored = self._kube.get(self._path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        metadata = stored.get("metadata") or {}
        self._metadata = {k: metadata[k] for k in ("labels", "annotations") if metadata.get(k)}
        return stored

    def load(self) -> History:
        """The stored history (empty when there is no ConfigMap)."""
        stored = self._read()
        return from_data((stored or {}).get("data") or {})

    def _write(self, stored: JSON | None, data: dict[str, str]) -> None:
        if stored is None:
            metadata = {"name": self._name, **self._metadata}
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
            create(self._kube, self._collection, self._namespace, body)
            log.info("history ConfigMap created", extra={"configmap": self._path})
            return
        # The whole object back with new data: its resourceVersion makes the PUT
        # conditional; no managedFields, so the server keeps them as they are.
        metadata = {k: v for k, v in stored["metadata"].items() if k != "managedFields"}
        self._kube.put(self._path, {**stored, "metadata": metadata, "data": data})

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
        conflicts = 0
        for _ in range(MAX_ATTEMPTS):
            stored = self._read()
            theirs = from_data((stored or {}).get("data") or {})
            merged = merge(ours, theirs, max_nodes)
            drop_nodes(merged, forgotten_nodes)
            evicted = evict(merged, max_keys, max_bytes)
            data = to_data(merged)
            if theirs == merged and stored is not None:
                return FlushResult(merged, 0, conflicts, evicted, data_bytes(data))
            try:
                self._write(stored, data)
            except KubeError as error:
                # 409: someone wrote (or created) first; 404: deleted since the read.
                if error.status in (409, 404):
                    conflicts += 1
                    continue
                raise
            return FlushResult(merged, 1, conflicts, evicted, data_bytes(data))
        raise RuntimeError(f"history ConfigMap still conflicting after {MAX_ATTEMPTS} attempts")
