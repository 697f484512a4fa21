"""The OOM path end to end on the local control plane, in both sizing modes.

A runner pod admitted through the webhook (sized by the recommender from a real
Prometheus) has its build container patched to OOMKilled through pods/status and is
deleted at once, as the runner does. The recorder keeps the kill; recorder and
recommender are restarted; the recommender, on a refresh, raises the job's answer; the
next pod of the job gets the bumped memory (RequestsAndLimits), or keeps the limit
that killed it and says `oom_bump_blocked`, counted (RequestsOnly).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.prometheus import PrometheusServer
from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import WebhookProcess
from runner_sizer.devcluster.webhooks import RUNNER_17_9_SELECTOR, has_status_annotation
from runner_sizer.history.oom_store import read_oom_records
from runner_sizer.recommender.promql import Identity
from runner_sizer.webhook.mutation import STATUS_ANNOTATION
from runner_sizer.webhook.quantity import parse_quantity
from runner_sizer.webhook.sizing import SizingMode
from tests.e2e.conftest import ClusterUnderTest
from tests.support.ended_pods import OOM_KILLED, build_ended
from tests.support.kube import create_pod, pods_path, wait_for
from tests.support.recommender import (
    GIB,
    READ_TOKEN,
    PastRun,
    RecommenderProcess,
    metric_values,
    prometheus_holding,
    sizing_path,
)

OOMS = "runner-sizer-ooms"
HOUR = 3600.0
MIB = 2**20
JOBS = {mode: RunnerJob(job_name=f"oom-{mode.value.lower()}") for mode in SizingMode}


def identity(job: RunnerJob) -> Identity:
    return Identity(str(job.project_id), "acme", "ml-pipeline", job.ref, job.job_name)


def past_runs(now: float) -> list[PastRun]:
    """Six runs of each job peaking at 1 Gi: 1178Mi requested, a 2Gi limit."""
    return [
        PastRun(identity(job), f"{job.job_name}-{i}", now - 20 * HOUR + i * 2 * HOUR, 900, 1, GIB)
        for job in JOBS.values()
        for i in range(6)
    ]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    with prometheus_holding(past_runs(time.time())) as server:
        yield server


class Services:
    """Recorder and recommender of one namespace, restartable; the webhook in front."""

    def __init__(self, cluster: ClusterUnderTest, namespace: str, prometheus_url: str) -> None:
        self.cluster, self.namespace, self.prometheus_url = cluster, namespace, prometheus_url
        self.recorder = self._recorder()
        try:
            self.recommender = self._recommender()
        except Exception:
            self.recorder.stop()
            raise
        self.webhook: WebhookProcess | None = None

    def _recorder(self) -> RecorderProcess:
        return RecorderProcess(
            self.cluster.kubeconfig,
            self.namespace,
            extra_args=[f"--namespaces={self.namespace}", "--flush-interval=0.3"],
        ).start()

    def _recommender(self, port: int | None = None) -> RecommenderProcess:
        process = RecommenderProcess(
            self.prometheus_url,
            extra_args=[
                f"--oom-configmap={self.namespace}/{OOMS}",
                f"--kubeconfig={self.cluster.kubeconfig}",
                "--refresh-interval=1s",
            ],
        )
        if port is not None:  # where the webhook calls it
            process.port = port
        return process.start()

    def restart_recorder_and_recommender(self) -> None:
        self.recorder.stop()
        self.recommender.stop()
        self.recorder = self._recorder()
        self.recommender = self._recommender(self.recommender.port)

    def stop(self) -> None:
        for process in (self.webhook, self.recorder, self.recommender):
            if process is not None:
                process.stop()


@pytest.fixture
def services(
    cluster: ClusterUnderTest, namespace: str, prometheus: PrometheusServer
) -> Iterator[Services]:
    running = Services(cluster, namespace, prometheus.url)
    yield running
    running.stop()


def start_webhook(
    services: Services, mode: SizingMode, register_webhook: Callable[..., str]
) -> WebhookProcess:
    """The webhook with the recommender as its sizer; answers reused for 1 s only."""
    process = WebhookProcess(
        CertificateAuthority("runner-sizer-dev-ca"),
        extra_args=[
            f"--sizer-url={services.recommender.url}",
            f"--sizing-mode={mode.value}",
            "--cache-ttl=1",
            "--negative-cache-ttl=1",
            "--enable-sidecar=false",
            "--enable-affinity=false",
            "--watch-namespace-rules=false",
        ],
        env={"WEBHOOK_SIZER_READ_TOKEN": READ_TOKEN},
    ).start()
    services.webhook = process
    register_webhook(
        f"{process.url}/mutate",
        process.ca.cert_pem,
        services.namespace,
        active_when=has_status_annotation,
        object_selector=RUNNER_17_9_SELECTOR,
    )
    return process


def admitted(cluster: ClusterUnderTest, namespace: str, job: RunnerJob) -> dict[str, Any]:
    """A runner pod of `job` created through the webhook, bound to a node."""
    manifest = runner_pod(job)
    manifest["spec"]["nodeName"] = cluster.node_names[0]
    return create_pod(cluster.kube, namespace, manifest)


def build_memory(pod: dict[str, Any]) -> tuple[float, float]:
    """(request, limit) of the build container's memory, in bytes."""
    build = next(c for c in pod["spec"]["containers"] if c["name"] == "build")["resources"]
    return (
        float(parse_quantity(build["requests"]["memory"])),
        float(parse_quantity(build["limits"]["memory"])),
    )


def oom_kill(cluster: ClusterUnderTest, namespace: str, pod: dict[str, Any]) -> None:
    """The build container ends OOMKilled; the pod is deleted at once, as the runner does."""
    path = pods_path(namespace, pod["metadata"]["name"])
    finished = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    status = build_ended(OOM_KILLED, finished.isoformat().replace("+00:00", "Z"))
    cluster.kube.patch(f"{path}/status", {"status": status})
    ended = time.monotonic()
    cluster.kube.delete(path, params={"gracePeriodSeconds": 0})
    assert time.monotonic() - ended < 3, "deleted within the runner's ~3 s"


def status_of(pod: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(pod["metadata"]["annotations"][STATUS_ANNOTATION])
    return value


def bumped(limit: float) -> float:
    """The floor a kill at `limit` sets, rounded up to whole MiB as the recommender does."""
    floor = max(limit * 1.2, limit + 100 * MIB)
    return -(-floor // MIB) * MIB


@pytest.mark.parametrize("mode", list(SizingMode), ids=[m.value for m in SizingMode])
def test_after_an_oom_kill_the_next_pod_is_bumped_or_says_why_not(
    cluster: ClusterUnderTest,
    namespace: str,
    services: Services,
    register_webhook: Callable[..., str],
    mode: SizingMode,
) -> None:
    job = JOBS[mode]
    webhook = start_webhook(services, mode, register_webhook)
    first = admitted(cluster, namespace, job)
    request, limit = build_memory(first)
    assert request == 1178 * MIB
    # RequestsOnly leaves the runner's 4Gi limit; RequestsAndLimits sets 2x the peak.
    assert limit == (2 * GIB if mode is SizingMode.REQUESTS_AND_LIMITS else 4 * GIB)

    oom_kill(cluster, namespace, first)
    uid = first["metadata"]["uid"]

    def stored() -> set[str]:
        return {r.pod_uid for r in read_oom_records(cluster.kube, namespace, OOMS)}

    wait_for(lambda: uid in stored(), timeout=15, what="the kill recorded")
    record = next(r for r in read_oom_records(cluster.kube, namespace, OOMS) if r.pod_uid == uid)
    assert (record.job, record.memory_limit, record.certain) == (job.job_name, limit, True)

    services.restart_recorder_and_recommender()
    assert uid in stored()
    assert services.recorder.metric("runner_sizer_recorder_oom_records") == 1
    floor = bumped(limit)

    def answer_with_floor() -> dict[str, Any] | None:
        response = services.recommender.get(
            sizing_path(identity(job)), project_id=str(job.project_id)
        )
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return body if "oom" in body else None

    answer = wait_for(answer_with_floor, timeout=30, what="the recommender's bumped answer")
    assert parse_quantity(answer["oom"]["memory_floor"]) == floor
    assert parse_quantity(answer["limits"]["memory"]) == floor

    second = admitted(cluster, namespace, job)
    status = status_of(second)
    if mode is SizingMode.REQUESTS_AND_LIMITS:
        assert build_memory(second) == (floor, floor)
        assert status["oomBump"] == "applied", status
        return
    # RequestsOnly: the request rises up to the limit that killed the job, no further.
    assert build_memory(second) == (4 * GIB, 4 * GIB)
    assert status["oomBump"] == "skipped:oom_bump_blocked", status
    assert status["oomBumpBlocked"]["by"] == "requests_only"
    assert parse_quantity(status["oomBumpBlocked"]["floor"]) == floor
    text = requests.get(webhook.metrics_url, timeout=5).text
    counted = metric_values(
        text,
        'runner_sizer_webhook_skipped_injections_total{feature="oom_bump",'
        'reason="oom_bump_blocked"}',
    )
    assert sum(counted) == 1
