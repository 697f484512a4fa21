"""`make demo`: the whole product on a local control plane.

Starts kube-apiserver/etcd/scheduler/controller-manager, a receiver stand-in
with sample recommendations, the real webhook (registered by URL on loopback)
and the real recorder. Round 1 creates runner-shaped pods (no history yet);
the recorder writes where kube-scheduler put them; round 2 creates the next
job of each runner/project, which the webhook steers to the same node. Prints
what each pod got and the history ConfigMap. Part two sizes pods from what a
real Prometheus holds, through the recommender (`demo_prometheus`). Then it stops
everything it started.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

import requests

from runner_sizer.devcluster import demo_prometheus
from runner_sizer.devcluster.binaries import BinariesUnavailableError, ensure_binaries
from runner_sizer.devcluster.cluster import LocalCluster
from runner_sizer.devcluster.receiver_standin import StandinServer, StandinState
from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import running_webhook
from runner_sizer.devcluster.webhooks import (
    RUNNER_17_9_SELECTOR,
    has_status_annotation,
    register_and_wait,
    url_webhook_configuration,
)
from runner_sizer.history.recordset_store import RecordSet
from runner_sizer.kube.client import KubeClient

NAMESPACE = "gitlab-runner"
SYSTEM_NAMESPACE = "ci-sizer"
JOBS = [
    RunnerJob(
        project_id=1000, project_path="acme/ml-pipeline", job_name="build", runner_short="7fc08398"
    ),
    RunnerJob(
        project_id=1185,
        project_path="payments/backend/terraform-modules",
        job_name="deploy:staging",
        ref="release/2026.11",
        runner_short="65d6cf52",
        services=("docker",),
    ),
    RunnerJob(
        project_id=2001,
        project_path="web/storefront",
        job_name="test unit",
        runner_short="a1b2c3d4",
        runner_version=(17, 5),
    ),
    RunnerJob(
        project_id=1000,
        project_path="acme/ml-pipeline",
        job_name="train",
        runner_short="7fc08398",
        concurrent=2,
        overwrites={"KUBERNETES_MEMORY_REQUEST": "6Gi", "KUBERNETES_MEMORY_LIMIT": "8Gi"},
    ),
    RunnerJob(
        project_id=3003,
        project_path="data/etl",
        job_name="lint",
        runner_short="0a0b0c0d",
        extra_annotations={"runner-sizer.io/inject": "false"},
    ),
]
RECOMMENDATIONS = {
    "acme/ml-pipeline/main/build": {
        "requests": {"cpu": "1500m", "memory": "3Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    },
    "acme/ml-pipeline/main/train": {
        "requests": {"cpu": "3", "memory": "3Gi"},
        "limits": {"cpu": "4", "memory": "4Gi"},
    },
    "payments/terraform-modules/release/2026.11/deploy:staging": {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    },
}


def _namespaces(kube: KubeClient) -> None:
    for name, labels in ((SYSTEM_NAMESPACE, {}), (NAMESPACE, {"ci-sizer.devfw.io/watch": "true"})):
        kube.post("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})


def _describe(pod: dict[str, Any]) -> str:
    spec = pod["spec"]
    sidecars = [
        c["name"] for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"
    ]
    build = next(c for c in spec["containers"] if c["name"] == "build")
    preferred = [
        term["preference"]["matchExpressions"][0]["values"][0]
        for term in (spec.get("affinity") or {})
        .get("nodeAffinity", {})
        .get("preferredDuringSchedulingIgnoredDuringExecution", [])
    ]
    status = (pod["metadata"].get("annotations") or {}).get(
        "runner-sizer.io/status", "(not mutated)"
    )
    return "\n".join(
        [
            f"  pod        {pod['metadata']['name']}",
            f"  sidecar    {', '.join(sidecars) or '-'}",
            f"  resources  {json.dumps(build.get('resources', {}))}",
            f"  preferred  {', '.join(preferred) or '-'}",
            f"  scheduled  {spec.get('nodeName', '(pending)')}",
            f"  status     {status}",
        ]
    )


def main() -> int:
    try:
        binaries = ensure_binaries()
    except BinariesUnavailableError as error:
        print(error, file=sys.stderr)
        return 3
    with LocalCluster(binaries) as cluster:
        print(f"local control plane up in {cluster.started_in_seconds:.1f}s at {cluster.server}")
        kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        _namespaces(kube)
        standin = StandinServer(StandinState(recommendations=RECOMMENDATIONS)).start()
        recorder = RecorderProcess(
            cluster.kubeconfig,
            SYSTEM_NAMESPACE,
            extra_args=[f"--namespaces={NAMESPACE}", "--flush-interval=0.5"],
        )
        try:
            recorder.start()
            with running_webhook(
                standin.url,
                f"--kubeconfig={cluster.kubeconfig}",
                f"--history-namespace={SYSTEM_NAMESPACE}",
            ) as webhook:
                manifest = url_webhook_configuration(
                    "runner-sizer",
                    f"{webhook.url}/mutate",
                    webhook.ca.cert_pem,
                    namespace_selector={"matchLabels": {"ci-sizer.devfw.io/watch": "true"}},
                    object_selector=RUNNER_17_9_SELECTOR,
                )
                webhook.wait_ready()
                register_and_wait(
                    kube,
                    manifest,
                    namespace=NAMESPACE,
                    probe_pod=runner_pod(JOBS[0]),
                    active_when=has_status_annotation,
                )
                print(f"webhook at {webhook.url} (registered by URL), recorder at {recorder.url}")
                print("\n== round 1: first jobs, no history yet ==")
                _create_and_show(kube, JOBS)
                time.sleep(1.5)  # a few recorder flushes, and the webhook's watch
                _show_history(kube)
                print("\n== round 2: the next job of each runner/project ==")
                _create_and_show(kube, [dataclasses.replace(job, concurrent=1) for job in JOBS])
                _show_skips(webhook.metrics_url)
            demo_prometheus.run(kube, str(cluster.kubeconfig), binaries)
        finally:
            recorder.stop()
            standin.stop()
    print("\nstopped everything the demo started")
    return 0


def _show_skips(metrics_url: str) -> None:
    print("\n== what the webhook did not do, and why (runner_sizer_webhook_*) ==")
    for line in requests.get(metrics_url, timeout=5).text.splitlines():
        if line.startswith("runner_sizer_webhook_skipped_injections_total{"):
            print(f"  {line}")


def _show_history(kube: KubeClient) -> None:
    records = RecordSet(kube, SYSTEM_NAMESPACE, "runner-sizer-history").read()
    print(
        f"\n== history in {SYSTEM_NAMESPACE}/runner-sizer-history and its shards "
        "(written by the recorder) =="
    )
    for key, value in sorted(records.items()):
        print(f"  {key}: {value}")


def _create_and_show(kube: KubeClient, jobs: list[RunnerJob]) -> None:
    names = []
    for job in jobs:
        created = kube.post(f"/api/v1/namespaces/{NAMESPACE}/pods", runner_pod(job))
        names.append((job, created["metadata"]["name"]))
    time.sleep(1)  # let kube-scheduler bind them
    for job, name in names:
        note = ""
        if job.runner_version < (17, 9):
            note = " (Runner < 17.9: no job.runner.gitlab.com/pod label; select on `pod` instead)"
        if "runner-sizer.io/inject" in job.extra_annotations:
            note = " (opted out)"
        if job.overwrites:
            asked = ", ".join(f"{k}={v}" for k, v in job.overwrites.items())
            note = f" (the job set {asked}: kept as the job asked, cpu still sized)"
        print(f"{job.project_path} / {job.job_name} @ {job.ref}{note}")
        print(_describe(kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")))


if __name__ == "__main__":
    sys.exit(main())
