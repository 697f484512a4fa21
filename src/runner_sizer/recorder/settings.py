"""Recorder configuration: flags with `RECORDER_*` env fallback, fail-fast checks."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runner_sizer.history.keys import HistoryKey
from runner_sizer.history.ledger import DEFAULT_MAX_BYTES
from runner_sizer.history.recordset import (
    DEFAULT_COMPACT_AFTER,
    DEFAULT_SHARDS,
    MAX_SHARDS,
    SHARD_BYTES,
)
from runner_sizer.options import (
    LOG_LEVELS,
    Choice,
    Option,
    OptionError,
    boolean,
    duration,
    host_port,
    parse_options,
    positive_float,
    positive_int,
    setting,
)

ENV_PREFIX = "RECORDER_"
# The apiserver refuses a ConfigMap whose data (keys plus values) is over 1 MiB.
CONFIGMAP_DATA_LIMIT = 1024 * 1024
# The history's head holds at most --compact-after-bytes of records and its layout.
MAX_COMPACT_AFTER = 900 * 1024
# Worst case of one history entry, in bytes: a data key is at most 253 characters
# (longer keys are hashed), and each placement is `node@unix-ms` plus a comma, with
# a node name (a DNS subdomain) of at most 253 ASCII characters and 13 digits of
# milliseconds (enough until the year 2286).
_KEY_BYTES = 253
_PLACEMENT_BYTES = 253 + len("@") + 13 + len(",")


def history_bound(max_keys: int, max_nodes_per_key: int, max_bytes: int) -> int:
    """The most bytes the history data can reach: both eviction bounds hold."""
    return min(max_bytes, max_keys * (_KEY_BYTES + max_nodes_per_key * _PLACEMENT_BYTES))


@dataclass(frozen=True)
class RecorderSettings:
    listen_host: str = "0.0.0.0"  # noqa: S104 - probes and scrapes come over the pod network
    listen_port: int = 8080
    log_level: str = "info"
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()
    label_selector: str = "pod"
    history_key: HistoryKey = HistoryKey.RUNNER_PROJECT
    configmap_name: str = "runner-sizer-history"
    configmap_namespace: str = "ci-sizer"
    flush_interval: float = 1.0
    max_nodes_per_key: int = 3
    max_keys: int = 5000
    max_bytes: int = DEFAULT_MAX_BYTES
    history_shards: int = DEFAULT_SHARDS
    compact_after_bytes: int = DEFAULT_COMPACT_AFTER
    oom_configmap: str = "runner-sizer-ooms"
    oom_window: float = 14 * 86400.0
    oom_max_records: int = 5000
    prune_deleted_nodes: bool = True
    leader_elect: bool = True
    lease_name: str = "runner-sizer-recorder"
    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = ""


def _namespaces(value: str) -> tuple[str, ...]:
    return tuple(sorted({n.strip() for n in value.split(",") if n.strip()}))


OPTIONS: list[Option] = [
    ("listen-addr", host_port, ":8080", "plain-HTTP address for /healthz, /readyz, /metrics"),
    ("log-level", LOG_LEVELS, "info", "debug, info, warning or error"),
    ("kubeconfig", str, None, "kubeconfig path (default: in-cluster)"),
    ("namespaces", _namespaces, "", "comma-separated namespaces to watch (default: all)"),
    (
        "label-selector",
        str,
        "pod",
        "selects runner job pods (the `pod` label exists on every runner)",
    ),
    (
        "history-key",
        Choice.of_enum(HistoryKey),
        "runner-project",
        "runner-project, project or project-job",
    ),
    ("configmap-name", str, "runner-sizer-history", "history ConfigMap name"),
    ("configmap-namespace", str, None, "its namespace (default: POD_NAMESPACE or ci-sizer)"),
    ("flush-interval", positive_float, "1", "seconds between batched ConfigMap writes"),
    ("max-nodes-per-key", positive_int, "3", "distinct nodes kept per key, most recent first"),
    ("max-keys", positive_int, "5000", "keys kept; least recently used beyond are evicted"),
    (
        "max-bytes",
        positive_int,
        str(DEFAULT_MAX_BYTES),
        "history size bound (at most --history-shards x 768 KiB; the bound is the smaller "
        "of this and --max-keys entries of the largest size)",
    ),
    (
        "history-shards",
        positive_int,
        str(DEFAULT_SHARDS),
        f"ConfigMaps the history is sharded into (1-{MAX_SHARDS}); a change moves it",
    ),
    (
        "compact-after-bytes",
        positive_int,
        str(DEFAULT_COMPACT_AFTER),
        "changes kept in the history's head ConfigMap before the shards are rewritten",
    ),
    ("oom-configmap", str, "runner-sizer-ooms", "OOM kill records ConfigMap, beside the history"),
    ("oom-window", duration, "14d", "how long OOM kills are kept (300, 5m, 14d)"),
    (
        "oom-max-records",
        positive_int,
        "5000",
        "OOM kills kept, oldest evicted first (their ConfigMap also stays within 900 KiB)",
    ),
    (
        "prune-deleted-nodes",
        boolean,
        "true",
        "forget nodes that are deleted (needs list/watch nodes)",
    ),
    ("leader-elect", boolean, "true", "only the Lease holder writes (run several replicas)"),
    ("lease-name", str, "runner-sizer-recorder", "Lease name, in the ConfigMap's namespace"),
    ("lease-duration", positive_int, "15", "seconds a leader's lease lasts without renewal"),
    ("renew-deadline", positive_float, "10", "seconds a leader keeps leading without a renewal"),
    ("retry-period", positive_float, "2", "seconds between lease attempts"),
    ("identity", str, None, "leader identity (default: POD_NAME or the hostname)"),
]


def load_settings(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> RecorderSettings:
    values = parse_options(
        "runner-sizer-recorder",
        "Watches GitLab Runner job pods and records runner→node history in a ConfigMap.",
        OPTIONS,
        prefix=ENV_PREFIX,
        argv=argv,
        environ=environ,
    )
    if values["renew_deadline"] >= values["lease_duration"]:
        raise OptionError(
            f"{setting(ENV_PREFIX, 'renew-deadline')}: must be below --lease-duration"
        )
    if values["retry_period"] >= values["renew_deadline"]:
        raise OptionError(f"{setting(ENV_PREFIX, 'retry-period')}: must be below --renew-deadline")
    bound = history_bound(values["max_keys"], values["max_nodes_per_key"], values["max_bytes"])
    if values["history_shards"] > MAX_SHARDS:
        raise OptionError(f"{setting(ENV_PREFIX, 'history-shards')}: at most {MAX_SHARDS}")
    # One shard holds it all (nothing to hash unevenly): the object's limit, as before shards.
    shards = values["history_shards"]
    capacity = CONFIGMAP_DATA_LIMIT if shards == 1 else shards * SHARD_BYTES
    if bound > capacity:
        raise OptionError(
            f"{setting(ENV_PREFIX, 'max-bytes')}: the history could reach {bound} bytes, over "
            f"what {shards} shard(s) hold ({capacity}); lower "
            "--max-bytes or --max-keys, or raise --history-shards"
        )
    if values["compact_after_bytes"] > MAX_COMPACT_AFTER:
        raise OptionError(
            f"{setting(ENV_PREFIX, 'compact-after-bytes')}: at most {MAX_COMPACT_AFTER} "
            f"(the head is one ConfigMap of {CONFIGMAP_DATA_LIMIT} bytes)"
        )
    if values["oom_configmap"] == values["configmap_name"]:
        raise OptionError(
            f"{setting(ENV_PREFIX, 'oom-configmap')}: must differ from --configmap-name"
        )
    host, port = values.pop("listen_addr")
    values["configmap_namespace"] = values["configmap_namespace"] or environ.get(
        "POD_NAMESPACE", "ci-sizer"
    )
    values["identity"] = values["identity"] or environ.get("POD_NAME") or socket.gethostname()
    return RecorderSettings(listen_host=host, listen_port=port, **values)
