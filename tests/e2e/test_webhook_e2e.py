"""The webhook behind a real kube-apiserver: pods created through the API come back mutated."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from runner_sizer.devcluster.receiver_standin import StandinServer, StandinState
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import WebhookProcess, webhook_for
from runner_sizer.devcluster.webhooks import RUNNER_17_9_SELECTOR, has_status_annotation
from runner_sizer.history.keys import to_configmap_key
from runner_sizer.history.placements import Placement, serialize_placements
from runner_sizer.webhook.mutation import STATUS_ANNOTATION
from tests.e2e.conftest import ClusterUnderTest
from tests.support.kube import bound_node, create_pod, wait_for

RECOMMENDED = {
    "requests": {"cpu": "750m", "memory": "1536Mi"},
    "limits": {"cpu": "1", "memory": "2Gi"},
}


def status_of(pod: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(pod["metadata"]["annotations"][STATUS_ANNOTATION])
    return status


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    server = StandinServer(
        StandinState(recommendations={"acme/ml-pipeline/main/build": RECOMMENDED})
    ).start()
    yield server
    server.stop()


@pytest.fixture
def live_webhook(
    cluster: ClusterUnderTest,
    namespace: str,
    standin: StandinServer,
    register_webhook: Callable[..., str],
) -> Iterator[WebhookProcess]:
    """The webhook, reading history from `namespace`, registered for runner pods there."""
    process = webhook_for(
        standin.url,
        f"--kubeconfig={cluster.kubeconfig}",
        f"--history-namespace={namespace}",
        "--deadline=1",
    ).start()
    process.wait_ready()
    register_webhook(
        f"{process.url}/mutate",
        process.ca.cert_pem,
        namespace,
        active_when=has_status_annotation,
        object_selector=RUNNER_17_9_SELECTOR,
    )
    yield process
    process.stop()


def test_runner_pod_comes_back_mutated(
    cluster: ClusterUnderTest, namespace: str, live_webhook: WebhookProcess
) -> None:
    pod = create_pod(cluster.kube, namespace, runner_pod(RunnerJob()))
    spec = pod["spec"]
    assert spec["shareProcessNamespace"] is True
    sidecar = spec["initContainers"][-1]
    assert (sidecar["name"], sidecar["restartPolicy"]) == ("sizer-collector", "Always")
    build = next(c for c in spec["containers"] if c["name"] == "build")
    assert build["resources"] == {
        "requests": {"cpu": "750m", "memory": "1536Mi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    status = status_of(pod)
    assert status["sizing"] == "applied" and status["sidecar"] == "injected"


def test_other_pods_come_back_untouched(
    cluster: ClusterUnderTest, namespace: str, live_webhook: WebhookProcess
) -> None:
    opted_out = create_pod(
        cluster.kube,
        namespace,
        runner_pod(RunnerJob(extra_annotations={"runner-sizer.io/inject": "false"})),
    )
    plain = create_pod(
        cluster.kube,
        namespace,
        {
            "metadata": {"generateName": "web-"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        },
    )
    for pod in (opted_out, plain):
        assert not has_status_annotation(pod)
        assert "initContainers" not in pod["spec"] or all(
            c["name"] != "sizer-collector" for c in pod["spec"]["initContainers"]
        )


def test_seeded_history_places_the_pod(
    cluster: ClusterUnderTest, namespace: str, live_webhook: WebhookProcess
) -> None:
    jobs = {node: RunnerJob(runner_short=uuid.uuid4().hex[:8]) for node in cluster.node_names}
    data = {
        to_configmap_key(
            f"runner-{job.runner_short}-project-{job.project_id}"
        ): serialize_placements([Placement(node, 1_795_478_400_000)])
        for node, job in jobs.items()
    }
    cluster.kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "runner-sizer-history"}, "data": data},
    )
    first = next(iter(jobs.values()))

    def affinity_applied() -> bool:
        probe = create_pod(cluster.kube, namespace, runner_pod(first), dry_run=True)
        return isinstance(status_of(probe)["affinity"], list)

    wait_for(affinity_applied, what="history propagated to the webhook")
    for node, job in jobs.items():
        pod = create_pod(cluster.kube, namespace, runner_pod(job))
        terms = pod["spec"]["affinity"]["nodeAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert terms[0]["weight"] == 100
        chosen = wait_for(
            partial(bound_node, cluster.kube, namespace, pod["metadata"]["name"]), what="bound"
        )
        assert chosen == node


def test_pods_are_created_when_the_webhook_is_dead(
    cluster: ClusterUnderTest, namespace: str, live_webhook: WebhookProcess
) -> None:
    live_webhook.kill()
    started = time.monotonic()
    pod = create_pod(cluster.kube, namespace, runner_pod(RunnerJob()))
    assert not has_status_annotation(pod)
    assert time.monotonic() - started < 5


def test_pods_are_created_within_the_deadline_when_the_receiver_hangs(
    cluster: ClusterUnderTest, namespace: str, live_webhook: WebhookProcess, standin: StandinServer
) -> None:
    standin.state.set_mode("hang")
    try:
        started = time.monotonic()
        pod = create_pod(cluster.kube, namespace, runner_pod(RunnerJob(job_name="hang")))
        elapsed = time.monotonic() - started
    finally:
        standin.state.set_mode("ok")
    assert status_of(pod)["sizing"] == "skipped:timeout"
    assert elapsed < 2.5, elapsed
