"""`make bench`: the webhook under load from vegeta, over keep-alive TLS.

Prints one JSON line per scenario. Realistic ~11 KB runner pod reviews
(tests/data), receiver answers cached (warm) unless the scenario says otherwise.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import requests

from runner_sizer.devcluster.binaries import BUILD_SCRIPT, ensure_binaries
from runner_sizer.devcluster.cluster import LocalCluster
from runner_sizer.devcluster.receiver_standin import StandinServer, StandinState
from runner_sizer.devcluster.webhook_process import WebhookProcess, running_webhook
from runner_sizer.history.keys import HistoryKey, history_key
from runner_sizer.history.ledger import to_data
from runner_sizer.history.placements import Placement
from runner_sizer.identity import JobIdentity, container_env, job_identity
from runner_sizer.kube.client import KubeClient
from tests.support.reviews import SAMPLES

UPDATE_EVERY = float(os.environ.get("BENCH_HISTORY_UPDATE_EVERY", "1.0"))
RECOMMENDED = {
    "requests": {"cpu": "1500m", "memory": "3Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}


def vegeta() -> Path:
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "bench"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.split()[-1]) / "vegeta"


def sample_reviews() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in SAMPLES]


def receiver_key(review: dict[str, Any]) -> str:
    pod = review["request"]["object"]
    build = next(c for c in pod["spec"]["containers"] if c["name"] == "build")
    identity = job_identity(pod["metadata"], container_env(build))
    assert isinstance(identity, JobIdentity)
    return "/".join((identity.org, identity.repo, identity.workflow, identity.job))


def attack(
    tool: Path,
    webhook: WebhookProcess,
    reviews: list[dict[str, Any]],
    *,
    rate: int,
    seconds: int,
    workers: int,
) -> dict[str, Any]:
    """Run vegeta; rate 0 means closed loop with `workers` connections."""
    targets = "".join(
        json.dumps(
            {
                "method": "POST",
                "url": f"{webhook.url}/mutate",
                "body": base64.b64encode(json.dumps(review).encode()).decode(),
                "header": {"Content-Type": ["application/json"]},
            }
        )
        + "\n"
        for review in reviews
    )
    args = [
        str(tool),
        "attack",
        "-format=json",
        f"-duration={seconds}s",
        f"-rate={rate}",
        f"-root-certs={webhook.ca_file}",
        "-http2=false",
        "-keepalive=true",
        "-timeout=5s",
    ]
    if rate == 0:
        args += [f"-workers={workers}", f"-max-workers={workers}"]
    else:
        args += [f"-workers={workers}"]
    attack_run = subprocess.run(args, input=targets.encode(), capture_output=True, check=True)
    report = subprocess.run(
        [str(tool), "report", "-type=json"],
        input=attack_run.stdout,
        capture_output=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(report.stdout)
    return result


def summarize(name: str, report: dict[str, Any], **extra: Any) -> dict[str, Any]:
    latencies = report["latencies"]
    ms = 1e-6
    errors = report["requests"] - report["status_codes"].get("200", 0)
    return {
        "scenario": name,
        "requests": report["requests"],
        "throughput_per_s": round(report["throughput"], 1),
        "errors": errors,
        "p50_ms": round(latencies["50th"] * ms, 2),
        "p99_ms": round(latencies["99th"] * ms, 2),
        "max_ms": round(latencies["max"] * ms, 2),
        "over_100ms": "none" if latencies["max"] * ms <= 100 else "some",
        **extra,
    }


def measured(
    name: str, state: StandinState, run: Callable[[], dict[str, Any]], count_calls: bool = True
) -> None:
    """Run one scenario and print its JSON line (with receiver calls per admission)."""
    before = sum(state.calls.values())
    report = run()
    extra: dict[str, Any] = {}
    if count_calls:
        calls = sum(state.calls.values()) - before
        extra["receiver_calls_per_admission"] = round(calls / max(report["requests"], 1), 4)
    print(json.dumps(summarize(name, report, **extra)), flush=True)


def with_live_history(
    cluster: LocalCluster,
    standin: StandinServer,
    tool: Path,
    reviews: list[dict[str, Any]],
    seconds: int,
) -> dict[str, Any]:
    """Affinity on, 5,000 history keys (the samples' among them), one key rewritten every second."""
    kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    kube.post("/api/v1/namespaces", {"metadata": {"name": "ci-sizer"}})
    history = {
        f"runner-{i:08x}-project-{100000 + i}": [
            Placement(f"ip-10-0-{i % 250}-{n}.ec2.internal", i - n) for n in range(3)
        ]
        for i in range(5000)
    }
    for review in reviews:
        key = history_key(HistoryKey.RUNNER_PROJECT, review["request"]["object"]["metadata"])
        assert key is not None
        history[key] = [Placement("node-b", 10**12)]
    path = "/api/v1/namespaces/ci-sizer/configmaps"
    kube.post(path, {"metadata": {"name": "runner-sizer-history"}, "data": to_data(history)})
    stop = threading.Event()

    def recorder_like_writes() -> None:
        for tick in itertools.count():
            if stop.wait(UPDATE_EVERY):
                return
            history[f"runner-{tick % 5000:08x}-project-{100000 + tick % 5000}"] = [
                Placement("node-c", 10**12 + tick)
            ]
            kube.patch(f"{path}/runner-sizer-history", {"data": to_data(history)})

    writer = threading.Thread(target=recorder_like_writes, daemon=True)
    with running_webhook(
        standin.url,
        "--log-level=warning",
        f"--kubeconfig={cluster.kubeconfig}",
        "--history-namespace=ci-sizer",
    ) as webhook:
        webhook.wait_ready()
        for review in reviews:
            for _ in range(4):
                requests.post(
                    f"{webhook.url}/mutate", json=review, verify=str(webhook.ca_file), timeout=5
                )
        writer.start()
        try:
            return attack(tool, webhook, reviews, rate=1000, seconds=seconds, workers=16)
        finally:
            stop.set()


def main(argv: list[str]) -> int:
    seconds = int(argv[0]) if argv else 60
    tool = vegeta()
    reviews = sample_reviews()
    state = StandinState(recommendations={receiver_key(r): RECOMMENDED for r in reviews})
    standin = StandinServer(state).start()
    try:
        # Every scenario watches LimitRanges and ResourceQuotas, as in production.
        with LocalCluster(ensure_binaries()) as cluster:
            quiet = (
                "--enable-affinity=false",
                "--log-level=warning",
                f"--kubeconfig={cluster.kubeconfig}",
            )
            with running_webhook(standin.url, *quiet) as webhook:
                webhook.wait_ready()
                for review in reviews:  # warm the caches of both workers
                    for _ in range(4):
                        requests.post(
                            f"{webhook.url}/mutate",
                            json=review,
                            verify=str(webhook.ca_file),
                            timeout=5,
                        )
                short = min(seconds, 20)
                measured(
                    "closed_loop_c8_warm",
                    state,
                    partial(attack, tool, webhook, reviews, rate=0, seconds=short, workers=8),
                    count_calls=False,
                )
                measured(
                    "open_loop_1000rps_warm",
                    state,
                    partial(attack, tool, webhook, reviews, rate=1000, seconds=seconds, workers=16),
                )
            measured(
                "open_loop_1000rps_affinity_5000_keys_live_history",
                state,
                partial(with_live_history, cluster, standin, tool, reviews, seconds),
            )
            state.set_mode("slow", delay=0.005)
            uncached = ("--cache-ttl=0.001", "--negative-cache-ttl=0.001")
            with running_webhook(standin.url, *quiet, *uncached) as webhook:
                webhook.wait_ready()
                measured(
                    "open_loop_200rps_receiver_5ms_uncached",
                    state,
                    partial(attack, tool, webhook, reviews, rate=200, seconds=short, workers=16),
                )
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
