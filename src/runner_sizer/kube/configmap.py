"""One ConfigMap's data: read it, and rewrite it with optimistic concurrency.

Writes replace `data` only: the object's labels and annotations (Helm's
ownership metadata and `helm.sh/resource-policy: keep` among them) are kept,
and given back to the ConfigMap when it has to be re-created.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from runner_sizer.kube.client import JSON, KubeClient, KubeError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
RECORDER_LABELS = {"app.kubernetes.io/name": "runner-sizer"}
T = TypeVar("T")


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
class Update(Generic[T]):
    """What `ConfigMapData.update` left: the change's result and what it took."""

    result: T
    data: dict[str, str]  # the data now stored
    writes: int
    conflicts: int


# Stored data (empty when the ConfigMap is missing) → (data to store, result).
Change = Callable[[Mapping[str, str]], tuple[dict[str, str], T]]


class ConfigMapData:
    def __init__(self, kube: KubeClient, namespace: str, name: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._collection = f"/api/v1/namespaces/{namespace}/configmaps"
        self.path = f"{self._collection}/{name}"
        self._name = name
        # Labels and annotations last seen on the object, for a re-created one.
        self._metadata: dict[str, Any] = {"labels": RECORDER_LABELS}

    def _read(self) -> JSON | None:
        """The stored ConfigMap, or None when there is none."""
        try:
            stored = self._kube.get(self.path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        metadata = stored.get("metadata") or {}
        self._metadata = {k: metadata[k] for k in ("labels", "annotations") if metadata.get(k)}
        return stored

    def read(self) -> dict[str, str]:
        """The stored data (empty when there is no ConfigMap)."""
        data: dict[str, str] = (self._read() or {}).get("data") or {}
        return data

    def _write(self, stored: JSON | None, data: dict[str, str]) -> None:
        if stored is None:
            metadata = {"name": self._name, **self._metadata}
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
            create(self._kube, self._collection, self._namespace, body)
            log.info("ConfigMap created", extra={"configmap": self.path})
            return
        # The whole object back with new data: its resourceVersion makes the PUT
        # conditional; no managedFields, so the server keeps them as they are.
        metadata = {k: v for k, v in stored["metadata"].items() if k != "managedFields"}
        self._kube.put(self.path, {**stored, "metadata": metadata, "data": data})

    def update(self, change: Change[T]) -> Update[T]:
        """Apply `change` to what is stored and write it; on 409 re-read and apply again.

        Nothing is written when the change leaves an existing ConfigMap's data as
        it is. A missing ConfigMap is created.
        """
        conflicts = 0
        for _ in range(MAX_ATTEMPTS):
            stored = self._read()
            before: dict[str, str] = (stored or {}).get("data") or {}
            data, result = change(before)
            if data == before and stored is not None:
                return Update(result, data, 0, conflicts)
            try:
                self._write(stored, data)
            except KubeError as error:
                # 409: someone wrote (or created) first; 404: deleted since the read.
                if error.status in (409, 404):
                    conflicts += 1
                    continue
                raise
            return Update(result, data, 1, conflicts)
        raise RuntimeError(f"ConfigMap {self.path} still conflicting after {MAX_ATTEMPTS} attempts")
