"""`make bench` (recorder part): pod bindings processed per second, ConfigMap writes per 1,000.

A local control plane, the real recorder at its default 1 s flush interval, and
pods created already bound to nodes from several threads as fast as the
apiserver takes them. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runner_sizer.devcluster.binaries import ensure_binaries
from runner_sizer.devcluster.cluster import LocalCluster
from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.kube.client import KubeClient

NAMESPACE = "bench"
CREATORS = 6


def rss_mb(recorder: RecorderProcess) -> float:
    """Resident memory of the recorder process, with every pod seen."""
    assert recorder.process.popen is not None
    status = Path(f"/proc/{recorder.process.popen.pid}/status").read_text()
    kilobytes = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
    )
    return round(kilobytes / 1024, 1)


def main(argv: list[str]) -> int:
    bindings = int(argv[0]) if argv else 3000
    with LocalCluster(ensure_binaries()) as cluster:
        kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        recorder = RecorderProcess(
            cluster.kubeconfig,
            NAMESPACE,
            extra_args=[f"--namespaces={NAMESPACE}", "--log-level=warning"],
        ).start()
        local = threading.local()
        try:

            def create(index: int) -> None:
                if not hasattr(local, "kube"):
                    local.kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
                manifest = runner_pod(RunnerJob(runner_short=uuid.uuid4().hex[:8], services=()))
                manifest["spec"]["nodeName"] = cluster.node_names[index % len(cluster.node_names)]
                local.kube.post(f"/api/v1/namespaces/{NAMESPACE}/pods", manifest)

            writes_before = recorder.metric("runner_sizer_recorder_configmap_writes_total")
            started = time.monotonic()
            with ThreadPoolExecutor(CREATORS) as pool:
                list(pool.map(create, range(bindings)))
            created = time.monotonic()
            while recorder.metric("runner_sizer_recorder_bindings_recorded_total") < bindings:
                time.sleep(0.05)
            recorded = time.monotonic()
            time.sleep(1.2)  # the last flush
            writes = recorder.metric("runner_sizer_recorder_configmap_writes_total") - writes_before
            print(
                json.dumps(
                    {
                        "scenario": "recorder_bound_pods",
                        "bindings": bindings,
                        "creation_per_s": round(bindings / (created - started), 1),
                        "bindings_processed_per_s": round(bindings / (recorded - started), 1),
                        "lag_after_last_create_s": round(recorded - created, 3),
                        "configmap_writes": int(writes),
                        "writes_per_1000_bindings": round(writes * 1000 / bindings, 2),
                        "history_bytes": int(
                            recorder.metric("runner_sizer_recorder_history_bytes")
                        ),
                        "recorder_rss_mb": rss_mb(recorder),
                    }
                ),
                flush=True,
            )
            # The recorder's own ceiling: a fresh replica catching up on all of them.
            began = time.monotonic()
            catching_up = RecorderProcess(
                cluster.kubeconfig,
                NAMESPACE,
                extra_args=[
                    f"--namespaces={NAMESPACE}",
                    "--configmap-name=bench-catch-up",
                    "--leader-elect=false",
                    "--log-level=warning",
                ],
                identity="catch-up",
            ).start()
            while catching_up.metric("runner_sizer_recorder_bindings_recorded_total") < bindings:
                time.sleep(0.02)
            print(
                json.dumps(
                    {
                        "scenario": "recorder_catch_up_from_list",
                        "bindings": bindings,
                        "bindings_processed_per_s": round(bindings / (time.monotonic() - began), 1),
                    }
                ),
                flush=True,
            )
            catching_up.stop()
        finally:
            recorder.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
