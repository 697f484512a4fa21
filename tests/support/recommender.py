"""The real `runner-sizer-recommender` on loopback, and job history to backfill for it."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import requests

from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.prometheus import Family, Series
from runner_sizer.devcluster.service_process import ServiceProcess
from runner_sizer.recommender.promql import (
    KSM_JOB_NAME,
    KSM_PROJECT_ID,
    KSM_PROJECT_NAME,
    KSM_REF,
    KSM_ROOT_NAMESPACE,
    Identity,
)
from runner_sizer.recommender.strategy import Run

SCRIPT = Path(sys.executable).with_name("runner-sizer-recommender")
READ_TOKEN = "recommender-read-token"
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


@dataclass
class RecommenderProcess:
    prometheus_url: str
    extra_args: list[str] = field(default_factory=list)
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="runner-sizer-rec-"))
    )
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.process = ServiceProcess("recommender", self.workdir / "recommender.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_file(self) -> Path:
        return self.workdir / "read-token"

    def start(self, *, ready: bool = True, timeout: float = 60.0) -> RecommenderProcess:
        self.token_file.write_text(READ_TOKEN + "\n")
        self.process.spawn(
            [
                str(SCRIPT),
                f"--listen-addr=127.0.0.1:{self.port}",
                f"--prometheus-url={self.prometheus_url}",
                f"--read-token-file={self.token_file}",
                *self.extra_args,
            ],
            {},
        )
        self.process.wait_until_ok(f"{self.url}/healthz", timeout=timeout)
        if ready:
            self.process.wait_until_ok(f"{self.url}/readyz", timeout=timeout)
        return self

    def get(self, path: str, **params: str) -> requests.Response:
        """GET `path` as given: requests would decode %2E, so the URL is set after preparing."""
        url = f"{self.url}{path}" + (f"?{urlencode(params)}" if params else "")
        with requests.Session() as session:
            prepared = session.prepare_request(
                requests.Request("GET", url, headers={"Authorization": f"Bearer {READ_TOKEN}"})
            )
            prepared.url = url
            return session.send(prepared, timeout=10)

    def stop(self) -> None:
        self.process.stop(signal.SIGINT)
        shutil.rmtree(self.workdir, ignore_errors=True)


def sizing_path(identity: Identity) -> str:
    """The path the webhook would ask (each segment percent-encoded)."""
    from runner_sizer.identity import JobIdentity  # noqa: PLC0415

    job = JobIdentity(identity.org, identity.repo, identity.ref, identity.job, run_id="1")
    return f"/api/v1/sizing/repo/{job.receiver_path()}"


def metric_values(text: str, name: str) -> Iterator[float]:
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            yield float(line.rsplit(" ", 1)[1])
