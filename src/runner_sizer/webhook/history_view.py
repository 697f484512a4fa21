"""An in-memory copy of the recorder's history ConfigMap, kept current by a watch.

Admissions read a dict; only this background loop talks to the API server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from runner_sizer.history.placements import nodes_by_key
from runner_sizer.kube.client import KubeClient, KubeError
from runner_sizer.webhook.metrics import WebhookMetrics

log = logging.getLogger(__name__)
WATCH_SECONDS = 300
MAX_BACKOFF = 30.0


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
        self._name = name
        self._metrics = metrics
        self._nodes: dict[str, tuple[str, ...]] = {}
        self._stop = threading.Event()
        self.synced = False
        self.problem = "history not read yet"

    def nodes(self, key: str) -> tuple[str, ...]:
        return self._nodes.get(key, ())

    def start(self) -> None:
        threading.Thread(target=self._run, name="history-view", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _replace(self, data: Mapping[str, str] | None) -> None:
        self._nodes = nodes_by_key(data or {})
        self._metrics.history_keys.set(len(self._nodes))

    def _run(self) -> None:
        backoff = 0.5
        kube: KubeClient | None = None
        while not self._stop.is_set():
            try:
                kube = kube or self._connect()
                self._list_and_watch(kube)
                backoff = 0.5
            except Exception as error:
                self.problem = f"history ConfigMap unavailable: {type(error).__name__}: {error}"[
                    :300
                ]
                log.warning("history watch interrupted", extra={"error": self.problem})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _list_and_watch(self, kube: KubeClient) -> None:
        selector = {"fieldSelector": f"metadata.name={self._name}"}
        listed = kube.get(self._path, selector)
        items = listed.get("items") or []
        self._replace(items[0].get("data") if items else None)
        self.synced, self.problem = True, ""
        self._metrics.history_synced.set(1)
        version = listed["metadata"]["resourceVersion"]
        params = {
            **selector,
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": WATCH_SECONDS,
        }
        for event in kube.watch(self._path, params, read_timeout=WATCH_SECONDS + 30):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:  # resourceVersion too old: list again
                    return
                raise KubeError(
                    int(obj.get("code", 500)), obj.get("reason", ""), obj.get("message", "")
                )
            if kind in ("ADDED", "MODIFIED"):
                self._replace(obj.get("data"))
            elif kind == "DELETED":
                self._replace(None)
            if self._stop.is_set():
                return
