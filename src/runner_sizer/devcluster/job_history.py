"""Past CI jobs as a Prometheus would hold them, to backfill one for demos, tests and benches.

cAdvisor usage (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`)
for each build container, the recorder's `runner_sizer_job_info` as a ServiceMonitor
without honorLabels scrapes it, and kube-state-metrics' pod label and annotation series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runner_sizer.devcluster.prometheus import Family, Series
from runner_sizer.recommender.promql import (
    KSM_JOB_NAME,
    KSM_PROJECT_ID,
    KSM_PROJECT_NAME,
    KSM_REF,
    KSM_ROOT_NAMESPACE,
    Identity,
)
from runner_sizer.recommender.strategy import Run

GIB = 2**30
# What a ServiceMonitor without honorLabels attaches to the recorder's series.
RECORDER_TARGET = {
    "job": "runner-sizer-recorder",
    "namespace": "ci-sizer",
    "pod": "runner-sizer-recorder-0",
    "instance": "10.0.0.9:8080",
}


@dataclass(frozen=True)
class PastRun:
    """One finished build container: linear CPU, its memory peak on a sample."""

    identity: Identity
    pod: str
    start: float
    seconds: float
    cores: float
    peak: float
    namespace: str = "gitlab-runner"

    def expected(self) -> Run:
        return Run(self.start + self.seconds, self.cores, self.peak)


def _times(run: PastRun, every: float) -> list[float]:
    count = int(run.seconds // every)
    return [run.start + i * every for i in range(count + 1)]


def _usage(runs: Sequence[PastRun], every: float) -> tuple[Family, Family]:
    cpu, memory = [], []
    for run in runs:
        labels = {"namespace": run.namespace, "pod": run.pod, "container": "build"}
        times = _times(run, every)
        cpu.append(Series(labels, [(t, run.cores * (t - run.start)) for t in times]))
        middle = len(times) // 2
        memory.append(
            Series(
                labels,
                [(t, run.peak if i == middle else run.peak / 2) for i, t in enumerate(times)],
            )
        )
    return (
        Family("container_cpu_usage_seconds_total", "counter", cpu),
        Family("container_memory_working_set_bytes", "gauge", memory),
    )


def _info(runs: Sequence[PastRun], every: float) -> Family:
    """runner_sizer_job_info as scraped without honorLabels: exported_* names."""
    series = []
    for run in runs:
        who = run.identity
        labels = {
            **RECORDER_TARGET,
            "exported_namespace": run.namespace,
            "exported_pod": run.pod,
            "job_name": who.job,
            "project_id": who.project_id,
            "root_namespace": who.org,
            "project": who.repo,
            "ref": who.ref,
        }
        series.append(Series(labels, [(t, 1.0) for t in _times(run, every)]))
    return Family("runner_sizer_job_info", "gauge", series)


def _kube_state_metrics(runs: Sequence[PastRun], every: float) -> tuple[Family, Family]:
    labels, annotations = [], []
    for run in runs:
        who, pod = run.identity, {"namespace": run.namespace, "pod": run.pod, "uid": run.pod}
        times = [(t, 1.0) for t in _times(run, every)]
        labels.append(
            Series(
                {
                    **pod,
                    KSM_PROJECT_ID: who.project_id,
                    KSM_PROJECT_NAME: who.repo,
                    KSM_ROOT_NAMESPACE: who.org,
                },
                times,
            )
        )
        annotations.append(Series({**pod, KSM_JOB_NAME: who.job, KSM_REF: who.ref}, times))
    return (
        Family("kube_pod_labels", "gauge", labels),
        Family("kube_pod_annotations", "gauge", annotations),
    )


def history(runs: Sequence[PastRun], cadvisor_every: float = 10.0) -> list[Family]:
    """cAdvisor usage, the recorder's info metric and kube-state-metrics' pod series."""
    return [*_usage(runs, cadvisor_every), _info(runs, 30.0), *_kube_state_metrics(runs, 30.0)]
