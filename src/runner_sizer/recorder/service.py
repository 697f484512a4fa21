"""The recorder's moving parts: watches in, batched ConfigMap writes out.

Every replica watches and keeps the history in memory; only the Lease holder
(or every replica, with elections off) writes, once per flush interval, by
merging its history into the stored one.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from runner_sizer.history.ledger import History, drop_nodes, evict, merge, record
from runner_sizer.kube.client import JSON, KubeClient
from runner_sizer.kube.informer import ListWatch
from runner_sizer.recorder.bindings import binding_of
from runner_sizer.recorder.leader import LeaderElector
from runner_sizer.recorder.metrics import RecorderMetrics
from runner_sizer.recorder.settings import RecorderSettings
from runner_sizer.recorder.store import ConfigMapStore

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self, settings: RecorderSettings, kube: KubeClient, metrics: RecorderMetrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._kube = kube
        self._store = ConfigMapStore(kube, settings.configmap_namespace, settings.configmap_name)
        self._lock = threading.Lock()
        self._history: History = {}
        self._changed = False  # something to write
        self._recent: set[str] = set()  # keys recorded since the last snapshot
        self._forgotten: set[str] = set()
        self._stop = threading.Event()
        self._synced: dict[str, bool] = {}
        self.loaded = False
        self.elector = LeaderElector(
            kube,
            settings.configmap_namespace,
            settings.lease_name,
            settings.identity,
            lease_seconds=settings.lease_duration,
            renew_deadline=settings.renew_deadline,
        )
        self._watches = self._build_watches()

    # -- inputs ---------------------------------------------------------------

    def _build_watches(self) -> list[ListWatch]:
        selector = {"labelSelector": self.settings.label_selector}
        paths = [f"/api/v1/namespaces/{ns}/pods" for ns in self.settings.namespaces] or [
            "/api/v1/pods"
        ]
        watches = [
            self._watch(f"pods:{path}", path, selector, self._pods_listed, self._pod_event)
            for path in paths
        ]
        if self.settings.prune_deleted_nodes:
            watches.append(
                self._watch("nodes", "/api/v1/nodes", {}, self._nodes_listed, self._node_event)
            )
        return watches

    def _watch(
        self,
        name: str,
        path: str,
        params: dict[str, str],
        on_list: Callable[[list[JSON]], None],
        on_event: Callable[[str, JSON], None],
    ) -> ListWatch:
        resource = "nodes" if name == "nodes" else "pods"
        self._synced[name] = False

        def listed(items: list[JSON]) -> None:
            on_list(items)
            self._synced[name] = True

        return ListWatch(
            connect=lambda: self._kube,
            path=path,
            params=params,
            on_list=listed,
            on_event=on_event,
            on_restart=lambda reason: self.metrics.watch_restarts.labels(resource, reason).inc(),
            stop=self._stop,
        )

    def _observe(self, pod: JSON) -> None:
        binding = binding_of(pod, self.settings.history_key, datetime.datetime.now(datetime.UTC))
        if binding is None:
            return
        with self._lock:
            if binding.node in self._forgotten:
                return
            if record(
                self._history,
                binding.key,
                binding.node,
                binding.at,
                self.settings.max_nodes_per_key,
            ):
                self._recent.add(binding.key)
                self._changed = True
                self.metrics.bindings.inc()

    def _pods_listed(self, items: list[JSON]) -> None:
        self.metrics.events.labels("pods", "LIST").inc(len(items))
        for pod in items:
            self._observe(pod)

    def _pod_event(self, kind: str, pod: JSON) -> None:
        self.metrics.events.labels("pods", kind).inc()
        if kind in ("ADDED", "MODIFIED"):
            self._observe(pod)

    def _known_nodes(self) -> set[str]:
        """Every node the history mentions (call with the lock held)."""
        return {p.node for placements in self._history.values() for p in placements}

    def _forget(self, nodes: set[str]) -> None:
        with self._lock:
            gone = nodes & self._known_nodes()
            if gone:
                self._forgotten |= gone
                drop_nodes(self._history, gone)
                self._changed = True

    def _nodes_listed(self, items: list[JSON]) -> None:
        self.metrics.events.labels("nodes", "LIST").inc(len(items))
        names = {n["metadata"]["name"] for n in items}
        with self._lock:
            gone = self._known_nodes() - names
        self._forget(gone)

    def _node_event(self, kind: str, node: JSON) -> None:
        self.metrics.events.labels("nodes", kind).inc()
        if kind == "DELETED":
            self._forget({node["metadata"]["name"]})
        elif kind == "ADDED":
            with self._lock:  # a node name can come back
                self._forgotten.discard(node["metadata"]["name"])

    # -- output ---------------------------------------------------------------

    def load(self) -> None:
        """History from the ConfigMap; retried until the API server answers."""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                stored, _ = self._store.load()
            except Exception as error:
                log.warning("cannot load history yet", extra={"error": str(error)})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            with self._lock:
                self._history = merge(stored, self._history, self.settings.max_nodes_per_key)
            self.metrics.history_keys.set(len(stored))
            self.loaded = True
            log.info("history loaded", extra={"keys": len(stored)})
            return

    def flush(self) -> None:
        """Write what changed since the last flush, merged with what is stored."""
        with self._lock:
            if not self._changed:
                return
            snapshot = {k: list(v) for k, v in self._history.items()}
            forgotten = set(self._forgotten)
            self._changed = False
            self._recent.clear()
        s = self.settings
        try:
            result = self._store.flush(
                snapshot, forgotten, s.max_nodes_per_key, s.max_keys, s.max_bytes
            )
        except Exception as error:
            self.metrics.flush_errors.inc()
            log.warning("history flush failed", extra={"error": str(error)})
            with self._lock:
                self._changed = True
            return
        with self._lock:
            # Adopt what is stored (other writers' entries, evictions) plus what
            # was recorded while we were writing.
            newer = {k: self._history[k] for k in self._recent if k in self._history}
            self._history = merge(result.history, newer, s.max_nodes_per_key)
            self._forgotten -= forgotten
            evict(self._history, s.max_keys, s.max_bytes)
        self.metrics.writes.inc(result.writes)
        self.metrics.conflicts.inc(result.conflicts)
        self.metrics.evictions.inc(len(result.evicted))
        self.metrics.history_keys.set(len(result.history))
        self.metrics.history_bytes.set(result.data_bytes)
        self.metrics.last_flush.set(time.time())

    # -- lifecycle --------------------------------------------------------------

    def readiness_problem(self) -> str:
        if not self.loaded:
            return "history ConfigMap not loaded yet"
        waiting = [name for name, done in self._synced.items() if not done]
        return f"waiting for first list of {', '.join(waiting)}" if waiting else ""

    def _every(self, seconds: float, action: Callable[[], Any]) -> None:
        while not self._stop.wait(seconds):
            action()

    def _lead(self) -> None:
        leading = self.elector.step() if self.settings.leader_elect else True
        self.metrics.leader.set(1 if leading else 0)

    def _flush_if_leading(self) -> None:
        if not self.settings.leader_elect or self.elector.is_leader:
            self.flush()

    def start(self) -> None:
        self.load()
        for index, watch in enumerate(self._watches):
            watch.start(f"watch-{index}")
        self._lead()
        threads = [
            (self.settings.retry_period, self._lead),
            (self.settings.flush_interval, self._flush_if_leading),
        ]
        for seconds, action in threads:
            threading.Thread(target=self._every, args=(seconds, action), daemon=True).start()

    def stop(self) -> None:
        """Last flush (if leading), then hand the lease over."""
        self._stop.set()
        self._flush_if_leading()
        if self.settings.leader_elect:
            self.elector.release()
