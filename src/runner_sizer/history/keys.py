"""Which pods share a cache: the history key, and how it is stored in a ConfigMap."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from runner_sizer.identity import JOB_NAME_ANNOTATION, LEGACY_POD_LABEL, POD_LABEL, PROJECT_ID

_CONCURRENT_SUFFIX = re.compile(r"-concurrent-\d+$")
_CONFIGMAP_KEY_SAFE = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_MAX_CONFIGMAP_KEY = 253
_ENCODED_PREFIX = "b64."
_HASHED_PREFIX = "sha256."
_HASHED = re.compile(r"^sha256\.[0-9a-f]{64}$")


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
    """The history key of a pod from its metadata, or None if it has none.

    A key too long to store reversibly is its hash (see `to_configmap_key`), so
    the recorder, the webhook and what is stored all name it the same way.
    """
    key = _DERIVE[kind](metadata.get("labels") or {}, metadata.get("annotations") or {})
    return None if key is None else from_configmap_key(to_configmap_key(key))


def to_configmap_key(key: str) -> str:
    """A valid ConfigMap data key (`[-._a-zA-Z0-9]`, at most 253 characters).

    Safe keys are stored as they are, others base64url-encoded behind `b64.`;
    a key whose encoding would be too long is stored as `sha256.<hex digest>`,
    which reads back as itself (it cannot be decoded).
    """
    if _HASHED.match(key):
        return key
    if _CONFIGMAP_KEY_SAFE.match(key) and not key.startswith((_ENCODED_PREFIX, _HASHED_PREFIX)):
        return key
    encoded = _ENCODED_PREFIX + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    if len(encoded) <= _MAX_CONFIGMAP_KEY:
        return encoded
    return _HASHED_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def from_configmap_key(stored: str) -> str:
    """The history key of a stored key; a hashed key is its own history key."""
    if not stored.startswith(_ENCODED_PREFIX):
        return stored
    encoded = stored[len(_ENCODED_PREFIX) :]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
