"""The recorder's moving parts: watches in, batched ConfigMap writes out.

Every replica watches and keeps the history in memory, within --max-keys and
--max-bytes whether or not it writes; only the Lease holder (or every replica,
with elections off) writes, once per flush interval, by merging its history
into the stored one. Every replica also keeps the identities of the live runner
pods; the leader exports them as `runner_sizer_job_info`.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from runner_sizer.history.ledger import (
    EntrySizes,
    History,
    drop_nodes,
    evict,
    evict_surplus,
    merge,
    merged_entry,
    record,
)
from runner_sizer.history.recordset_store import RecordSet
from runner_sizer.kube.client import JSON, KubeClient
from runner_sizer.kube.informer import ListWatch
from runner_sizer.kube.leader import LeaderElector
from runner_sizer.observability.problems import RecurringProblem
from runner_sizer.recorder.bindings import binding_of
from runner_sizer.recorder.jobinfo import JobInfoCollector, LivePods
from runner_sizer.recorder.metrics import RecorderMetrics
from runner_sizer.recorder.oom_keeper import OomKeeper
from runner_sizer.recorder.settings import RecorderSettings
from runner_sizer.recorder.store import ConfigMapStore
from runner_sizer.recorder.tombstones import Tombstones

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self, settings: RecorderSettings, kube: KubeClient, metrics: RecorderMetrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._kube = kube
        self._store = ConfigMapStore(
            RecordSet(
                kube,
                settings.configmap_namespace,
                settings.configmap_name,
                settings.history_shards,
                settings.compact_after_bytes,
            )
        )
        self.ooms = OomKeeper(settings, kube, metrics)
        self._lock = threading.Lock()
        self._history: History = {}
        self._sizes = EntrySizes()  # of self._history, told of every change to it
        # The keys changed since the last flush took them; None: any may have
        # (nodes were buried, so every stored entry is filtered again).
        self._changed: set[str] | None = set()
        self._tombstones = Tombstones()
        self._flush_problem = RecurringProblem(log, "history flush failed")
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
        self.live_pods = LivePods(settings.namespaces)
        metrics.registry.register(JobInfoCollector(self.live_pods, self._leading))
        self._watches = self._build_watches()

    # -- inputs ---------------------------------------------------------------

    def _build_watches(self) -> list[ListWatch]:
        selector = {"labelSelector": self.settings.label_selector}
        watches = []
        for namespace in self.settings.namespaces or (None,):
            path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
            on_list = partial(self._pods_listed, namespace=namespace)
            watches.append(self._watch(f"pods:{path}", path, selector, on_list, self._pod_event))
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

    def _observe(self, pods: list[JSON]) -> None:
        """Record the pods' bindings; the key bound holds again afterwards."""
        s = self.settings
        now = datetime.datetime.now(datetime.UTC)
        with self._lock:
            for pod in pods:
                binding = binding_of(pod, s.history_key, now, s.namespaces)
                if binding is None or binding.node in self._tombstones:
                    continue
                key, node, at = binding.key, binding.node, binding.at
                if record(self._history, key, node, at, s.max_nodes_per_key):
                    self._sizes.set(key, self._history[key])
                    self._note_changed([key])
                    self.metrics.bindings.inc()
            self._evicted(evict_surplus(self._history, s.max_keys, self._sizes))

    def _pods_listed(self, items: list[JSON], namespace: str | None) -> None:
        self.metrics.events.labels("pods", "LIST").inc(len(items))
        self.live_pods.listed(items, namespace)
        self._observe(items)
        self.ooms.observe(items)

    def _pod_event(self, kind: str, pod: JSON) -> None:
        self.metrics.events.labels("pods", kind).inc()
        self.live_pods.changed(kind, pod)
        if kind in ("ADDED", "MODIFIED"):
            self._observe([pod])
        # The runner deletes the pod ~3 s after the build container ends: the
        # final DELETED object may be the first to show the kill.
        self.ooms.observe([pod])

    def _known_nodes(self) -> set[str]:
        """Every node the history mentions (call with the lock held)."""
        return {p.node for placements in self._history.values() for p in placements}

    def _note_changed(self, keys: list[str]) -> None:
        """Call with the lock held."""
        if self._changed is not None:
            self._changed.update(keys)

    def _evicted(self, keys: list[str]) -> None:
        """Call with the lock held."""
        # Not a change to write (what is stored is bounded alike when it is
        # written), and a follower, which never flushes, must not remember them.
        if self._changed is not None:
            self._changed.difference_update(keys)
        self.metrics.evictions.inc(len(keys))

    def _forget(self, nodes: set[str]) -> None:
        """Call with the lock held."""
        self._tombstones.bury(nodes)
        dropped = drop_nodes(self._history, nodes)
        for key in dropped:
            self._sizes.set(key, self._history.get(key))
        if dropped:
            self._changed = None

    def _nodes_listed(self, items: list[JSON]) -> None:
        self.metrics.events.labels("nodes", "LIST").inc(len(items))
        names = {str((n.get("metadata") or {}).get("name")) for n in items}
        with self._lock:
            self._tombstones.revive(names)
            self._forget(self._known_nodes() - names)

    def _node_event(self, kind: str, node: JSON) -> None:
        self.metrics.events.labels("nodes", kind).inc()
        name = str((node.get("metadata") or {}).get("name"))
        with self._lock:
            if kind == "DELETED":
                self._forget({name})
            elif kind == "ADDED":  # a node name can come back
                self._tombstones.revive({name})

    # -- output ---------------------------------------------------------------

    def load(self) -> None:
        """History and OOM records from their ConfigMaps; retried until the API server answers."""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                stored = self._store.load()
                self.ooms.load()
            except Exception as error:
                log.warning("cannot load history yet", extra={"error": str(error)})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            with self._lock:
                self._note_changed(list(self._history))
                self._history = merge(stored, self._history, self.settings.max_nodes_per_key)
                self._sizes = EntrySizes(self._history)
            self._bound()
            self.loaded = True
            log.info("history loaded", extra={"keys": len(stored)})
            return

    def flush(self) -> None:
        """Write what changed since the last flush, merged with what is stored."""
        with self._lock:
            changed = self._changed
            if changed is not None and not changed:
                return
            snapshot = dict(self._history)  # lists are replaced, never changed in place
            buried = self._tombstones.nodes()
            self._changed = set()
        s = self.settings
        try:
            result = self._store.flush(
                snapshot,
                changed,
                buried,
                max_nodes=s.max_nodes_per_key,
                max_keys=s.max_keys,
                max_bytes=s.max_bytes,
            )
        except Exception as error:
            self.metrics.flush_errors.inc()
            self._flush_problem.occurred(error)
            with self._lock:
                if changed is None:
                    self._changed = None
                else:
                    self._note_changed(list(changed))
            return
        self._flush_problem.resolved()
        with self._lock:
            # Adopt what is stored (other writers' entries, evictions), merged with
            # what was recorded while we were writing.
            for key, stored in result.adopted.items():
                newer = self._changed is None or key in self._changed
                entry = self._history.get(key) if newer else None
                entry = merged_entry(entry, stored, s.max_nodes_per_key)
                if entry:
                    self._history[key] = entry
                else:
                    self._history.pop(key, None)
                self._sizes.set(key, entry)
        self.metrics.writes.inc(result.writes)
        self.metrics.conflicts.inc(result.conflicts)
        self.metrics.evictions.inc(len(result.evicted))
        self.metrics.history_bytes.set(result.data_bytes)
        self.metrics.last_flush.set(time.time())

    def _bound(self) -> None:
        """Both bounds on the history in memory: every replica, leader or not, flushed or not."""
        s = self.settings
        with self._lock:
            self._evicted(evict(self._history, s.max_keys, s.max_bytes, self._sizes))
            keys = len(self._history)
        self.metrics.history_keys.set(keys)

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

    def _leading(self) -> bool:
        return not self.settings.leader_elect or self.elector.is_leader

    def _flush_if_leading(self) -> None:
        if self._leading():
            self.flush()
            self.ooms.flush()
        self._bound()
        self.ooms.bound()

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
