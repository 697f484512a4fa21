"""Prometheus metrics of the recorder (one process: a plain registry)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

PREFIX = "runner_sizer_recorder"


@dataclass(frozen=True)
class RecorderMetrics:
    registry: CollectorRegistry
    events: Counter
    bindings: Counter
    writes: Counter
    conflicts: Counter
    flush_errors: Counter
    evictions: Counter
    watch_restarts: Counter
    history_keys: Gauge
    history_bytes: Gauge
    leader: Gauge
    last_flush: Gauge
    oom_kills: Counter
    oom_evictions: Counter
    oom_writes: Counter
    oom_records: Gauge


CERTAINTIES = ("oom_killed", "suspected")


def build_metrics() -> RecorderMetrics:
    registry = CollectorRegistry()
    # Counted by the writer whose flush stores a kill first: every replica sees
    # the pod, and a restarted recorder lists pods whose kills are stored already.
    oom_kills = Counter(
        "runner_sizer_oom_kills_total",
        "OOM kills of runner build containers, recorded: oom_killed (OOMKilled) or "
        "suspected (exit 137 without it).",
        ["certainty"],
        registry=registry,
    )
    for certainty in CERTAINTIES:
        oom_kills.labels(certainty)
    return RecorderMetrics(
        registry=registry,
        events=Counter(
            f"{PREFIX}_events_total",
            "Watch events seen, by resource and type.",
            ["resource", "type"],
            registry=registry,
        ),
        bindings=Counter(
            f"{PREFIX}_bindings_recorded_total",
            "Pod bindings that changed the history.",
            registry=registry,
        ),
        writes=Counter(
            f"{PREFIX}_configmap_writes_total",
            "Writes of the history ConfigMap.",
            registry=registry,
        ),
        conflicts=Counter(
            f"{PREFIX}_write_conflicts_total",
            "Writes (history or OOM records) refused with 409 Conflict and retried after a merge.",
            registry=registry,
        ),
        flush_errors=Counter(
            f"{PREFIX}_flush_errors_total",
            "Flushes (history or OOM records) that failed.",
            registry=registry,
        ),
        evictions=Counter(
            f"{PREFIX}_evictions_total",
            "Least recently used keys dropped to stay within bounds.",
            registry=registry,
        ),
        watch_restarts=Counter(
            f"{PREFIX}_watch_restarts_total",
            "Watches restarted, by resource and reason (gone, error).",
            ["resource", "reason"],
            registry=registry,
        ),
        history_keys=Gauge(f"{PREFIX}_history_keys", "Keys in the history.", registry=registry),
        history_bytes=Gauge(
            f"{PREFIX}_history_bytes", "Size of the ConfigMap data written last.", registry=registry
        ),
        leader=Gauge(
            f"{PREFIX}_leader",
            "1 while this replica holds the lease (or elections are off).",
            registry=registry,
        ),
        last_flush=Gauge(
            f"{PREFIX}_last_flush_timestamp_seconds",
            "Unix time of the last successful flush.",
            registry=registry,
        ),
        oom_kills=oom_kills,
        oom_evictions=Counter(
            f"{PREFIX}_oom_evictions_total",
            "OOM records dropped when writing: older than --oom-window, or over the caps.",
            registry=registry,
        ),
        oom_writes=Counter(
            f"{PREFIX}_oom_configmap_writes_total",
            "Writes of the OOM records ConfigMap.",
            registry=registry,
        ),
        oom_records=Gauge(
            f"{PREFIX}_oom_records", "OOM records this replica keeps.", registry=registry
        ),
    )
