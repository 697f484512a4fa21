"""PromQL building, answer parsing and the ledger of runs: pure, no Prometheus."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from runner_sizer.recommender.ledger import FINISHED_AFTER, Ledger, merge, to_run
from runner_sizer.recommender.promql import (
    MAX_POINTS,
    Fact,
    Identity,
    IdentitySource,
    chunk_seconds,
    chunks,
    identity_query,
    label_matchers,
    parse_identities,
    parse_usage,
    usage_query,
)


def sample(value: float | str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1700000000, str(value)]}


def test_label_matchers() -> None:
    assert label_matchers("") == ()
    assert label_matchers(' cluster="prod" , region=~"eu.*",x!="a\\"b"') == (
        'cluster="prod"',
        'region=~"eu.*"',
        'x!="a\\"b"',
    )
    for bad in ("cluster=prod", 'cluster="prod" region="x"', '1x="a"', 'a="b"}or{', 'a="'):
        with pytest.raises(ValueError):
            label_matchers(bad)


def test_chunks_cover_the_range_within_the_point_limit() -> None:
    longest = chunk_seconds(30)
    assert longest == 86400 and chunk_seconds(1) == MAX_POINTS
    pieces = chunks(0, 14 * 86400 + 5, longest)
    assert len(pieces) == 15
    assert pieces[0] == (0.0, 86400.0)
    assert pieces[-1] == (14 * 86400.0, 14 * 86400.0 + 5)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert chunks(10, 10, longest) == []


def test_usage_query_is_one_query_with_every_fact() -> None:
    query = usage_query("build", ('cluster="prod"',), 86400, 30)
    for fact in Fact:
        assert f'"fact", "{fact}"' in query
    assert 'container_cpu_usage_seconds_total{cluster="prod",container="build"}' in query
    assert "[86400s:30s]" in query and "[86400s]" in query
    assert usage_query('we"ird', (), 90.5, 30).count('container="we\\"ird"') == 5
    assert "[90500ms:30s]" in usage_query("build", (), 90.5, 30)


def test_identity_queries_keep_both_spellings_of_the_pod_labels() -> None:
    query = identity_query(IdentitySource.RUNNER_SIZER, ('cluster="prod"',), 3600)
    assert 'runner_sizer_job_info{cluster="prod"}[3600s]' in query
    assert "exported_namespace" in query and "job_name" in query
    ksm = identity_query(IdentitySource.KUBE_STATE_METRICS, (), 3600)
    assert 'kube_pod_labels{label_project_runner_gitlab_com_id!=""}' in ksm
    assert 'kube_pod_annotations{annotation_job_runner_gitlab_com_name!=""}' in ksm


def test_parse_usage_groups_facts_by_pod_and_skips_junk() -> None:
    result = [
        sample(100, namespace="ci", pod="p1", fact="first_time"),
        sample(5, namespace="ci", pod="p1", fact="first_cpu"),
        sample("NaN", namespace="ci", pod="p1", fact="peak_memory"),
        sample(1, namespace="ci", fact="last_time"),
        sample(1, namespace="ci", pod="p2", fact="other"),
        {"metric": {"namespace": "ci"}},
        "junk",
    ]
    assert parse_usage(result) == {("ci", "p1"): {Fact.FIRST_TIME: 100, Fact.FIRST_CPU: 5}}


def test_parse_identities_prefers_exported_labels() -> None:
    honoured = sample(
        1,
        namespace="ci",
        pod="p1",
        project_id="7",
        root_namespace="acme",
        project="app",
        ref="main",
        job="runner-sizer-recorder",
        job_name="build",
    )
    scraped = sample(
        1,
        namespace="sizer",
        pod="recorder-0",
        exported_namespace="ci",
        exported_pod="p2",
        job="runner-sizer-recorder",
        job_name="test",
        project_id="8",
        root_namespace="acme",
        project="app",
        ref="feature/x",
    )
    incomplete = sample(1, namespace="ci", pod="p3", project_id="9", root_namespace="acme")
    assert parse_identities([honoured, scraped, incomplete], IdentitySource.RUNNER_SIZER) == {
        ("ci", "p1"): Identity("7", "acme", "app", "main", "build"),
        ("ci", "p2"): Identity("8", "acme", "app", "feature/x", "test"),
    }


def test_parse_identities_joins_kube_state_metrics_labels_and_annotations() -> None:
    labels = sample(
        1,
        namespace="ci",
        pod="p1",
        label_project_runner_gitlab_com_id="7",
        label_project_runner_gitlab_com_name="app",
        label_project_runner_gitlab_com_root_namespace="acme",
    )
    annotations = sample(
        1,
        namespace="ci",
        pod="p1",
        annotation_job_runner_gitlab_com_name="build",
        annotation_job_runner_gitlab_com_ref="main",
    )
    only_labels = {**labels, "metric": {**labels["metric"], "pod": "p2"}}
    found = parse_identities([labels, annotations, only_labels], IdentitySource.KUBE_STATE_METRICS)
    assert found == {("ci", "p1"): Identity("7", "acme", "app", "main", "build")}


def test_merge_keeps_the_earliest_and_latest_pairs_and_the_highest_peak() -> None:
    early = {
        Fact.FIRST_TIME: 10.0,
        Fact.FIRST_CPU: 1.0,
        Fact.LAST_TIME: 50.0,
        Fact.LAST_CPU: 20.0,
        Fact.PEAK_MEMORY: 7.0,
    }
    late = {
        Fact.FIRST_TIME: 40.0,
        Fact.FIRST_CPU: 15.0,
        Fact.LAST_TIME: 110.0,
        Fact.LAST_CPU: 61.0,
        Fact.PEAK_MEMORY: 5.0,
    }
    merged = merge(early, late)
    assert (
        merged
        == merge(late, early)
        == {
            Fact.FIRST_TIME: 10.0,
            Fact.FIRST_CPU: 1.0,
            Fact.LAST_TIME: 110.0,
            Fact.LAST_CPU: 61.0,
            Fact.PEAK_MEMORY: 7.0,
        }
    )
    run = to_run(merged)
    assert run is not None and run.mean_cores == pytest.approx(60 / 100) and run.end == 110
    one_sample = to_run(
        {Fact.FIRST_TIME: 5.0, Fact.FIRST_CPU: 1.0, Fact.LAST_TIME: 5.0, Fact.LAST_CPU: 1.0}
    )
    assert one_sample is not None and one_sample.mean_cores is None
    assert to_run({Fact.PEAK_MEMORY: 1.0}) is None


APP = Identity("7", "acme", "app", "main", "build")


def facts(first: float, last: float, cores: float = 2.0) -> dict[Fact, float]:
    return {
        Fact.FIRST_TIME: first,
        Fact.FIRST_CPU: 0.0,
        Fact.LAST_TIME: last,
        Fact.LAST_CPU: (last - first) * cores,
        Fact.PEAK_MEMORY: 1e9,
    }


def test_ledger_finishes_silent_pods_and_ignores_their_echoes() -> None:
    ledger = Ledger()
    pod, live, stranger = ("ci", "p1"), ("ci", "p2"), ("ci", "p3")
    ledger.absorb({pod: facts(0, 600), live: facts(500, 990)}, {pod: APP, live: APP}, 1000)
    ledger.absorb({stranger: facts(0, 100)}, {}, 1000)
    settled = ledger.settle(1000, 86400)
    assert (settled.finished, settled.unidentified) == (1, 1)
    assert set(ledger.runs) == {pod} and set(ledger.pending) == {live}
    assert ledger.runs[pod].run.mean_cores == pytest.approx(2.0)
    # the next chunk's subquery still sees p1's last sample: old news, not a new run
    ledger.absorb({pod: facts(600, 600), live: facts(990, 1200, 4.0)}, {pod: APP}, 1300)
    assert ledger.settle(1300 + FINISHED_AFTER, 86400).finished == 1
    assert ledger.runs[pod].run.mean_cores == pytest.approx(2.0)
    assert ledger.runs[live].run.end == 1200
    assert ledger.runs[pod].identity is ledger.runs[live].identity  # interned
    assert ledger.covered_until == 1300


def test_ledger_forgets_runs_older_than_the_window_and_names_missing_series() -> None:
    ledger = Ledger()
    ledger.absorb({("ci", "p1"): facts(0, 100)}, {("ci", "p1"): APP}, 1000)
    ledger.settle(1000, 86400)
    assert ledger.missing(1000, 86400) == []
    ledger.settle(100 + 86401, 86400)
    assert ledger.runs == {}
    assert ledger.missing(1000 + 86401, 86400) == ["cpu", "memory", "identity"]
    assert Ledger().missing(0, 10) == ["cpu", "memory", "identity"]
