"""A real Prometheus server on loopback, with history backfilled before it starts.

History goes in through `promtool tsdb create-blocks-from openmetrics`, which (checked
on Prometheus 3.16) fails without the closing `# EOF`, silently reads millisecond
timestamps as seconds and silently drops a series' out-of-order samples; the writer
below emits `# EOF`, rejects millisecond (and future) timestamps and sorts each
series. A backfilled sample in the future would make the server refuse every scrape
older than it ("out of bounds"). Retention counts from the newest block, not from
now, so the server keeps 100 years. Prometheus 3 range selectors are left-open:
`x[5m]` at t excludes a sample at t-5m. Backfilled series have no staleness markers.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from runner_sizer.devcluster.binaries import Binaries
from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.service_process import ServiceProcess

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Unix seconds stay below this until the year 5138; milliseconds of today are above.
_LATEST_SECONDS = 1e11


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    samples: Sequence[tuple[float, float]]  # (unix seconds, value)


@dataclass(frozen=True)
class Family:
    """One metric: its name as queried (`..._total` for a counter) and its series."""

    name: str
    kind: Literal["counter", "gauge", "unknown"]
    series: Iterable[Series]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(labels: Mapping[str, str]) -> str:
    for name in labels:
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"invalid label name {name!r}")
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(labels.items()))
    return f"{{{inner}}}" if inner else ""


def openmetrics_lines(
    families: Iterable[Family], not_after: float = _LATEST_SECONDS
) -> Iterator[str]:
    """OpenMetrics text for promtool's backfill, line by line, ending with `# EOF`.

    Families must have distinct names (OpenMetrics forbids interleaving them), and
    timestamps be unix seconds no later than `not_after`.
    """
    seen: set[str] = set()
    for family in families:
        if not _METRIC_NAME.match(family.name) or family.name in seen:
            raise ValueError(f"invalid or repeated metric name {family.name!r}")
        seen.add(family.name)
        # An OpenMetrics counter family is named without the `_total` of its samples.
        typed = family.name.removesuffix("_total") if family.kind == "counter" else family.name
        yield f"# TYPE {typed} {family.kind}\n"
        for series in family.series:
            labels = _labels(series.labels)
            for at, value in sorted(series.samples):
                if not 0 <= at <= min(not_after, _LATEST_SECONDS):
                    raise ValueError(f"timestamp {at} is not unix seconds up to {not_after}")
                yield f"{family.name}{labels} {_number(value)} {_number(at)}\n"
    yield "# EOF\n"


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scrape_config(
    job: str,
    target: str,
    *,
    labels: Mapping[str, str] | None = None,
    honor_labels: bool = False,
    metrics_path: str = "/metrics",
) -> dict[str, Any]:
    """A static scrape job for one loopback `host:port`; `labels` are its target labels."""
    if not _is_loopback(urlsplit(f"//{target}").hostname or ""):
        raise ValueError(f"scrape target {target!r} is not on loopback")
    return {
        "job_name": job,
        "honor_labels": honor_labels,
        "metrics_path": metrics_path,
        "static_configs": [{"targets": [target], "labels": dict(labels or {})}],
    }


class PrometheusError(RuntimeError):
    """The HTTP API answered with an error."""


@dataclass
class PrometheusServer:
    """`prometheus` on 127.0.0.1:port, its data in a temporary directory.

    Call `backfill` (any number of times) before `start`; scrape configs come from
    `scrape_config`, scraped and evaluated every `interval`.
    """

    binaries: Binaries
    scrape_configs: list[dict[str, Any]] = field(default_factory=list)
    interval: str = "1s"
    extra_args: list[str] = field(default_factory=list)
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="runner-sizer-prom-"))
    )
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.process = ServiceProcess("prometheus", self.workdir / "prometheus.log")
        self.data_dir.mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def backfill(self, families: Iterable[Family], max_block_duration: str = "24h") -> None:
        """Write `families` as TSDB blocks into the data directory (before `start`).

        Samples must lie in the past. Blocks span up to `max_block_duration`: 14 days of
        history in 2 h blocks took 5 times as long to write.
        """
        if self.process.running:
            raise RuntimeError("backfill before start: a running server does not load blocks")
        with tempfile.NamedTemporaryFile("w", suffix=".om", dir=self.workdir) as source:
            source.writelines(openmetrics_lines(families, not_after=time.time()))
            source.flush()
            result = subprocess.run(
                [
                    str(self.binaries.promtool),
                    "tsdb",
                    "create-blocks-from",
                    f"--max-block-duration={max_block_duration}",
                    "--quiet",
                    "openmetrics",
                    source.name,
                    str(self.data_dir),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            raise RuntimeError(f"promtool backfill failed: {result.stdout}{result.stderr}")

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        config = self.workdir / "prometheus.yml"
        # YAML is a superset of JSON.
        config.write_text(
            json.dumps(
                {
                    "global": {
                        "scrape_interval": self.interval,
                        "scrape_timeout": self.interval,
                        "evaluation_interval": self.interval,
                    },
                    "scrape_configs": self.scrape_configs,
                }
            )
        )
        self.process.spawn(
            [
                str(self.binaries.prometheus),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # Targets are picked up after this (hidden flag, 5 s by default).
                f"--scrape.discovery-reload-interval={self.interval}",
                *self.extra_args,
            ],
            {},
        )
        self.process.wait_until_ok(f"{self.url}/-/ready", timeout=timeout)
        return self

    def api(self, endpoint: str, **form: str | float) -> Any:
        """POST `/api/v1/<endpoint>` (form-encoded); its `data`, or PrometheusError."""
        response = requests.post(f"{self.url}/api/v1/{endpoint}", data=form, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{response.status_code} {body.get('errorType')}: {body}")
        return body["data"]

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
