"""`make demo`: a local control plane, runner-shaped pods, where they landed."""

from __future__ import annotations

import sys

from runner_sizer.devcluster.binaries import BinariesUnavailableError, ensure_binaries
from runner_sizer.devcluster.cluster import LocalCluster
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.kube.client import KubeClient


def main() -> int:
    try:
        binaries = ensure_binaries()
    except BinariesUnavailableError as error:
        print(error, file=sys.stderr)
        return 3
    with LocalCluster(binaries) as cluster:
        print(f"local control plane up in {cluster.started_in_seconds:.1f}s at {cluster.server}")
        kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        kube.post("/api/v1/namespaces", {"metadata": {"name": "gitlab-runner"}})
        names = []
        for index in range(3):
            job = RunnerJob(job_id=8400000 + index, concurrent=index)
            created = kube.post("/api/v1/namespaces/gitlab-runner/pods", runner_pod(job))
            names.append(created["metadata"]["name"])
        for name in names:
            pod = kube.get(f"/api/v1/namespaces/gitlab-runner/pods/{name}")
            print(f"{name}: node={pod['spec'].get('nodeName', '(pending)')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
