"""The job identity info metric: one series per live runner pod, for PromQL joins.

`runner_sizer_job_info{namespace, pod, project_id, root_namespace, project, ref, job_name} 1`
tells a query which job a pod ran, so cAdvisor's per-pod usage can be joined to the
identity every component computes (`runner_sizer.identity.job_identity`). Every
replica keeps the set of live pods; only the leader exports it, so a join needs no
deduplication. A pod's series goes with the pod. The label is `job_name`, not `job`,
which every scrape attaches; `namespace` and `pod` are the runner pod's own, so the
scrape must honour them (`honorLabels: true` on the ServiceMonitor).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runner_sizer.identity import IdentityGap, JobIdentity, container_env, job_identity
from runner_sizer.recorder.bindings import watched_runner_pod

INFO_METRIC = "runner_sizer_job_info"
INFO_LABELS = ("namespace", "pod", "project_id", "root_namespace", "project", "ref", "job_name")
GAPS_METRIC = "runner_sizer_recorder_identity_gaps"
BUILD_CONTAINER = "build"  # the name GitLab Runner gives the job's container

PodRef = tuple[str, str]  # namespace, name


def pod_ref(pod: Mapping[str, Any]) -> PodRef:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def identity_of(
    pod: Mapping[str, Any], namespaces: tuple[str, ...]
) -> JobIdentity | IdentityGap | None:
    """The pod's job identity, why it has none, or None for a pod that is not watched."""
    metadata = pod.get("metadata") or {}
    if not watched_runner_pod(metadata, namespaces):
        return None
    containers = (pod.get("spec") or {}).get("containers") or []
    build: Mapping[str, Any] = next((c for c in containers if c.get("name") == BUILD_CONTAINER), {})
    return job_identity(metadata, container_env(build))


def info_labels(ref: PodRef, identity: JobIdentity) -> tuple[str, ...]:
    """Label values in INFO_LABELS order."""
    namespace, pod = ref
    return (
        namespace,
        pod,
        identity.project_id,
        identity.org,
        identity.repo,
        identity.workflow,
        identity.job,
    )


class LivePods:
    """The identities of the runner pods that exist now (thread-safe)."""

    def __init__(self, namespaces: tuple[str, ...]) -> None:
        self._namespaces = namespaces
        self._lock = threading.Lock()
        self._pods: dict[PodRef, JobIdentity | IdentityGap] = {}

    def listed(self, pods: list[dict[str, Any]], namespace: str | None) -> None:
        """A (re-)list of `namespace` (None: every namespace) replaces what it covers."""
        found = ((pod_ref(p), identity_of(p, self._namespaces)) for p in pods)
        fresh = {ref: identity for ref, identity in found if identity is not None}
        with self._lock:
            self._pods = {
                ref: identity
                for ref, identity in self._pods.items()
                if namespace is not None and ref[0] != namespace
            } | fresh

    def changed(self, kind: str, pod: dict[str, Any]) -> None:
        ref = pod_ref(pod)
        found = identity_of(pod, self._namespaces) if kind != "DELETED" else None
        with self._lock:
            if found is None:
                self._pods.pop(ref, None)
            else:
                self._pods[ref] = found

    def snapshot(self) -> dict[PodRef, JobIdentity | IdentityGap]:
        with self._lock:
            return dict(self._pods)


class JobInfoCollector(Collector):
    """`runner_sizer_job_info` from the leader; identity gaps from every replica."""

    def __init__(self, pods: LivePods, leading: Callable[[], bool]) -> None:
        self._pods = pods
        self._leading = leading

    def collect(self) -> Iterator[Metric]:
        pods = self._pods.snapshot()
        info = GaugeMetricFamily(
            INFO_METRIC,
            "One series per live GitLab Runner job pod: the job it runs (leader only).",
            labels=INFO_LABELS,
        )
        if self._leading():
            for ref, found in pods.items():
                if isinstance(found, JobIdentity):
                    info.add_metric(info_labels(ref, found), 1)
        yield info
        gaps = GaugeMetricFamily(
            GAPS_METRIC,
            f"Live runner pods left out of {INFO_METRIC}: no identity, or an unverified one.",
            labels=["reason"],
        )
        counts = Counter(found for found in pods.values() if isinstance(found, IdentityGap))
        for reason in IdentityGap:
            gaps.add_metric([reason.value], counts[reason])
        yield gaps
