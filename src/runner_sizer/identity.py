"""Who a runner job pod is: the one identity function every component uses.

Trust order: labels in the `runner.gitlab.com` namespaces are set by the runner and
cannot be overridden by users; annotations can be overwritten through
`pod_annotations`; build-container env values are claims of the job (job-level
`variables:` can override `CI_PROJECT_PATH`). So protected labels come first, then
annotations, then env. Runners older than 17.9 set no protected labels: there an
identity read from env is trusted only when its `CI_PROJECT_ID` matches the project
id in the runner-generated pod name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import quote

POD_LABEL = "job.runner.gitlab.com/pod"  # protected, runner >= 17.9
LEGACY_POD_LABEL = "pod"  # every version, but user-overridable
PROJECT_ID = "project.runner.gitlab.com/id"
ROOT_NAMESPACE_LABEL = "project.runner.gitlab.com/root-namespace"
PROJECT_NAME_LABEL = "project.runner.gitlab.com/name"
REF_ANNOTATION = "job.runner.gitlab.com/ref"
JOB_NAME_ANNOTATION = "job.runner.gitlab.com/name"
JOB_ID_ANNOTATION = "job.runner.gitlab.com/id"
TIMEOUT_ANNOTATION = "job.runner.gitlab.com/timeout"

_RUNNER_POD_LABEL = re.compile(r"^runner-[A-Za-z0-9_.]+-project-\d+-concurrent-\d+$")
_PROJECT_IN_NAME = re.compile(r"^runner-[A-Za-z0-9_.]+-project-(\d+)-concurrent-\d+")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class IdentityGap(StrEnum):
    """Why a pod has no identity to size or mint a token for."""

    NO_IDENTITY = "no_identity"
    UNVERIFIED_IDENTITY = "unverified_identity"


@dataclass(frozen=True)
class JobIdentity:
    org: str
    repo: str
    workflow: str
    job: str
    run_id: str
    project_id: str = ""  # empty when unknown; root namespace + name is not unique

    def receiver_path(self) -> str:
        """`{org}/{repo}/{workflow}/{job}`, each segment percent-encoded ('/' too)."""
        return _receiver_path(self.org, self.repo, self.workflow, self.job)

    def cache_key(self) -> str:
        """Receiver path plus project id: what every per-job cache is keyed by."""
        return f"{self.project_id}:{self.receiver_path()}"


@lru_cache(maxsize=4096)
def _receiver_path(*segments: str) -> str:
    """Remembered: the same jobs run again and again, and each admission asks up to three
    times (sizing, push token, their cache keys); quoting was ~5 % of a webhook worker."""
    return "/".join(_segment(s) for s in segments)


def _segment(value: str) -> str:
    # `.` and `..` would be collapsed by URL normalisation (RFC 3986 §5.2.4).
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def is_runner_pod(metadata: Mapping[str, Any]) -> bool:
    """GitLab Runner's labels (17.9+ or the legacy `pod` label) or job annotations."""
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return (
        POD_LABEL in labels
        or bool(_RUNNER_POD_LABEL.match(str(labels.get(LEGACY_POD_LABEL, ""))))
        or JOB_ID_ANNOTATION in annotations
    )


def has_protected_labels(metadata: Mapping[str, Any]) -> bool:
    """Runner >= 17.9: the protected pod label is there."""
    return POD_LABEL in (metadata.get("labels") or {})


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """Literal env values of a container (valueFrom entries are skipped)."""
    return {
        e["name"]: e["value"]
        for e in container.get("env") or []
        if isinstance(e, dict)
        and isinstance(e.get("value"), str)
        and isinstance(e.get("name"), str)
    }


def project_id_in_pod_name(metadata: Mapping[str, Any]) -> str:
    """The project id the runner wrote into the pod name (or generateName); '' if none."""
    name = str(metadata.get("name") or metadata.get("generateName") or "")
    match = _PROJECT_IN_NAME.match(name)
    return match.group(1) if match else ""


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    return value if isinstance(value, str) else ""


def job_identity(
    metadata: Mapping[str, Any], build_env: Mapping[str, str]
) -> JobIdentity | IdentityGap:
    """The job's identity: protected labels, then annotations, then env (verified)."""
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    path = build_env.get("CI_PROJECT_PATH", "")
    org = (
        _text(labels, ROOT_NAMESPACE_LABEL)
        or build_env.get("CI_PROJECT_ROOT_NAMESPACE")
        or (path.split("/", 1)[0] if "/" in path else "")
    )
    repo = (
        _text(labels, PROJECT_NAME_LABEL)
        or build_env.get("CI_PROJECT_NAME")
        or (path.rsplit("/", 1)[-1] if "/" in path else "")
    )
    workflow = _text(annotations, REF_ANNOTATION) or build_env.get("CI_COMMIT_REF_NAME", "")
    job = _text(annotations, JOB_NAME_ANNOTATION) or build_env.get("CI_JOB_NAME", "")
    run_id = _text(annotations, JOB_ID_ANNOTATION) or build_env.get("CI_JOB_ID", "")
    if has_protected_labels(metadata):
        project_id = (
            _text(labels, PROJECT_ID)
            or _text(annotations, PROJECT_ID)
            or build_env.get("CI_PROJECT_ID", "")
        )
    else:
        project_id = project_id_in_pod_name(metadata)
        claimed = build_env.get("CI_PROJECT_ID", "")
        if not (org and repo and workflow and job):
            return IdentityGap.NO_IDENTITY
        if not project_id or claimed != project_id:
            return IdentityGap.UNVERIFIED_IDENTITY
    if not (org and repo and workflow and job):
        return IdentityGap.NO_IDENTITY
    return JobIdentity(org, repo, workflow, job, run_id, project_id)


def job_timeout_seconds(metadata: Mapping[str, Any]) -> float | None:
    """The job timeout the runner annotates (Go duration such as `2h3m0.5s`), if readable."""
    raw = _text(metadata.get("annotations") or {}, TIMEOUT_ANNOTATION).strip()
    if not raw:
        return None
    parts = _GO_DURATION_PART.findall(raw)
    if not parts or "".join(number + unit for number, unit in parts) != raw:
        return None
    return sum(float(number) * _GO_DURATION_UNITS[unit] for number, unit in parts)
