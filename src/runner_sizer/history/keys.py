"""Which pods share a cache: the history key, and how it is stored in a ConfigMap."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from runner_sizer.identity import JOB_NAME_ANNOTATION, LEGACY_POD_LABEL, POD_LABEL, PROJECT_ID

_CONCURRENT_SUFFIX = re.compile(r"-concurrent-\d+$")
_CONFIGMAP_KEY_SAFE = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_ENCODED_PREFIX = "b64."


class HistoryKey(StrEnum):
    """How pods are grouped for cache affinity.

    `runner-project` works on every runner version: the `pod` label (present
    since forever) minus its `-concurrent-N` slot is `runner-<short>-project-<id>`.
    """

    RUNNER_PROJECT = "runner-project"
    PROJECT = "project"
    PROJECT_JOB = "project-job"


def _runner_project(labels: Mapping[str, str], _: Mapping[str, str]) -> str | None:
    # The protected label where the runner sets it (>= 17.9); the user-overridable
    # `pod` label only for older runners.
    pod = labels.get(POD_LABEL) if POD_LABEL in labels else labels.get(LEGACY_POD_LABEL)
    return _CONCURRENT_SUFFIX.sub("", pod) if pod else None


def _project(labels: Mapping[str, str], annotations: Mapping[str, str]) -> str | None:
    project = labels.get(PROJECT_ID) or annotations.get(PROJECT_ID)
    return f"project-{project}" if project else None


def _project_job(labels: Mapping[str, str], annotations: Mapping[str, str]) -> str | None:
    project = _project(labels, annotations)
    job = annotations.get(JOB_NAME_ANNOTATION)
    return f"{project}/{job}" if project and job else None


_DERIVE: dict[HistoryKey, Callable[[Mapping[str, str], Mapping[str, str]], str | None]] = {
    HistoryKey.RUNNER_PROJECT: _runner_project,
    HistoryKey.PROJECT: _project,
    HistoryKey.PROJECT_JOB: _project_job,
}


def history_key(kind: HistoryKey, metadata: Mapping[str, Any]) -> str | None:
    """The history key of a pod from its metadata, or None if it has none."""
    return _DERIVE[kind](metadata.get("labels") or {}, metadata.get("annotations") or {})


def to_configmap_key(key: str) -> str:
    """ConfigMap data keys allow `[-._a-zA-Z0-9]` only; others are base64url-encoded."""
    if _CONFIGMAP_KEY_SAFE.match(key) and not key.startswith(_ENCODED_PREFIX):
        return key
    encoded = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return _ENCODED_PREFIX + encoded


def from_configmap_key(stored: str) -> str:
    if not stored.startswith(_ENCODED_PREFIX):
        return stored
    encoded = stored[len(_ENCODED_PREFIX) :]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
