"""An in-memory copy of the recorder's history ConfigMap, kept current by a watch.

Admissions read a dict; only the background watch talks to the API server.
A missing ConfigMap means "no history", not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from runner_sizer.history.ledger import decode_entry
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
        # stored key → (stored value, history key, nodes): a ConfigMap update only
        # re-parses the entries that changed, so a large history costs the
        # admission path (same worker) next to nothing per recorder flush.
        self._parsed: dict[str, tuple[str, str, tuple[str, ...]]] = {}
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
        parsed: dict[str, tuple[str, str, tuple[str, ...]]] = {}
        for stored_key, value in (data or {}).items():
            known = self._parsed.get(stored_key)
            if known is not None and known[0] == value:
                parsed[stored_key] = known
                continue
            entry = decode_entry(stored_key, value)
            if entry is not None:
                parsed[stored_key] = (value, entry[0], tuple(p.node for p in entry[1]))
        self._parsed = parsed
        self._nodes = {key: nodes for _, key, nodes in parsed.values()}
        self._metrics.history_keys.set(len(self._nodes))

    def _listed(self, items: list[JSON]) -> None:
        self._replace(items[0].get("data") if items else None)
        self.synced, self.problem = True, ""
        self._metrics.history_synced.set(1)

    def _changed(self, kind: str, obj: JSON) -> None:
        self._replace(None if kind == "DELETED" else obj.get("data"))

    def _trouble(self, problem: str) -> None:
        self.problem = f"history ConfigMap unavailable: {problem}"
