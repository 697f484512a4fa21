"""The refresh loop: query Prometheus, settle runs, swap in a new table.

A fixed number of queries per chunk of time, two, whatever the number of jobs.
The first refresh covers the whole window in chunks; later ones only the time
since the last one. A failure keeps the last good table in service and the
next refresh resumes from the last chunk that was read.

The recorder's OOM records, when configured, are read whole on each refresh (their
head ConfigMap and the shards it names). If they cannot be read, the table is still
rebuilt, with the last records read, and the refresh counts as failed (so the next
one comes sooner).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from runner_sizer.history.ooms import OomRecord
from runner_sizer.recommender.ledger import Ledger
from runner_sizer.recommender.metrics import RecommenderMetrics
from runner_sizer.recommender.ooms import OomSourceError
from runner_sizer.recommender.prometheus import PrometheusClient, PrometheusError
from runner_sizer.recommender.promql import (
    chunk_seconds,
    chunks,
    identity_query,
    parse_identities,
    parse_usage,
    usage_query,
)
from runner_sizer.recommender.settings import RecommenderSettings
from runner_sizer.recommender.table import Table, build_table

log = logging.getLogger(__name__)
RETRY_AFTER_FAILURE = 30.0

HOW_TO_ENABLE = {
    "cpu": "container_cpu_usage_seconds_total{container=...}: scrape the kubelet's "
    "/metrics/cadvisor (kube-prometheus-stack: kubelet.serviceMonitor.cAdvisor=true) and "
    "check --container and --label-matchers",
    "memory": "container_memory_working_set_bytes{container=...}: scrape the kubelet's "
    "/metrics/cadvisor and check --container and --label-matchers",
    "identity/runner-sizer": "runner_sizer_job_info: enable the recorder and its "
    "ServiceMonitor, or use --identity-source=kube-state-metrics",
    "identity/kube-state-metrics": "kube_pod_labels/kube_pod_annotations with runner labels: "
    "start kube-state-metrics with --metric-labels-allowlist=pods=[project.runner.gitlab.com/id,"
    "project.runner.gitlab.com/name,project.runner.gitlab.com/root-namespace] and "
    "--metric-annotations-allowlist=pods=[job.runner.gitlab.com/name,job.runner.gitlab.com/ref]",
}


def read_usage(
    client: PrometheusClient,
    settings: RecommenderSettings,
    ledger: Ledger,
    start: float,
    end: float,
) -> None:
    """Usage facts and identities of (start, end], two queries per chunk, into the ledger."""
    for begin, stop in chunks(start, end, chunk_seconds(settings.step)):
        span = stop - begin
        usage = client.query(
            usage_query(settings.container, settings.label_matchers, span, settings.step), stop
        )
        identities = client.query(
            identity_query(settings.identity_source, settings.label_matchers, span), stop
        )
        ledger.absorb(
            parse_usage(usage), parse_identities(identities, settings.identity_source), stop
        )


class Refresher:
    def __init__(
        self,
        settings: RecommenderSettings,
        client: PrometheusClient,
        metrics: RecommenderMetrics,
        clock: Callable[[], float] = time.time,
        ooms: Callable[[], Sequence[OomRecord]] | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._metrics = metrics
        self._clock = clock
        if ooms is None and settings.oom_configmap is not None:
            from runner_sizer.recommender.oom_source import oom_reader  # noqa: PLC0415 - kubernetes

            ooms = oom_reader(settings)
        self._read_ooms = ooms
        self._oom_records: Sequence[OomRecord] = ()
        self._ledger = Ledger()
        self._stop = threading.Event()
        self.table: Table | None = None
        self.problem = "no refresh yet"
        self.missing: list[str] = []
        metrics.table_age.set_function(self._table_age)

    def _table_age(self) -> float:
        table = self.table
        return float("nan") if table is None else max(self._clock() - table.built_at, 0.0)

    def refresh(self) -> None:
        """One refresh; raises PrometheusError (the table in service stays) or
        OomSourceError (after the table is rebuilt with the last records read)."""
        settings, ledger = self._settings, self._ledger
        oom_error = self._refresh_ooms()
        now = self._clock()
        start = max(ledger.covered_until or 0.0, now - settings.window)
        sent = self._client.queries
        try:
            read_usage(self._client, settings, ledger, start, now)
        finally:
            self._metrics.queries.inc(self._client.queries - sent)
            self._metrics.queries_last_refresh.set(self._client.queries - sent)
        settled = ledger.settle(now, settings.window)
        table = build_table(ledger.runs.values(), settings.strategy, now, self._oom_records)
        self.table = table
        self.missing = [self._how_to_enable(kind) for kind in ledger.missing(now, settings.window)]
        self._metrics.unidentified_runs.inc(settled.unidentified)
        self._metrics.identities.set(table.identities)
        self._metrics.recommendations.set(len(table.exact))
        self._metrics.runs.set(table.runs)
        self._metrics.oom_records.labels("bump").set(len(self._oom_records) - table.unusable_ooms)
        self._metrics.oom_records.labels("unusable").set(table.unusable_ooms)
        self._metrics.oom_bumps.set(table.oom_bumps)
        if oom_error is not None:
            raise oom_error

    def _refresh_ooms(self) -> OomSourceError | None:
        """Reads the OOM records; on failure the last ones read stay, and the error is returned."""
        if self._read_ooms is None:
            return None
        try:
            self._oom_records = self._read_ooms()
        except OomSourceError as error:
            return error
        return None

    def _how_to_enable(self, kind: str) -> str:
        if kind == "identity":
            kind = f"identity/{self._settings.identity_source}"
        return HOW_TO_ENABLE[kind]

    def run(self) -> None:
        """Refresh until stopped; sooner again after a failure."""
        while not self._stop.is_set():
            started = time.monotonic()
            wait = self._settings.refresh_interval
            try:
                self.refresh()
                self.problem = ""
                log.info(
                    "table refreshed",
                    extra={
                        "seconds": round(time.monotonic() - started, 3),
                        "identities": self.table.identities if self.table else 0,
                        "missing": self.missing,
                    },
                )
            except (PrometheusError, OomSourceError) as error:
                self._fail(str(error))
                wait = min(wait, RETRY_AFTER_FAILURE)
            except Exception as error:  # a bug must not stop refreshing for good
                log.exception("refresh failed")
                self._fail(f"{type(error).__name__}: {error}"[:300])
                wait = min(wait, RETRY_AFTER_FAILURE)
            finally:
                self._metrics.refresh_seconds.observe(time.monotonic() - started)
            self._stop.wait(wait)

    def _fail(self, problem: str) -> None:
        self.problem = problem
        self._metrics.refresh_errors.inc()
        log.warning("refresh failed; serving the last good table", extra={"error": problem})

    def start(self) -> Refresher:
        threading.Thread(target=self.run, name="refresher", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
