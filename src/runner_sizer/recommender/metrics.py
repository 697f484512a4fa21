"""Prometheus metrics of the recommender (one worker process: a plain registry)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "runner_sizer_recommender"


@dataclass(frozen=True)
class RecommenderMetrics:
    registry: CollectorRegistry
    answers: Counter
    refresh_seconds: Histogram
    refresh_errors: Counter
    queries: Counter
    queries_last_refresh: Gauge
    identities: Gauge
    recommendations: Gauge
    runs: Gauge
    unidentified_runs: Counter
    table_age: Gauge
    oom_records: Gauge
    oom_bumps: Gauge


def build_metrics() -> RecommenderMetrics:
    registry = CollectorRegistry()
    return RecommenderMetrics(
        registry=registry,
        answers=Counter(
            f"{PREFIX}_answers_total",
            "Sizing answers by outcome: exact, any_ref, cold, ambiguous, not_ready, "
            "invalid, unauthorized.",
            ["outcome"],
            registry=registry,
        ),
        refresh_seconds=Histogram(
            f"{PREFIX}_refresh_duration_seconds",
            "Time one refresh of the table took (successful or not).",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        ),
        refresh_errors=Counter(
            f"{PREFIX}_refresh_errors_total",
            "Refreshes that failed; the last good table stays in service.",
            registry=registry,
        ),
        queries=Counter(f"{PREFIX}_queries_total", "PromQL queries sent.", registry=registry),
        queries_last_refresh=Gauge(
            f"{PREFIX}_queries_last_refresh",
            "PromQL queries the last refresh sent.",
            registry=registry,
        ),
        identities=Gauge(
            f"{PREFIX}_identities",
            "Job identities (project, ref, job) with runs in the window.",
            registry=registry,
        ),
        recommendations=Gauge(
            f"{PREFIX}_recommendations",
            "Job identities with enough runs for a recommendation.",
            registry=registry,
        ),
        runs=Gauge(f"{PREFIX}_runs", "Finished runs held, within the window.", registry=registry),
        unidentified_runs=Counter(
            f"{PREFIX}_unidentified_runs_total",
            "Finished build containers with no identity series (not counted).",
            registry=registry,
        ),
        table_age=Gauge(
            f"{PREFIX}_table_age_seconds",
            "Seconds since the table in service was built (absent before the first).",
            registry=registry,
        ),
        oom_records=Gauge(
            f"{PREFIX}_oom_records",
            "OOM records read at the last refresh, by use: bump (a memory limit or request "
            "to bump from) or unusable (neither).",
            ["use"],
            registry=registry,
        ),
        oom_bumps=Gauge(
            f"{PREFIX}_oom_bumps",
            "Answers (exact and any-ref) an OOM kill raises now.",
            registry=registry,
        ),
    )
