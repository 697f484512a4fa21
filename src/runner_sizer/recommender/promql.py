"""PromQL the recommender sends, and what it makes of the answers. Pure.

Per refresh and per chunk of time, two instant queries whatever the number of
jobs: one for the usage facts of every build container, one for the identity
of every pod. Each answer holds one sample per pod and fact, not per scrape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

CPU = "container_cpu_usage_seconds_total"
MEMORY = "container_memory_working_set_bytes"
INFO = "runner_sizer_job_info"
KSM_LABELS = "kube_pod_labels"
KSM_ANNOTATIONS = "kube_pod_annotations"
# kube-state-metrics' names for the runner's labels and annotations (its sanitising:
# every character outside [a-zA-Z0-9_] becomes `_`, behind `label_`/`annotation_`).
KSM_PROJECT_ID = "label_project_runner_gitlab_com_id"
KSM_PROJECT_NAME = "label_project_runner_gitlab_com_name"
KSM_ROOT_NAMESPACE = "label_project_runner_gitlab_com_root_namespace"
KSM_JOB_NAME = "annotation_job_runner_gitlab_com_name"
KSM_REF = "annotation_job_runner_gitlab_com_ref"
# Prometheus refuses a range query over 11,000 points per series; subqueries here
# keep to the same bound, which VictoriaMetrics and Mimir also accept.
MAX_POINTS = 11_000
MAX_CHUNK_SECONDS = 86_400.0

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\\n]|\\.)*)"\s*')


class IdentitySource(StrEnum):
    RUNNER_SIZER = "runner-sizer"
    KUBE_STATE_METRICS = "kube-state-metrics"


class Fact(StrEnum):
    """What the usage query tells about one pod; `first_*` and `last_*` come in pairs."""

    FIRST_TIME = "first_time"
    FIRST_CPU = "first_cpu"
    LAST_TIME = "last_time"
    LAST_CPU = "last_cpu"
    PEAK_MEMORY = "peak_memory"


PodKey = tuple[str, str]  # namespace, pod


@dataclass(frozen=True, slots=True)
class Identity:
    project_id: str
    org: str
    repo: str
    ref: str
    job: str


def label_matchers(value: str) -> tuple[str, ...]:
    """`cluster="prod",region=~"eu.*"` → its matchers; ValueError for anything else."""
    matchers: list[str] = []
    rest = value.strip()
    while rest:
        match = _MATCHER.match(rest)
        if not match:
            raise ValueError(f'{value!r} is not a list of matchers such as cluster="prod"')
        name, op, text = match.groups()
        matchers.append(f'{name}{op}"{text}"')
        rest = rest[match.end() :]
        if rest and not rest.startswith(","):
            raise ValueError(f"{value!r}: matchers are separated by commas")
        rest = rest[1:].strip()
    return tuple(matchers)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _seconds(value: float) -> str:
    return f"{round(value * 1000)}ms" if value != int(value) else f"{int(value)}s"


def selector(metric: str, matchers: Sequence[str]) -> str:
    return f"{metric}{{{','.join(matchers)}}}"


def chunk_seconds(step: float) -> float:
    """The longest chunk a query may cover: a day, and never past MAX_POINTS steps."""
    return min(MAX_CHUNK_SECONDS, step * MAX_POINTS)


def chunks(start: float, end: float, longest: float) -> list[tuple[float, float]]:
    """(start, end] cut into consecutive pieces of at most `longest` seconds."""
    pieces = []
    while start < end:
        stop = min(start + longest, end)
        pieces.append((start, stop))
        start = stop
    return pieces


def _fact(expression: str, fact: Fact) -> str:
    return f'label_replace({expression}, "fact", "{fact}", "", "")'


def usage_query(container: str, matchers: Sequence[str], span: float, step: float) -> str:
    """Every build container's facts over the `span` seconds before the query time.

    The counter's last value (the CPU-seconds it used) and the timestamp of that
    sample are exact. The first pair comes from the first `step` of a subquery
    grid, so value and time belong to one sample and `(last - first) / (t_last -
    t_first)` is mean cores whatever the scrape interval.
    """
    wanted = [*matchers, f'container="{_escape(container)}"']
    cpu, memory = selector(CPU, wanted), selector(MEMORY, wanted)
    window, grid = _seconds(span), f"{_seconds(span)}:{_seconds(step)}"
    by = "by (namespace, pod)"
    parts = [
        _fact(f"min {by} (min_over_time(timestamp({cpu})[{grid}]))", Fact.FIRST_TIME),
        _fact(f"min {by} (min_over_time({cpu}[{grid}]))", Fact.FIRST_CPU),
        _fact(f"max {by} (max_over_time(timestamp({cpu})[{grid}]))", Fact.LAST_TIME),
        _fact(f"max {by} (max_over_time({cpu}[{window}]))", Fact.LAST_CPU),
        _fact(f"max {by} (max_over_time({memory}[{window}]))", Fact.PEAK_MEMORY),
    ]
    return " or ".join(parts)


# Scraped without `honorLabels`, the series' own namespace and pod labels become
# exported_*; both spellings are kept and the exported one wins.
_POD_LABELS = ("namespace", "pod", "exported_namespace", "exported_pod")


def identity_query(source: IdentitySource, matchers: Sequence[str], span: float) -> str:
    """Every runner pod's identity seen in the `span` seconds before the query time."""
    window = _seconds(span)
    if source is IdentitySource.RUNNER_SIZER:
        labels = (*_POD_LABELS, "project_id", "root_namespace", "project", "ref", "job_name")
        by = ", ".join(labels)
        return f"max by ({by}) (max_over_time({selector(INFO, matchers)}[{window}]))"
    pod_labels = (*_POD_LABELS, KSM_PROJECT_ID, KSM_PROJECT_NAME, KSM_ROOT_NAMESPACE)
    annotations = (*_POD_LABELS, KSM_JOB_NAME, KSM_REF)
    on_labels = selector(KSM_LABELS, [*matchers, f'{KSM_PROJECT_ID}!=""'])
    on_annotations = selector(KSM_ANNOTATIONS, [*matchers, f'{KSM_JOB_NAME}!=""'])
    return (
        f"max by ({', '.join(pod_labels)}) (max_over_time({on_labels}[{window}])) or "
        f"max by ({', '.join(annotations)}) (max_over_time({on_annotations}[{window}]))"
    )


def _label(metric: Mapping[str, str], name: str) -> str:
    return metric.get(f"exported_{name}") or metric.get(name) or ""


def _pod(metric: Mapping[str, str]) -> PodKey | None:
    namespace, pod = _label(metric, "namespace"), _label(metric, "pod")
    return (namespace, pod) if namespace and pod else None


def _samples(result: Iterable[Any]) -> Iterable[tuple[Mapping[str, str], float]]:
    """(labels, value) of each well-formed vector sample with a finite value."""
    for sample in result:
        try:
            metric, value = sample["metric"], float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if isinstance(metric, dict) and math.isfinite(value):
            yield metric, value


def parse_usage(result: Iterable[Any]) -> dict[PodKey, dict[Fact, float]]:
    facts: dict[PodKey, dict[Fact, float]] = {}
    for metric, value in _samples(result):
        pod = _pod(metric)
        try:
            fact = Fact(metric.get("fact", ""))
        except ValueError:
            continue
        if pod is not None:
            facts.setdefault(pod, {})[fact] = value
    return facts


def parse_identities(result: Iterable[Any], source: IdentitySource) -> dict[PodKey, Identity]:
    """Pods whose identity is complete (a project id may be empty: older runners)."""
    seen: dict[PodKey, dict[str, str]] = {}
    for metric, _ in _samples(result):
        pod = _pod(metric)
        if pod is None:
            continue
        fields = seen.setdefault(pod, {})
        if source is IdentitySource.RUNNER_SIZER:
            fields |= {
                "project_id": metric.get("project_id", ""),
                "org": metric.get("root_namespace", ""),
                "repo": metric.get("project", ""),
                "ref": metric.get("ref", ""),
                "job": metric.get("job_name", ""),
            }
        elif KSM_PROJECT_ID in metric:
            fields |= {
                "project_id": metric[KSM_PROJECT_ID],
                "org": metric.get(KSM_ROOT_NAMESPACE, ""),
                "repo": metric.get(KSM_PROJECT_NAME, ""),
            }
        else:
            fields |= {"ref": metric.get(KSM_REF, ""), "job": metric.get(KSM_JOB_NAME, "")}
    return {
        pod: Identity(**fields)
        for pod, fields in seen.items()
        if all(fields.get(name) for name in ("org", "repo", "ref", "job"))
        and "project_id" in fields
    }
