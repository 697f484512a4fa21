"""A runner pod created through the real apiserver comes back sized by the recommender,
from 14 days of history a real Prometheus holds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from runner_sizer.devcluster.binaries import ensure_binaries
from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.prometheus import PrometheusServer
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import WebhookProcess
from runner_sizer.devcluster.webhooks import RUNNER_17_9_SELECTOR, has_status_annotation
from runner_sizer.recommender.ledger import IdentifiedRun
from runner_sizer.recommender.promql import Identity
from runner_sizer.recommender.strategy import StrategyParams
from runner_sizer.recommender.table import build_table
from runner_sizer.webhook.mutation import STATUS_ANNOTATION
from tests.e2e.conftest import ClusterUnderTest
from tests.support.kube import create_pod
from tests.support.recommender import (
    GIB,
    READ_TOKEN,
    PastRun,
    RecommenderProcess,
    history,
    sizing_path,
)

JOB = RunnerJob()
WHO = Identity(str(JOB.project_id), "acme", "ml-pipeline", JOB.ref, JOB.job_name)
OTHERS = [Identity(str(2000 + i), "acme", f"svc-{i}", "main", "test") for i in range(20)]
DAY = 86400.0


def fourteen_days(now: float) -> list[PastRun]:
    """Ten runs of the pod's job and five of 20 others, spread over 14 days."""
    runs = []
    for number, who in enumerate([WHO, *OTHERS]):
        count = 10 if who is WHO else 5
        for i in range(count):
            start = float(int(now - 4 * 3600 - i * 1.3 * DAY - number * 600) // 10 * 10)
            cores, peak = (1.25 + 0.25 * (i % 4), (2 + i % 3) * GIB)
            runs.append(
                PastRun(
                    who,
                    f"runner-x-project-{who.project_id}-c-{i}",
                    start,
                    900.0 + 30 * i,
                    cores,
                    float(peak),
                )
            )
    return runs


@pytest.fixture(scope="module")
def runs() -> list[PastRun]:
    return fourteen_days(time.time())


@pytest.fixture(scope="module")
def recommender(runs: list[PastRun]) -> Iterator[RecommenderProcess]:
    prometheus = PrometheusServer(ensure_binaries())
    prometheus.backfill(history(runs))
    prometheus.start()
    process = RecommenderProcess(prometheus.url).start()
    yield process
    process.stop()
    prometheus.stop()


@pytest.fixture
def sized_by_recommender(
    namespace: str, recommender: RecommenderProcess, register_webhook: Callable[..., str]
) -> Iterator[WebhookProcess]:
    """The webhook with the recommender as its sizer (no sidecar: it mints no tokens)."""
    process = WebhookProcess(
        CertificateAuthority("runner-sizer-dev-ca"),
        extra_args=[
            f"--sizer-url={recommender.url}",
            "--enable-sidecar=false",
            "--enable-affinity=false",
            "--watch-namespace-rules=false",
        ],
        env={"WEBHOOK_SIZER_READ_TOKEN": READ_TOKEN},
    ).start()
    register_webhook(
        f"{process.url}/mutate",
        process.ca.cert_pem,
        namespace,
        active_when=has_status_annotation,
        object_selector=RUNNER_17_9_SELECTOR,
    )
    yield process
    process.stop()


def test_the_table_holds_every_job_of_the_window(
    recommender: RecommenderProcess, runs: list[PastRun]
) -> None:
    ready = recommender.get("/readyz").json()
    assert (ready["identities"], ready["recommendations"]) == (21, 21)
    assert "missing" not in ready
    answer = recommender.get(sizing_path(OTHERS[7]), project_id=OTHERS[7].project_id)
    assert answer.status_code == 200


def test_a_runner_pod_comes_back_sized_from_prometheus(
    cluster: ClusterUnderTest,
    namespace: str,
    sized_by_recommender: WebhookProcess,
    runs: list[PastRun],
) -> None:
    mine = [IdentifiedRun(WHO, r.expected()) for r in runs if r.identity == WHO]
    table = build_table(mine, StrategyParams(), time.time())
    expected = json.loads(table.exact[(WHO.project_id, WHO.ref, WHO.job)])
    pod = create_pod(cluster.kube, namespace, runner_pod(JOB))
    build = next(c for c in pod["spec"]["containers"] if c["name"] == "build")
    assert build["resources"]["requests"] == expected["requests"]
    assert build["resources"]["limits"]["memory"] == expected["limits"]["memory"]
    status = json.loads(pod["metadata"]["annotations"][STATUS_ANNOTATION])
    assert status["sizing"] == "applied" and status["sidecar"] == "skipped:disabled", status
