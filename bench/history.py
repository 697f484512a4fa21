"""`make bench` (history part): what a recorder flush costs the apiserver and each webhook pod.

A local control plane, a history preloaded to KEYS keys (synthetic entries of
realistic size), the real recorder at its default 1 s flush interval, and pods
created already bound to nodes at RATE/s, each with a key of its own (random
keys: the worst case for a sharded layout). A namespace-wide watch on the
history's ConfigMaps counts, over the window:

- written: the JSON bytes of each stored object version (what the recorder
  PUT or POSTed: the object without the server's managedFields);
- received: the JSON bytes of each watch event, as a webhook pod receives them
  (it watches exactly these objects).

Prints one JSON line per scenario.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from runner_sizer.devcluster.binaries import ensure_binaries
from runner_sizer.devcluster.cluster import LocalCluster
from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.history.ledger import History, to_data
from runner_sizer.history.placements import Placement
from runner_sizer.kube.client import JSON, KubeClient

NAME = "runner-sizer-history"
CREATORS = 16
RATE = 100.0
COMPACT = {"separators": (",", ":")}


def synthetic_history(keys: int, now_ms: int) -> History:
    """`keys` entries of three placements, ~160 bytes each stored (the issue's 5,000 ≈ 800 KB)."""
    rng = random.Random(7)  # noqa: S311 - synthetic data
    return {
        f"runner-{rng.getrandbits(32):08x}-project-{rng.randrange(10**6, 10**7)}": [
            Placement(
                f"ip-10-{rng.randrange(256)}-{rng.randrange(256)}-{rng.randrange(256)}"
                ".eu-west-1.compute.internal",
                now_ms - rng.randrange(10**9) - slot * 10**8,
            )
            for slot in range(3)
        ]
        for _ in range(keys)
    }


@dataclass
class Traffic:
    """Bytes seen on the history objects' watch while `counting` is set."""

    written: int = 0
    received: int = 0
    events: int = 0
    counting: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, kube: KubeClient, namespace: str, prefix: str) -> None:
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        version = kube.get(path)["metadata"]["resourceVersion"]
        while not self.stop.is_set():
            for event in kube.watch(path, {"resourceVersion": version}, read_timeout=60):
                obj: JSON = event.get("object") or {}
                metadata = obj.get("metadata") or {}
                version = metadata.get("resourceVersion") or version
                if not str(metadata.get("name", "")).startswith(prefix):
                    continue
                if self.counting.is_set():
                    self.events += 1
                    self.received += len(json.dumps(event, **COMPACT))  # type: ignore[arg-type]
                    if event.get("type") != "DELETED":
                        stored = {k: v for k, v in metadata.items() if k != "managedFields"}
                        body = {**obj, "metadata": stored}
                        self.written += len(json.dumps(body, **COMPACT))  # type: ignore[arg-type]
                if self.stop.is_set():
                    return


def bound_pods(cluster: LocalCluster, namespace: str, rate: float, seconds: float) -> int:
    """Create runner pods bound to nodes at `rate`/s for `seconds`; returns how many."""
    local = threading.local()
    total = int(rate * seconds)
    began = time.monotonic()

    def create(index: int) -> None:
        if not hasattr(local, "kube"):
            local.kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        delay = began + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        manifest = runner_pod(RunnerJob(runner_short=uuid.uuid4().hex[:8], services=()))
        manifest["spec"]["nodeName"] = cluster.node_names[index % len(cluster.node_names)]
        local.kube.post(f"/api/v1/namespaces/{namespace}/pods", manifest)

    with ThreadPoolExecutor(CREATORS) as pool:
        list(pool.map(create, range(total)))
    return total


@dataclass(frozen=True)
class Scenario:
    name: str
    keys: int
    preload: Callable[[KubeClient, str, History], None]
    recorder_args: tuple[str, ...] = ()


def measure(
    cluster: LocalCluster, scenario: Scenario, rate: float, seconds: float
) -> dict[str, object]:
    # Pods bound to kubelet-less nodes never finish deleting: each scenario has a
    # namespace of its own, left behind with the cluster.
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    kube.post("/api/v1/namespaces", {"metadata": {"name": namespace}})
    scenario.preload(kube, namespace, synthetic_history(scenario.keys, int(time.time() * 1000)))
    recorder = RecorderProcess(
        cluster.kubeconfig,
        namespace,
        extra_args=[
            f"--namespaces={namespace}",
            f"--configmap-name={NAME}",
            "--log-level=warning",
            *scenario.recorder_args,
        ],
    ).start(timeout=120)
    traffic = Traffic()
    watcher = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    threading.Thread(target=traffic.watch, args=(watcher, namespace, NAME), daemon=True).start()
    try:
        time.sleep(3)  # the recorder's first flush after its load
        traffic.counting.set()
        began = time.monotonic()
        created = bound_pods(cluster, namespace, rate, seconds)
        elapsed = time.monotonic() - began
        traffic.counting.clear()
        return {
            "scenario": scenario.name,
            "keys": scenario.keys,
            "bindings_per_s": round(created / elapsed, 1),
            "seconds": round(elapsed, 1),
            "written_bytes_per_s": round(traffic.written / elapsed),
            "received_bytes_per_webhook_pod_per_s": round(traffic.received / elapsed),
            "object_versions": traffic.events,
            "bytes_per_version": round(traffic.written / max(traffic.events, 1)),
            "stored_keys": int(recorder.metric("runner_sizer_recorder_history_keys")),
        }
    finally:
        traffic.stop.set()
        recorder.stop()


def single_configmap(kube: KubeClient, namespace: str, history: History) -> None:
    body = {"metadata": {"name": NAME}, "data": to_data(history)}
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", body)


def main(argv: list[str]) -> int:
    seconds = float(argv[0]) if argv else 30.0
    scenarios = [Scenario("history_single_configmap_5000_keys", 5000, single_configmap)]
    with LocalCluster(ensure_binaries()) as cluster:
        for scenario in scenarios:
            print(json.dumps(measure(cluster, scenario, RATE, seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
