"""An in-memory copy of the recorder's history ConfigMap, kept current by a watch.

Admissions read a dict; only the background watch talks to the API server.
A missing ConfigMap means "no history", not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from runner_sizer.history.ledger import nodes_by_key
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
        self._metrics = metrics
        self._nodes: dict[str, tuple[str, ...]] = {}
        self.synced = False
        self.problem = "history not read yet"
        self._watch = ListWatch(
            connect=connect,
            path=f"/api/v1/namespaces/{namespace}/configmaps",
            params={"fieldSelector": f"metadata.name={name}"},
            on_list=self._listed,
            on_event=self._changed,
            on_problem=self._trouble,
        )

    def nodes(self, key: str) -> tuple[str, ...]:
        return self._nodes.get(key, ())

    def start(self) -> None:
        self._watch.start("history-view")

    def stop(self) -> None:
        self._watch.stop.set()

    def _replace(self, data: Mapping[str, str] | None) -> None:
        self._nodes = nodes_by_key(data or {})
        self._metrics.history_keys.set(len(self._nodes))

    def _listed(self, items: list[JSON]) -> None:
        self._replace(items[0].get("data") if items else None)
        self.synced, self.problem = True, ""
        self._metrics.history_synced.set(1)

    def _changed(self, kind: str, obj: JSON) -> None:
        self._replace(None if kind == "DELETED" else obj.get("data"))

    def _trouble(self, problem: str) -> None:
        self.problem = f"history ConfigMap unavailable: {problem}"
