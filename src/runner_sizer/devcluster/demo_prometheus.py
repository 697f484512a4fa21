"""`make demo`, part two: sizing with no proprietary receiver, learnt from Prometheus.

A real Prometheus is backfilled (promtool) with 14 days of the demo jobs' build
containers, as cAdvisor and the recorder's job info metric record them; the real
recommender builds its table from it; a webhook whose `--sizer-url` points at the
recommender sizes the next pods. For each pod: before → recommendation → after.
"""

from __future__ import annotations

import json
import time
from typing import Any

from runner_sizer.devcluster.binaries import Binaries
from runner_sizer.devcluster.job_history import GIB, PastRun, history
from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.prometheus import PrometheusServer
from runner_sizer.devcluster.recommender_process import (
    READ_TOKEN,
    RecommenderProcess,
    sizing_path,
)
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import WebhookProcess
from runner_sizer.devcluster.webhooks import has_status_annotation, register_and_wait
from runner_sizer.devcluster.webhooks import url_webhook_configuration as configuration
from runner_sizer.kube.client import KubeClient
from runner_sizer.recommender.promql import Identity
from runner_sizer.webhook.mutation import OPT_OUT_ANNOTATION, STATUS_ANNOTATION

NAMESPACE = "gitlab-runner-prometheus"
DAY = 86400.0
# Runner < 17.9 sets only the `pod` label: selecting on it covers every runner version.
EVERY_RUNNER_VERSION = {"matchExpressions": [{"key": "pod", "operator": "Exists"}]}
# (job, mean cores, peak GiB) of its past runs; the runner asks 1 core and 2Gi for all.
JOBS = (
    (RunnerJob(project_id=4100, project_path="acme/ml-pipeline", job_name="train"), 3.2, 5.5),
    (RunnerJob(project_id=4200, project_path="web/storefront", job_name="lint"), 0.3, 0.4),
    (
        RunnerJob(
            project_id=4300,
            project_path="data/etl",
            job_name="test unit",
            runner_version=(17, 5),
            runner_short="0a0b0c0d",
        ),
        1.1,
        1.2,
    ),
    (
        RunnerJob(
            project_id=4400,
            project_path="ops/infra",
            job_name="plan",
            extra_annotations={OPT_OUT_ANNOTATION: "false"},
        ),
        0.2,
        0.3,
    ),
)


def _identity(job: RunnerJob) -> Identity:
    return Identity(
        str(job.project_id), job.root_namespace, job.project_name, job.ref, job.job_name
    )


def past_runs(now: float) -> list[PastRun]:
    """Twelve runs of each job over the last 14 days, varying around its typical use."""
    runs = []
    for job, cores, peak in JOBS:
        for i in range(12):
            swing = 0.85 + 0.1 * (i % 4)
            start = float(int(now - 2 * 3600 - i * 1.1 * DAY) // 10 * 10)
            pod = f"{job.pod_label}-past{i}"
            runs.append(
                PastRun(_identity(job), pod, start, 600.0, cores * swing, peak * swing * GIB)
            )
    return runs


def _resources(pod: dict[str, Any]) -> str:
    build = next(c for c in pod["spec"]["containers"] if c["name"] == "build")
    return json.dumps(build.get("resources", {}), separators=(",", ":"))


def run(kube: KubeClient, kubeconfig: str, binaries: Binaries) -> None:
    print("\n== part 2: sizing learnt from Prometheus (no ci-sizer receiver) ==")
    prometheus = PrometheusServer(binaries)
    prometheus.backfill(history(past_runs(time.time())))
    prometheus.start()
    recommender = RecommenderProcess(prometheus.url)
    try:
        recommender.start()
        print(f"Prometheus at {prometheus.url}: 14 days of 12 runs per job, backfilled")
        print(f"runner-sizer-recommender at {recommender.url}: {_readiness(recommender)}")
        _show_table(recommender)
        _size_pods(kube, kubeconfig, recommender)
    finally:
        recommender.stop()
        prometheus.stop()
    print(
        '\nOpt out per job with the pod annotation runner-sizer.io/inject: "false" '
        "(pod_annotations in the runner's config.toml)."
    )
    print(
        "Next steps: helm upgrade --install runner-sizer charts/runner-sizer "
        "--set global.recommender.enabled=true --set global.sizer.readToken=$(openssl rand -hex 16)"
        " --set recommender.prometheus.url=http://<prometheus>:9090 "
        "--set recorder.metrics.serviceMonitor.enabled=true; label the runner's namespace "
        "ci-sizer.devfw.io/watch=true; for runners older than 17.9, set the webhook's "
        "objectSelector to `pod` Exists."
    )


def _readiness(recommender: RecommenderProcess) -> str:
    ready = recommender.get("/readyz").json()
    return f"{ready.get('recommendations')} recommendations from {ready.get('identities')} jobs"


def _show_table(recommender: RecommenderProcess) -> None:
    print(f"\n   {'project / job':36} recommendation (what the webhook gets)")
    for job, _, _ in JOBS:
        who = _identity(job)
        answer = recommender.get(sizing_path(who), project_id=who.project_id)
        shown = answer.text.strip() if answer.status_code == 200 else f"{answer.status_code}"
        print(f"   {job.project_path + ' / ' + job.job_name:36} {shown}")


def _size_pods(kube: KubeClient, kubeconfig: str, recommender: RecommenderProcess) -> None:
    kube.post(
        "/api/v1/namespaces",
        {"metadata": {"name": NAMESPACE, "labels": {"ci-sizer.devfw.io/watch": "true"}}},
    )
    webhook = WebhookProcess(
        CertificateAuthority("runner-sizer-demo-ca"),
        extra_args=[
            f"--sizer-url={recommender.url}",
            "--enable-sidecar=false",  # the recommender mints no push tokens
            "--enable-affinity=false",
            f"--kubeconfig={kubeconfig}",
        ],
        env={"WEBHOOK_SIZER_READ_TOKEN": READ_TOKEN},
    ).start()
    try:
        webhook.wait_ready()
        register_and_wait(
            kube,
            configuration(
                "runner-sizer-prometheus",
                f"{webhook.url}/mutate",
                webhook.ca.cert_pem,
                namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
                object_selector=EVERY_RUNNER_VERSION,
            ),
            namespace=NAMESPACE,
            probe_pod=runner_pod(JOBS[0][0]),
            active_when=has_status_annotation,
        )
        print(f"\nwebhook --sizer-url={recommender.url}, selecting `pod` Exists (every runner)")
        for job, _, _ in JOBS:
            original = runner_pod(job)
            created = kube.post(f"/api/v1/namespaces/{NAMESPACE}/pods", original)
            status = (created["metadata"].get("annotations") or {}).get(
                STATUS_ANNOTATION, "(left alone: opted out)"
            )
            version = ".".join(map(str, job.runner_version))
            print(f"{job.project_path} / {job.job_name} (runner {version})")
            print(f"  before  {_resources(original)}")
            print(f"  after   {_resources(created)}")
            print(f"  status  {status}")
    finally:
        webhook.stop()
