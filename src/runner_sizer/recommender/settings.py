"""Recommender configuration: flags with `RECOMMENDER_*` env fallback, fail-fast checks."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from runner_sizer.options import (
    LOG_LEVELS,
    Choice,
    Option,
    OptionError,
    duration,
    existing_file,
    host_port,
    parse_options,
    positive_int,
    setting,
)
from runner_sizer.recommender.ledger import FINISHED_AFTER
from runner_sizer.recommender.promql import IdentitySource, label_matchers
from runner_sizer.recommender.strategy import StrategyParams

ENV_PREFIX = "RECOMMENDER_"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class RecommenderSettings:
    prometheus_url: str
    listen_host: str = "0.0.0.0"  # noqa: S104 - the webhook calls it over the pod network
    listen_port: int = 8080
    log_level: str = "info"
    worker_tmp_dir: str | None = None
    read_token_file: Path | None = None
    prometheus_token_file: Path | None = None
    prometheus_ca_file: Path | None = None
    query_timeout: float = 60.0
    label_matchers: tuple[str, ...] = ()
    identity_source: IdentitySource = IdentitySource.RUNNER_SIZER
    container: str = "build"
    refresh_interval: float = 300.0
    window: float = 14 * 86400.0
    step: float = 30.0
    strategy: StrategyParams = field(default_factory=StrategyParams)
    oom_configmap: tuple[str, str] | None = None  # namespace, name
    kubeconfig: str | None = None


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


def _percentile(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 100:
        raise ValueError("must be between 0 and 100")
    return number


def _margin(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1000:
        raise ValueError("must be between 0 and 1000 (percent)")
    return number


def _configmap(value: str) -> tuple[str, str] | None:
    if not value.strip():
        return None
    namespace, _, name = value.strip().partition("/")
    if not _DNS_LABEL.match(namespace) or not _DNS_SUBDOMAIN.match(name):
        raise ValueError(f"{value!r} is not NAMESPACE/NAME of a ConfigMap")
    return namespace, name


def _step(value: str) -> float:
    seconds = duration(value)
    if seconds > FINISHED_AFTER:
        raise ValueError(f"must be at most {int(FINISHED_AFTER)}s, the lookback a run's end needs")
    return seconds


OPTIONS: list[Option] = [
    ("listen-addr", host_port, ":8080", "plain-HTTP address for sizing, probes and /metrics"),
    ("log-level", LOG_LEVELS, "info", "debug, info, warning or error"),
    ("worker-tmp-dir", str, None, "gunicorn heartbeat directory (a tmpfs with a read-only root)"),
    (
        "read-token-file",
        existing_file,
        None,
        "file holding the bearer token sizing reads must send (re-read when it changes); "
        "unset: no authentication",
    ),
    ("prometheus-url", _url, None, "Prometheus-compatible HTTP API base URL (required)"),
    ("prometheus-token-file", existing_file, None, "file holding a bearer token for the API"),
    ("prometheus-ca-file", existing_file, None, "CA bundle for an API behind a private CA"),
    ("query-timeout", duration, "60s", "time one query may take"),
    (
        "label-matchers",
        label_matchers,
        "",
        'extra matchers for every series, e.g. cluster="prod"',
    ),
    (
        "identity-source",
        Choice.of_enum(IdentitySource),
        "runner-sizer",
        "runner-sizer (the recorder's runner_sizer_job_info) or kube-state-metrics "
        "(kube_pod_labels and kube_pod_annotations)",
    ),
    ("container", str, "build", "the build container's name in cAdvisor series"),
    ("refresh-interval", duration, "5m", "time between refreshes of the table"),
    ("window", duration, "14d", "how far back runs count"),
    (
        "step",
        _step,
        "30s",
        "subquery resolution: how precisely a run's first sample is found (at most 5m)",
    ),
    ("min-runs", positive_int, "5", "runs a job needs before it gets a recommendation"),
    ("max-runs", positive_int, "30", "most recent runs a recommendation is computed from"),
    ("cpu-percentile", _percentile, "75", "percentile of per-run mean cores for the cpu request"),
    (
        "memory-percentile",
        _percentile,
        "95",
        "percentile of per-run peak working set for the memory request",
    ),
    (
        "memory-margin",
        _margin,
        "15",
        "percent added to the memory request",
    ),
    (
        "limit-margin",
        _margin,
        "100",
        "percent added to the largest peak for the memory limit (100: twice the largest peak)",
    ),
    (
        "oom-configmap",
        _configmap,
        "",
        "NAMESPACE/NAME of the recorder's OOM records, read on each refresh; "
        "empty: OOM kills are not known",
    ),
    (
        "kubeconfig",
        str,
        None,
        "kubeconfig path for reading the OOM records (default: in-cluster)",
    ),
]


def load_settings(
    argv: Sequence[str], environ: Mapping[str, str] = os.environ
) -> RecommenderSettings:
    values = parse_options(
        "runner-sizer-recommender",
        "Serves sizing recommendations for GitLab Runner jobs, learnt from Prometheus.",
        OPTIONS,
        prefix=ENV_PREFIX,
        argv=argv,
        environ=environ,
    )
    if values["prometheus_url"] is None:
        raise OptionError(f"{setting(ENV_PREFIX, 'prometheus-url')}: required")
    if values["min_runs"] > values["max_runs"]:
        raise OptionError(f"{setting(ENV_PREFIX, 'min-runs')}: greater than --max-runs")
    if values["step"] >= values["window"]:
        raise OptionError(f"{setting(ENV_PREFIX, 'step')}: must be shorter than --window")
    host, port = values.pop("listen_addr")
    strategy = StrategyParams(
        min_runs=values.pop("min_runs"),
        max_runs=values.pop("max_runs"),
        cpu_percentile=values.pop("cpu_percentile"),
        memory_percentile=values.pop("memory_percentile"),
        memory_margin=values.pop("memory_margin") / 100,
        limit_margin=values.pop("limit_margin") / 100,
    )
    return RecommenderSettings(listen_host=host, listen_port=port, strategy=strategy, **values)
