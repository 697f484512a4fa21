"""`make bench` (pod creation): what the webhook adds to a pod create on a real apiserver.

vegeta POSTs runner-shaped pods to the local kube-apiserver (loopback, admin client
certificate, keep-alive) at a fixed rate, open loop, first with no webhook
registered, then with the real runner-sizer-webhook registered by URL
(https://127.0.0.1:PORT/mutate), receiver answers warm. Each rate is measured
without and then with the webhook, in the same run; the difference is what
runner-sizer adds. Where Go and ../shared/bench-anchor are present, the Go anchor
is registered the same way in between, for what any webhook adds on these cores.
Every created pod must carry the status annotation, and the webhook must shed none.

A phase's p99 is decided by its slowest ~5 requests, so the phases run ROUNDS times,
taking turns; the figures are the medians of each round's differences.

The pods name a scheduler that does not run, and kube-scheduler does not run either:
it would bind thousands of them onto the three node objects on the same two cores,
mid-measure, and watch every pod created.
Pods are deleted between phases.

    python -m bench.pod_create [SECONDS]   (per phase, at most 15; default 10)
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import anchor
from bench.proc import cpu_ns
from bench.webhook import (
    RECOMMENDED,
    admissions,
    connections,
    post_targets,
    receiver_key,
    vegeta,
)
from runner_sizer.devcluster.binaries import ensure_binaries
from runner_sizer.devcluster.cluster import LocalCluster
from runner_sizer.devcluster.receiver_standin import StandinServer, StandinState
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import WebhookProcess, webhook_for
from runner_sizer.devcluster.webhooks import (
    has_status_annotation,
    register_and_wait,
    url_webhook_configuration,
)
from runner_sizer.kube.client import KubeClient

NAMESPACE = "bench-pods"
WEBHOOK = "runner-sizer-bench"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
RATES = (50, 200)
GOAL_ADDED_P99_MS = 5.0
ROUNDS = 3
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
# Twenty identities: the webhook sizes each from its (warm) receiver cache.
JOBS = [
    RunnerJob(project_id=1000 + n % 5, job_name=("build", "test", "lint", "deploy")[n % 4])
    for n in range(20)
]


def bench_pod(job: RunnerJob, phase: str) -> dict[str, Any]:
    pod = runner_pod(job)
    pod["metadata"]["labels"]["bench-phase"] = phase
    pod["spec"]["schedulerName"] = "bench-unscheduled"
    return pod


def post_pods(
    cluster: LocalCluster,
    path: str,
    pods: list[dict[str, Any]],
    *,
    rate: int,
    seconds: float,
) -> dict[str, Any]:
    """vegeta POSTing `pods` in turn to the local apiserver's `path` (admin client
    certificate, keep-alive, open loop at `rate`/s): its JSON report."""
    pki = cluster.workdir / "pki"
    targets = post_targets(f"{cluster.server}{path}", pods)
    tool = str(vegeta())
    with tempfile.TemporaryDirectory(prefix="bench-pod-create-") as scratch:
        results = Path(scratch) / "results.bin"
        args = [
            tool,
            "attack",
            "-format=json",
            f"-duration={seconds}s",
            f"-rate={rate}",
            f"-root-certs={cluster.ca_file}",
            f"-cert={pki / 'admin.crt'}",
            f"-key={pki / 'admin.key'}",
            "-http2=false",
            "-keepalive=true",
            "-timeout=10s",
            "-workers=16",
            f"-output={results}",
        ]
        subprocess.run(args, input=targets.encode(), capture_output=True, check=True)
        report = subprocess.run(
            [tool, "report", "-type=json", str(results)], capture_output=True, check=True
        )
    result: dict[str, Any] = json.loads(report.stdout)
    return result


@dataclass
class PodCreates:
    """vegeta POSTing pods to the local apiserver, with the admin client certificate."""

    cluster: LocalCluster
    kube: KubeClient
    seconds: int

    def attack(self, phase: str, rate: int) -> dict[str, Any]:
        pods = [bench_pod(job, phase) for job in JOBS]
        return post_pods(self.cluster, PODS, pods, rate=rate, seconds=self.seconds)

    def measure(
        self, phase: str, rate: int, webhook: WebhookProcess | None = None
    ) -> dict[str, Any]:
        """One phase's figures (with the webhook's admissions by outcome when it is given);
        its pods are deleted afterwards. Any other webhook in that phase is registered by
        the caller."""
        before = admissions(webhook) if webhook else {}
        connections_before = connections(webhook) if webhook else 0
        cpu_before = cpu_ns(webhook_pid(webhook)) if webhook else 0
        report = self.attack(phase, rate)
        cpu = cpu_ns(webhook_pid(webhook)) - cpu_before if webhook else 0
        created = report["status_codes"].get("201", 0)
        pods = self.kube.get(PODS, params={"labelSelector": f"bench-phase={phase}"})["items"]
        latencies = report["latencies"]
        figures: dict[str, Any] = {
            "requests": report["requests"],
            "created": created,
            "errors": report["requests"] - created,
            "pods": len(pods),
            "annotated": sum(has_status_annotation(pod) for pod in pods),
            "p50_ms": round(latencies["50th"] / 1e6, 2),
            "p99_ms": round(latencies["99th"] / 1e6, 2),
            "max_ms": round(latencies["max"] / 1e6, 2),
        }
        if webhook:
            outcomes = {k: int(v - before.get(k, 0)) for k, v in admissions(webhook).items()}
            figures["outcomes"] = {k: v for k, v in outcomes.items() if v}
            calls = max(sum(outcomes.values()), 1)
            figures["webhook_cpu_us_per_admission"] = round(cpu / 1000 / calls)
            figures["connections_opened"] = connections(webhook) - connections_before
        self.remove_pods()
        return figures

    def remove_pods(self) -> None:
        self.kube.delete(PODS, params={"gracePeriodSeconds": 0})
        deadline = time.monotonic() + 60
        while self.kube.get(PODS, params={"limit": 1})["items"]:
            if time.monotonic() > deadline:
                raise TimeoutError("bench pods not deleted after 60 s")
            time.sleep(0.2)


def webhook_pid(webhook: WebhookProcess) -> int:
    assert webhook.process.popen is not None
    return webhook.process.popen.pid


def register(kube: KubeClient, url: str, ca_pem: bytes) -> None:
    manifest = url_webhook_configuration(
        WEBHOOK,
        f"{url}/mutate",
        ca_pem,
        namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
    )
    register_and_wait(
        kube,
        manifest,
        namespace=NAMESPACE,
        probe_pod=bench_pod(JOBS[0], "probe"),
        active_when=has_status_annotation,
    )
    for job in JOBS:  # warm the receiver cache of every worker
        for _ in range(4):
            kube.post(PODS, bench_pod(job, "warm"), {"dryRun": "All"})


def unregister(kube: KubeClient) -> None:
    """Remove the configuration, then dry-run until the apiserver stops calling it."""
    kube.delete(f"{WEBHOOKS}/{WEBHOOK}")
    deadline = time.monotonic() + 15
    while has_status_annotation(kube.post(PODS, bench_pod(JOBS[0], "probe"), {"dryRun": "All"})):
        if time.monotonic() > deadline:
            raise TimeoutError("webhook still called 15 s after its configuration went")
        time.sleep(0.05)


def added(without: dict[str, Any], with_webhook: dict[str, Any]) -> dict[str, float]:
    return {
        "added_p50_ms": round(with_webhook["p50_ms"] - without["p50_ms"], 2),
        "added_p99_ms": round(with_webhook["p99_ms"] - without["p99_ms"], 2),
    }


def median_added(withouts: list[dict[str, Any]], withs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds, and every round's."""
    rounds = [added(without, other) for without, other in zip(withouts, withs, strict=True)]
    medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    return medians | {"rounds": rounds}


def summary(
    rate: int,
    seconds: int,
    without: list[dict[str, Any]],
    with_webhook: list[dict[str, Any]],
    with_anchor: list[dict[str, Any]],
) -> dict[str, Any]:
    outcomes = [phase["outcomes"] for phase in with_webhook]
    return {
        "scenario": f"pod_create_{rate}_per_s",
        "seconds": seconds,
        **median_added(without, with_webhook),
        "goal_added_p99_ms": GOAL_ADDED_P99_MS,
        **({"go_anchor": median_added(without, with_anchor)} if with_anchor else {}),
        "shed": sum(o.get("shed", 0) for o in outcomes),
        "all_annotated": all(p["created"] == p["pods"] == p["annotated"] for p in with_webhook),
        "without_webhook": without,
        "with_webhook": with_webhook,
        **({"with_go_anchor": with_anchor} if with_anchor else {}),
        "cores": os.cpu_count(),
    }


def main(argv: list[str]) -> int:
    seconds = min(int(argv[0]), 15) if argv else 10
    reviews = [{"request": {"object": bench_pod(job, "probe")}} for job in JOBS]
    state = StandinState(recommendations={receiver_key(r): RECOMMENDED for r in reviews})
    standin = StandinServer(state).start()
    try:
        with LocalCluster(
            ensure_binaries(), with_controller_manager=False, with_scheduler=False
        ) as cluster:
            # Listing or deleting thousands of pods on busy cores outlasts the default 10 s.
            kube = replace(KubeClient.from_kubeconfig(str(cluster.kubeconfig)), timeout=120.0)
            labels = {"ci-sizer.devfw.io/watch": "true"}
            kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE, "labels": labels}})
            creates = PodCreates(cluster, kube, seconds)
            quiet = ("--enable-affinity=false", "--log-level=warning")
            webhook = webhook_for(standin.url, *quiet, f"--kubeconfig={cluster.kubeconfig}")
            with contextlib.ExitStack() as stack:
                go = (
                    stack.enter_context(anchor.running_anchor(reviews, RECOMMENDED))
                    if anchor.available()
                    else None
                )
                webhook.start().wait_ready()
                stack.callback(webhook.stop)
                for rate in RATES:
                    without, with_anchor, with_webhook = [], [], []
                    for turn in range(ROUNDS):
                        without.append(creates.measure(f"without-{rate}-{turn}", rate))
                        if go:
                            register(kube, go.url, go.ca_file.read_bytes())
                            with_anchor.append(creates.measure(f"anchor-{rate}-{turn}", rate))
                            unregister(kube)
                        register(kube, webhook.url, webhook.ca.cert_pem)
                        with_webhook.append(creates.measure(f"with-{rate}-{turn}", rate, webhook))
                        unregister(kube)
                    line = summary(rate, seconds, without, with_webhook, with_anchor)
                    print(json.dumps(line), flush=True)
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
