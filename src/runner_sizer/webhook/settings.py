"""Webhook configuration: the Go webhook's flags, `WEBHOOK_*` env fallback, fail-fast checks."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runner_sizer.certs import settings as certs_settings
from runner_sizer.certs.settings import Management, SecretRef
from runner_sizer.history.keys import HistoryKey
from runner_sizer.options import (
    LOG_LEVELS,
    Choice,
    Option,
    OptionError,
    boolean,
    env_var,
    existing_file,
    host_port,
    parse_options,
    positive_float,
    positive_int,
    setting,
)
from runner_sizer.webhook.quantity import FORMATTERS, parse_quantity
from runner_sizer.webhook.sizing import PLAUSIBLE_MAXIMUM, Bounds, SizingMode
from runner_sizer.webhook.watched import TokenField, TokenSource

ENV_PREFIX = "WEBHOOK_"
# Container names are DNS-1123 labels.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# What GitLab Runner names its own containers, besides the build container.
RUNNER_CONTAINERS = ("helper", "init-permissions")


class SettingsError(OptionError):
    """Invalid configuration; the message names the setting."""


@dataclass(frozen=True)
class WebhookSettings:
    """Everything the webhook is told. Tokens are excluded from repr."""

    listen_host: str = "0.0.0.0"  # noqa: S104 - a webhook serves the cluster network
    listen_port: int = 8443
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_secret: SecretRef | None = None
    tls_management: Management | None = None
    metrics_host: str = "0.0.0.0"  # noqa: S104
    metrics_port: int = 9090
    log_level: str = "info"
    workers: int = 2
    sizer_url: str = ""
    # The current token: re-read from its file when that changes.
    sizer_read_token: TokenField = field(default=TokenField(), repr=False)
    sizer_push_token: TokenField = field(default=TokenField(), repr=False)
    sizer_ca_file: Path | None = None
    sidecar_image: str = ""
    sidecar_name: str = "sizer-collector"
    sidecar_volume_mounts: tuple[tuple[str, str], ...] = ()
    enable_sizing: bool = True
    enable_sidecar: bool = True
    enable_affinity: bool = True
    watch_namespace_rules: bool = True
    dry_run: bool = False
    build_container: str = "build"
    sizing_mode: SizingMode = SizingMode.REQUESTS_AND_LIMITS
    bounds: Bounds = field(default_factory=Bounds)
    default_requests: Mapping[str, Decimal] = field(default_factory=dict)
    deadline_seconds: float = 1.5
    shed_after_seconds: float = 0.05
    receiver_timeout_seconds: float = 1.0
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 10.0
    cache_ttl_seconds: float = 300.0
    negative_cache_ttl_seconds: float = 30.0
    cache_size: int = 10_000
    token_refresh_margin_seconds: float = 60.0
    job_timeout_seconds: float = 3600.0
    cache_volume_prefix: str = "runner-cache"
    history_key: HistoryKey = HistoryKey.RUNNER_PROJECT
    affinity_max_nodes: int = 3
    history_configmap: str = "runner-sizer-history"
    history_namespace: str = "ci-sizer"
    kubeconfig: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    worker_tmp_dir: str | None = None

    @property
    def sidecar_enabled(self) -> bool:
        return self.enable_sidecar and bool(self.sidecar_image) and bool(self.sizer_url)

    @property
    def sizing_enabled(self) -> bool:
        return self.enable_sizing and bool(self.sizer_url)

    @property
    def needs_namespace_rules(self) -> bool:
        """Sizing and the sidecar change what LimitRanges and quotas see."""
        return self.watch_namespace_rules and (self.sizing_enabled or self.sidecar_enabled)

    @property
    def needs_kubernetes(self) -> bool:
        return self.enable_affinity or self.needs_namespace_rules or self.tls_secret is not None


def _url(value: str) -> str:
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


def _mounts(value: str) -> tuple[tuple[str, str], ...]:
    mounts = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        name, sep, path = item.partition(":")
        if not sep or not name or not path.startswith("/"):
            raise ValueError("expected name:/absolute/path[,name:/path]")
        mounts.append((name, path))
    return tuple(mounts)


def _quantity(resource: str) -> Callable[[str], Decimal]:
    """A converter for a `resource` quantity between 0 and the plausible maximum."""
    highest = PLAUSIBLE_MAXIMUM[resource]

    def convert(value: str) -> Decimal:
        try:
            quantity = parse_quantity(value)
            plausible = 0 <= quantity <= highest
        except Exception:  # any parser failure (overflow included) is a bad value
            plausible = False
        if not plausible:
            limit = FORMATTERS[resource](highest)
            raise ValueError(f"{value!r} is not a {resource} quantity between 0 and {limit}")
        return quantity

    return convert


def _seconds_or_off(value: str) -> float:
    seconds = float(value)
    if not 0 <= seconds < 5:
        raise ValueError("must be 0 (off) or seconds under the 5s webhook timeout")
    return seconds


def _container_name(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label ([a-z0-9-], at most 63)")
    return value


# flag, parser, default (as text, like the env), help
OPTIONS: list[Option] = [
    ("listen-addr", host_port, ":8443", "HTTPS address for admission reviews"),
    ("tls-cert-file", existing_file, None, "serving certificate (re-read when it changes)"),
    ("tls-key-file", existing_file, None, "serving key"),
    *certs_settings.OPTIONS,
    ("metrics-addr", host_port, ":9090", "plain-HTTP address for /metrics"),
    ("log-level", LOG_LEVELS, "info", "debug, info, warning or error"),
    ("workers", positive_int, "2", "gunicorn worker processes"),
    ("sizer-url", _url, "", "sizer receiver base URL; empty disables sizing and the sidecar"),
    ("sizer-read-token", str, "", "bearer token for sizing reads"),
    ("sizer-read-token-file", existing_file, None, "file holding the read token"),
    ("sizer-push-token", str, "", "bearer token that mints scoped collector push tokens"),
    ("sizer-push-token-file", existing_file, None, "file holding the push token"),
    ("sizer-ca-file", existing_file, None, "CA bundle for a receiver behind a private CA"),
    ("sizer-sidecar-image", str, "", "collector image; empty disables the sidecar"),
    (
        "sidecar-name",
        _container_name,
        "sizer-collector",
        "name of the injected native sidecar (not the build, helper or init-permissions name)",
    ),
    ("sidecar-volume-mounts", _mounts, "", "name:/path,... mounted read-only if the pod has them"),
    ("enable-sizing", boolean, "true", "apply the receiver's resource recommendation"),
    ("enable-sidecar", boolean, "true", "inject the metrics collector sidecar"),
    ("enable-affinity", boolean, "true", "prefer the node where the same key ran last"),
    (
        "watch-namespace-rules",
        boolean,
        "true",
        "watch LimitRanges and ResourceQuotas, and never size or inject past them; "
        "false only where no namespace of job pods has either",
    ),
    ("dry-run", boolean, "false", "compute and annotate, but do not mutate"),
    ("build-container", _container_name, "build", "container that receives the recommendation"),
    (
        "sizing-mode",
        Choice.of_enum(SizingMode),
        "RequestsAndLimits",
        "RequestsOnly or RequestsAndLimits",
    ),
    ("min-cpu", _quantity("cpu"), None, "lower bound for cpu (at most 1024)"),
    ("max-cpu", _quantity("cpu"), None, "upper bound for cpu (at most 1024)"),
    ("min-memory", _quantity("memory"), None, "lower bound for memory (at most 1Pi)"),
    ("max-memory", _quantity("memory"), None, "upper bound for memory (at most 1Pi)"),
    (
        "default-cpu-request",
        _quantity("cpu"),
        None,
        "cpu request when the receiver has no history (at most 1024)",
    ),
    (
        "default-memory-request",
        _quantity("memory"),
        None,
        "memory request when the receiver has no history (at most 1Pi)",
    ),
    ("deadline", positive_float, "1.5", "seconds all receiver calls of one admission may take"),
    (
        "shed-after",
        _seconds_or_off,
        "0.05",
        "seconds an admission may wait for a worker before it is allowed unchanged at once "
        "(counted as shed); 0 never sheds",
    ),
    ("receiver-timeout", positive_float, "1.0", "seconds one receiver call may take"),
    ("breaker-failures", positive_int, "5", "consecutive receiver failures that open the breaker"),
    ("breaker-cooldown", positive_float, "10", "seconds the breaker stays open"),
    ("cache-ttl", positive_float, "300", "seconds a recommendation is reused"),
    ("negative-cache-ttl", positive_float, "30", "seconds a 404 (no history yet) is reused"),
    (
        "job-timeout",
        positive_float,
        "3600",
        "seconds a job may run when its pod has no job.runner.gitlab.com/timeout; "
        "a cached push token is reused only while it outlives the job",
    ),
    ("cache-size", positive_int, "10000", "entries per cache"),
    ("cache-volume-prefix", str, "runner-cache", "pods mounting such a volume get cache affinity"),
    (
        "history-key",
        Choice.of_enum(HistoryKey),
        "runner-project",
        "runner-project, project or project-job",
    ),
    ("affinity-max-nodes", positive_int, "3", "previous nodes to prefer (weights 100, 50, 25...)"),
    ("history-configmap", str, "runner-sizer-history", "the recorder's ConfigMap"),
    ("history-namespace", str, None, "its namespace (default: POD_NAMESPACE or ci-sizer)"),
    ("kubeconfig", str, None, "kubeconfig path (default: in-cluster)"),
    ("worker-tmp-dir", str, None, "gunicorn heartbeat directory (a tmpfs with a read-only root)"),
    ("max-body-bytes", positive_int, str(4 * 1024 * 1024), "largest admission review accepted"),
]


def env_name(flag: str) -> str:
    return env_var(ENV_PREFIX, flag)


def load_settings(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> WebhookSettings:
    """Flags win over `WEBHOOK_*` env; raises SettingsError naming the first bad setting."""
    description = "Mutating admission webhook for GitLab Runner job pods."
    try:
        values = parse_options(
            "runner-sizer-webhook",
            description,
            OPTIONS,
            prefix=ENV_PREFIX,
            argv=argv,
            environ=environ,
        )
    except OptionError as error:
        raise SettingsError(str(error)) from None
    return _assemble(values, environ)


def _token(values: dict[str, Any], name: str) -> TokenSource:
    flag = name.replace("_", "-")
    path: Path | None = values[f"{name}_file"]
    try:
        return TokenSource(values[name], path)
    except OSError as error:
        raise SettingsError(f"{setting(ENV_PREFIX, flag + '-file')}: {error}") from None


def _require_token(source: TokenSource, name: str, reason: str) -> None:
    """A token that is required must be there; an empty file counts as none."""
    if source.current():
        return
    flag = name.replace("_", "-")
    empty = f" ({source.path} is empty)" if source.path else ""
    raise SettingsError(
        f"{setting(ENV_PREFIX, flag)} or {setting(ENV_PREFIX, flag + '-file')}: "
        f"required {reason}{empty}"
    )


def _check_sidecar_name(values: dict[str, Any]) -> None:
    taken = (values["build_container"], *RUNNER_CONTAINERS)
    if values["sidecar_name"] in taken:
        raise SettingsError(
            f"{setting(ENV_PREFIX, 'sidecar-name')}: {values['sidecar_name']!r} is taken by "
            f"a runner container ({', '.join(taken)})"
        )


def _assemble(values: dict[str, Any], environ: Mapping[str, str]) -> WebhookSettings:
    if (values["tls_cert_file"] is None) != (values["tls_key_file"] is None):
        raise SettingsError(
            f"{setting(ENV_PREFIX, 'tls-cert-file')}/{setting(ENV_PREFIX, 'tls-key-file')}: "
            "set both or neither"
        )
    if values["tls_cert_file"] is not None and values["tls_secret"] is not None:
        raise SettingsError(f"{setting(ENV_PREFIX, 'tls-secret')}: or --tls-cert-file, not both")
    identity = environ.get("POD_NAME") or socket.gethostname()
    try:
        management = certs_settings.management(values, ENV_PREFIX, identity)
    except OptionError as error:
        raise SettingsError(str(error)) from None
    read_token, push_token = _token(values, "sizer_read_token"), _token(values, "sizer_push_token")
    if values["sizer_url"]:
        _require_token(read_token, "sizer_read_token", "with --sizer-url")
    if values["sizer_url"] and values["sizer_sidecar_image"] and values["enable_sidecar"]:
        _require_token(
            push_token,
            "sizer_push_token",
            "with --sizer-sidecar-image (or turn the sidecar off: --enable-sidecar=false)",
        )
    _check_sidecar_name(values)
    bounds = Bounds(
        minimum={
            r: values[f"min_{r}"] for r in ("cpu", "memory") if values[f"min_{r}"] is not None
        },
        maximum={
            r: values[f"max_{r}"] for r in ("cpu", "memory") if values[f"max_{r}"] is not None
        },
    )
    for resource, low in bounds.minimum.items():
        high = bounds.maximum.get(resource)
        if high is not None and low > high:
            raise SettingsError(
                f"{setting(ENV_PREFIX, f'min-{resource}')}: greater than --max-{resource}"
            )
    if values["receiver_timeout"] > values["deadline"]:
        raise SettingsError("--receiver-timeout (WEBHOOK_RECEIVER_TIMEOUT): longer than --deadline")
    if values["deadline"] >= 5:
        raise SettingsError("--deadline (WEBHOOK_DEADLINE): must stay under the 5s webhook timeout")
    listen_host, listen_port = values["listen_addr"]
    metrics_host, metrics_port = values["metrics_addr"]
    return WebhookSettings(
        listen_host=listen_host,
        listen_port=listen_port,
        tls_cert_file=values["tls_cert_file"],
        tls_key_file=values["tls_key_file"],
        tls_secret=values["tls_secret"],
        tls_management=management,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        log_level=values["log_level"],
        workers=values["workers"],
        sizer_url=values["sizer_url"],
        sizer_read_token=read_token,
        sizer_push_token=push_token,
        sizer_ca_file=values["sizer_ca_file"],
        sidecar_image=values["sizer_sidecar_image"],
        sidecar_name=values["sidecar_name"],
        sidecar_volume_mounts=values["sidecar_volume_mounts"],
        enable_sizing=values["enable_sizing"],
        enable_sidecar=values["enable_sidecar"],
        enable_affinity=values["enable_affinity"],
        watch_namespace_rules=values["watch_namespace_rules"],
        dry_run=values["dry_run"],
        build_container=values["build_container"],
        sizing_mode=values["sizing_mode"],
        bounds=bounds,
        default_requests={
            r: values[f"default_{r}_request"]
            for r in ("cpu", "memory")
            if values[f"default_{r}_request"] is not None
        },
        deadline_seconds=values["deadline"],
        shed_after_seconds=values["shed_after"],
        receiver_timeout_seconds=values["receiver_timeout"],
        breaker_failures=values["breaker_failures"],
        breaker_cooldown_seconds=values["breaker_cooldown"],
        cache_ttl_seconds=values["cache_ttl"],
        negative_cache_ttl_seconds=values["negative_cache_ttl"],
        cache_size=values["cache_size"],
        job_timeout_seconds=values["job_timeout"],
        cache_volume_prefix=values["cache_volume_prefix"],
        history_key=values["history_key"],
        affinity_max_nodes=values["affinity_max_nodes"],
        history_configmap=values["history_configmap"],
        history_namespace=values["history_namespace"] or environ.get("POD_NAMESPACE", "ci-sizer"),
        kubeconfig=values["kubeconfig"],
        max_body_bytes=values["max_body_bytes"],
        worker_tmp_dir=values["worker_tmp_dir"],
    )
