"""The real recommender over real HTTP, learning from a real Prometheus with backfilled history."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from runner_sizer.devcluster.binaries import ensure_binaries
from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.prometheus import PrometheusServer
from runner_sizer.recommender.ledger import IdentifiedRun
from runner_sizer.recommender.promql import Identity
from runner_sizer.recommender.strategy import StrategyParams
from runner_sizer.recommender.table import build_table
from tests.support.kube import wait_for
from tests.support.promtool import assert_promtool_accepts
from tests.support.recommender import (
    GIB,
    READ_TOKEN,
    PastRun,
    RecommenderProcess,
    history,
    metric_values,
    sizing_path,
)

SPEC: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "docs" / "receiver-openapi.yaml").read_text()
)
MAIN = Identity("101", "acme", "app", "main", "build")
FEATURE = Identity("101", "acme", "app", "feature/x", "build")
TWIN = Identity("202", "acme", "app", "main", "build")  # acme/team-b/app
ODD = Identity("303", "acme", "tools", "..", "lint/ci .")
SOLO = Identity("404", "solo", "svc", "main", "test")
HOUR = 3600.0


def past_runs(now: float) -> list[PastRun]:
    runs = []
    plan = [(MAIN, 6, 1.5), (FEATURE, 2, 3.0), (TWIN, 5, 0.25), (ODD, 5, 2.0), (SOLO, 5, 0.5)]
    for number, (who, count, cores) in enumerate(plan):
        for i in range(count):
            start = float(int(now - (4 + i * 20 + number) * HOUR) // 10 * 10)
            runs.append(
                PastRun(
                    who,
                    f"runner-x-project-{who.project_id}-concurrent-0-{number}{i}",
                    start,
                    600.0 + 60 * i,
                    cores * (1 + i % 2),
                    (1 + i) * GIB / 2,
                )
            )
    return runs


@pytest.fixture(scope="module")
def runs() -> list[PastRun]:
    return past_runs(time.time())


@pytest.fixture(scope="module")
def prometheus(runs: list[PastRun]) -> Iterator[PrometheusServer]:
    server = PrometheusServer(ensure_binaries())
    server.backfill(history(runs))
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def recommender(prometheus: PrometheusServer) -> Iterator[RecommenderProcess]:
    process = RecommenderProcess(prometheus.url).start()
    yield process
    process.stop()


def expected(runs: list[PastRun], who: Identity, any_ref: bool = False) -> Any:
    chosen = [
        IdentifiedRun(who, r.expected())
        for r in runs
        if (r.identity.project_id, r.identity.job) == (who.project_id, who.job)
        and (any_ref or r.identity.ref == who.ref)
    ]
    table = build_table(chosen, StrategyParams(), 0)
    body = table.any_ref if any_ref else table.exact
    return json.loads(next(iter(body.values())))


def validate(body: Any) -> None:
    schema = {**SPEC["components"]["schemas"]["Recommendation"], "components": SPEC["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)


def test_answers_are_the_strategy_over_what_prometheus_holds(
    recommender: RecommenderProcess, runs: list[PastRun]
) -> None:
    for who in (MAIN, TWIN, ODD, SOLO):
        answer = recommender.get(sizing_path(who), project_id=who.project_id)
        assert answer.status_code == 200, (who, answer.text)
        validate(answer.json())
        assert answer.json() == expected(runs, who), who


def test_odd_refs_and_job_names_stay_in_their_segment(recommender: RecommenderProcess) -> None:
    assert sizing_path(ODD).endswith("/acme/tools/%2E%2E/lint%2Fci%20.")
    assert recommender.get(sizing_path(ODD), project_id="303").status_code == 200
    split_wrongly = "/api/v1/sizing/repo/acme/tools/../lint/ci%20."
    assert recommender.get(split_wrongly, project_id="303").status_code == 400


def test_fallback_to_any_ref_then_cold(
    recommender: RecommenderProcess, runs: list[PastRun]
) -> None:
    few_runs = recommender.get(sizing_path(FEATURE), project_id="101")
    assert few_runs.status_code == 200 and few_runs.json() == expected(runs, FEATURE, True)
    new_ref = Identity("101", "acme", "app", "release/2", "build")
    assert recommender.get(sizing_path(new_ref), project_id="101").json() == few_runs.json()
    new_job = Identity("101", "acme", "app", "main", "deploy")
    assert recommender.get(sizing_path(new_job), project_id="101").status_code == 404
    assert recommender.get(sizing_path(MAIN), project_id="999").status_code == 404


def test_without_project_id_a_shared_name_is_not_guessed(recommender: RecommenderProcess) -> None:
    assert recommender.get(sizing_path(MAIN)).status_code == 404  # 101 and 202
    assert recommender.get(sizing_path(SOLO)).status_code == 200


def test_reads_need_the_token_and_bad_paths_get_400(recommender: RecommenderProcess) -> None:
    url = f"{recommender.url}{sizing_path(SOLO)}"
    assert requests.get(url, timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.get(url, headers=wrong, timeout=5).status_code == 401
    assert recommender.get("/api/v1/sizing/repo/a/b/c").status_code == 400
    assert recommender.get("/api/v1/sizing/repo/a/b/c/%FF").status_code == 400
    assert requests.post(url, timeout=5).status_code == 405
    assert recommender.get("/api/v1/token").status_code == 404


def test_head_answers_and_outcomes_are_counted(recommender: RecommenderProcess) -> None:
    url = f"{recommender.url}{sizing_path(SOLO)}"
    auth = {"Authorization": f"Bearer {READ_TOKEN}"}
    got = requests.get(url, headers=auth, timeout=5)
    head = requests.head(url, headers=auth, timeout=5)
    assert got.headers["Content-Type"] == "application/json"
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(got.content))

    def cold_answers() -> float:
        text = recommender.get("/metrics").text
        return sum(metric_values(text, 'runner_sizer_recommender_answers_total{outcome="cold"}'))

    before = cold_answers()
    new_job = Identity("404", "solo", "svc", "main", "deploy")
    answer = recommender.get(sizing_path(new_job), project_id="404")
    assert answer.status_code == 404 and answer.json() == {"error": "no history", "reason": "cold"}
    assert cold_answers() == before + 1


def test_kube_state_metrics_identities_give_the_same_answers(
    prometheus: PrometheusServer, recommender: RecommenderProcess
) -> None:
    ksm = RecommenderProcess(prometheus.url, ["--identity-source=kube-state-metrics"]).start()
    try:
        for who in (MAIN, FEATURE, ODD):
            path = sizing_path(who)
            assert ksm.get(path, project_id=who.project_id).json() == (
                recommender.get(path, project_id=who.project_id).json()
            )
    finally:
        ksm.stop()


def test_readyz_names_missing_series_and_metrics_tell_the_refresh(
    prometheus: PrometheusServer, recommender: RecommenderProcess
) -> None:
    ready = recommender.get("/readyz").json()
    assert ready["status"] == "ready" and "missing" not in ready and ready["identities"] == 5
    elsewhere = RecommenderProcess(prometheus.url, ['--label-matchers=cluster="nowhere"']).start()
    try:
        answer = elsewhere.get("/readyz")
        assert answer.status_code == 200
        missing = answer.json()["missing"]
        assert len(missing) == 3 and "runner_sizer_job_info" in missing[2]
    finally:
        elsewhere.stop()
    text = recommender.get("/metrics").text
    assert_promtool_accepts(text)
    assert (
        sum(metric_values(text, "runner_sizer_recommender_queries_last_refresh")) == 28
    )  # 14 days, 2 per day
    assert sum(metric_values(text, "runner_sizer_recommender_recommendations")) == 4
    assert sum(metric_values(text, "runner_sizer_recommender_answers_total")) > 0
    assert 0 <= next(metric_values(text, "runner_sizer_recommender_table_age_seconds")) < 60


def test_not_ready_until_a_first_table(tmp_path: Path) -> None:
    nowhere = RecommenderProcess(f"http://127.0.0.1:{free_port()}").start(ready=False)
    try:
        # The first refresh runs beside the server: 503 at once, the reason once it failed.
        assert nowhere.get("/readyz").status_code == 503
        reason = wait_for(
            lambda: "ConnectionError" in nowhere.get("/readyz").json()["reason"],
            what="the failed refresh to be the reason",
        )
        assert reason and nowhere.get("/readyz").status_code == 503
        assert nowhere.get(sizing_path(SOLO)).status_code == 503
    finally:
        nowhere.stop()


def test_refreshes_are_incremental_and_the_last_good_table_outlives_prometheus(
    runs: list[PastRun],
) -> None:
    server = PrometheusServer(ensure_binaries())
    server.backfill(history(runs))
    server.start()
    process = RecommenderProcess(server.url, ["--refresh-interval=1s"]).start()
    try:
        before = process.get(sizing_path(SOLO), project_id="404")
        assert before.status_code == 200
        deadline = time.monotonic() + 20
        while (
            sum(
                metric_values(
                    process.get("/metrics").text, "runner_sizer_recommender_queries_total"
                )
            )
            <= 28
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        text = process.get("/metrics").text
        assert sum(metric_values(text, "runner_sizer_recommender_queries_last_refresh")) == 2
        server.stop()
        deadline = time.monotonic() + 20
        while "last_refresh_error" not in process.get("/readyz").json():
            assert time.monotonic() < deadline, process.process.log_tail()
            time.sleep(0.2)
        after = process.get(sizing_path(SOLO), project_id="404")
        assert after.status_code == 200 and after.json() == before.json()
        text = process.get("/metrics").text
        assert sum(metric_values(text, "runner_sizer_recommender_refresh_errors_total")) >= 1
        assert next(metric_values(text, "runner_sizer_recommender_table_age_seconds")) > 0
    finally:
        process.stop()
        server.stop()
