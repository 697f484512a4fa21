"""The OOM kills one recorder replica knows: seen on pods, loaded, written by the writer.

Every replica records the kills it sees and keeps them within --oom-window and
--oom-max-records; the writer (the leader, or every replica with elections off)
merges them into the stored records at each flush, like the history.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runner_sizer.history.oom_store import OomStore
from runner_sizer.history.ooms import OomRecord, bound, merge
from runner_sizer.kube.client import KubeClient
from runner_sizer.observability.problems import RecurringProblem
from runner_sizer.recorder.metrics import RecorderMetrics
from runner_sizer.recorder.ooms import oom_of
from runner_sizer.recorder.settings import RecorderSettings

log = logging.getLogger(__name__)


class OomKeeper:
    def __init__(
        self,
        settings: RecorderSettings,
        kube: KubeClient,
        metrics: RecorderMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._store = OomStore(kube, settings.configmap_namespace, settings.oom_configmap)
        self._lock = threading.Lock()
        self._records: dict[str, OomRecord] = {}  # by pod uid
        self._recent: set[str] = set()  # uids seen since the last snapshot
        self._problem = RecurringProblem(log, "OOM records flush failed")

    def observe(self, pods: Iterable[Mapping[str, Any]]) -> None:
        now = self._clock()
        found = [r for r in (oom_of(p, self._settings.namespaces, now) for p in pods) if r]
        if not found:
            return
        with self._lock:
            for record in found:
                if record.pod_uid not in self._records:
                    self._records[record.pod_uid] = record
                    self._recent.add(record.pod_uid)
                    log.info(
                        "OOM kill seen",
                        extra={
                            "project_id": record.project_id,
                            "job": record.job,
                            "certain": record.certain,
                            "pod_uid": record.pod_uid,
                        },
                    )
            self._metrics.oom_records.set(len(self._records))

    def load(self) -> None:
        """The stored records join the ones seen so far (raises while the API is away)."""
        stored = self._store.load()
        with self._lock:
            self._adopt(merge(self._records.values(), stored))

    def _adopt(self, records: Iterable[OomRecord]) -> None:
        """Call with the lock held."""
        self._records = {r.pod_uid: r for r in records}
        self._metrics.oom_records.set(len(self._records))

    def _expired(self, now: float) -> bool:
        """A record is past the window (call with the lock held)."""
        cutoff = now - self._settings.oom_window
        return any(r.at < cutoff for r in self._records.values())

    def _stale(self, now: float) -> bool:
        """Something to write: a new kill, or a stored one past the window."""
        return bool(self._recent) or self._expired(now)

    def flush(self) -> None:
        now = self._clock()
        with self._lock:
            if not self._stale(now):
                return
            snapshot = list(self._records.values())
            self._recent.clear()
        s = self._settings
        try:
            result = self._store.flush(snapshot, now, s.oom_window, s.oom_max_records)
        except Exception as error:
            self._metrics.flush_errors.inc()
            self._problem.occurred(error)
            with self._lock:
                self._recent.update(r.pod_uid for r in snapshot)
            return
        self._problem.resolved()
        with self._lock:
            # What is stored (other writers' kills, evictions), plus what was seen
            # while we were writing.
            newer = [self._records[uid] for uid in self._recent if uid in self._records]
            self._adopt(merge(newer, result.records))
        for record in result.added:
            self._metrics.oom_kills.labels("oom_killed" if record.certain else "suspected").inc()
        self._metrics.oom_evictions.inc(len(result.evicted))
        self._metrics.oom_writes.inc(result.writes)
        self._metrics.conflicts.inc(result.conflicts)

    def bound(self) -> None:
        """The bounds in memory, on every replica (the writer counts what it evicts)."""
        s, now = self._settings, self._clock()
        with self._lock:
            # Cheap checks first: a full bound encodes every record (~80 ms at 5,000).
            if len(self._records) <= s.oom_max_records and not self._expired(now):
                return
            kept = bound(self._records.values(), now, s.oom_window, s.oom_max_records)
            if kept.evicted:
                self._adopt(kept.kept)
                # A follower never flushes: what it saw is bounded by the records.
                self._recent &= self._records.keys()
