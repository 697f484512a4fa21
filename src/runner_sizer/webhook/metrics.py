"""Prometheus metrics of the webhook (multiprocess-safe under gunicorn)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "runner_sizer_webhook"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    1.5,
    2.5,
    5.0,
)


@dataclass(frozen=True)
class WebhookMetrics:
    admissions: Counter
    mutations: Counter
    skipped_injections: Counter
    admission_seconds: Histogram
    receiver_seconds: Histogram
    receiver_responses: Counter
    cache_lookups: Counter
    breaker_open: Gauge
    history_keys: Gauge
    history_synced: Gauge


def build_metrics(registry: CollectorRegistry | None) -> WebhookMetrics:
    """Metrics registered in `registry` (None: only the multiprocess files see them)."""
    return WebhookMetrics(
        admissions=Counter(
            f"{PREFIX}_admissions_total",
            "Admission reviews by outcome: mutated, annotated, dry_run, ignored, invalid, error, "
            "shed (waited past --shed-after, allowed unchanged).",
            ["outcome"],
            registry=registry,
        ),
        mutations=Counter(
            f"{PREFIX}_mutations_total",
            "Mutations applied to runner pods, by kind (sizing, sidecar, affinity).",
            ["mutation"],
            registry=registry,
        ),
        skipped_injections=Counter(
            f"{PREFIX}_skipped_injections_total",
            "Features not applied to a runner pod, by feature and reason.",
            ["feature", "reason"],
            registry=registry,
        ),
        admission_seconds=Histogram(
            f"{PREFIX}_admission_duration_seconds",
            "Time to answer one admission review.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        receiver_seconds=Histogram(
            f"{PREFIX}_receiver_request_duration_seconds",
            "Sizer receiver call latency, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        receiver_responses=Counter(
            f"{PREFIX}_receiver_responses_total",
            "Sizer receiver calls by endpoint and status (HTTP code, timeout, error).",
            ["endpoint", "status"],
            registry=registry,
        ),
        cache_lookups=Counter(
            f"{PREFIX}_cache_lookups_total",
            "Receiver answer cache lookups by cache and result (hit, negative_hit, miss, stale).",
            ["cache", "result"],
            registry=registry,
        ),
        breaker_open=Gauge(
            f"{PREFIX}_receiver_breaker_open",
            "1 while the circuit breaker in front of the sizer receiver is open.",
            registry=registry,
            multiprocess_mode="livemax",
        ),
        history_keys=Gauge(
            f"{PREFIX}_history_keys",
            "Keys in the in-memory copy of the placement history.",
            registry=registry,
            multiprocess_mode="livemax",
        ),
        history_synced=Gauge(
            f"{PREFIX}_history_synced",
            "1 once the placement history has been read from the API server.",
            registry=registry,
            multiprocess_mode="livemin",
        ),
    )
