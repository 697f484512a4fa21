"""Pure: the OOM kill a runner pod object shows, if any.

The runner deletes a job pod about 3 s after its build container ends, so the
kill is read from whichever object shows it first: a MODIFIED event, the final
DELETED object, or a (re-)list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner_sizer.history.ledger import timestamp
from runner_sizer.history.ooms import OomRecord
from runner_sizer.identity import JobIdentity
from runner_sizer.recorder.jobinfo import BUILD_CONTAINER, identity_of
from runner_sizer.webhook.quantity import QuantityError, parse_quantity

OOM_KILLED = "OOMKilled"
SIGKILL_EXIT = 137  # 128 + SIGKILL: what a kill by the kernel's OOM killer exits with


def _build(items: object) -> Mapping[str, Any]:
    """The build container's entry in a list of containers or statuses; {} if none."""
    if not isinstance(items, list):
        return {}
    return next((c for c in items if isinstance(c, dict) and c.get("name") == BUILD_CONTAINER), {})


def _memory(resources: Mapping[str, Any], kind: str) -> float | None:
    section = resources.get(kind)
    value = section.get("memory") if isinstance(section, dict) else None
    if value is None:
        return None
    try:
        return float(parse_quantity(value))
    except QuantityError:
        return None


def _termination(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for state in ("state", "lastState"):
        section = status.get(state)
        terminated = section.get("terminated") if isinstance(section, dict) else None
        if isinstance(terminated, dict):
            return terminated
    return None


def oom_of(pod: Mapping[str, Any], namespaces: tuple[str, ...], now: float) -> OomRecord | None:
    """The kill of the pod's build container: `OOMKilled` (certain), exit 137 (suspected).

    None for a pod that is not a watched runner pod, has no identity or uid, or
    whose build container did not end that way. `now` stands in for a missing
    finish time.
    """
    # The status first: most pod events are no kill, and the identity costs more.
    terminated = _termination(_build((pod.get("status") or {}).get("containerStatuses")))
    if terminated is None:
        return None
    certain = terminated.get("reason") == OOM_KILLED
    if not certain and terminated.get("exitCode") != SIGKILL_EXIT:
        return None
    identity = identity_of(pod, namespaces)
    uid = (pod.get("metadata") or {}).get("uid")
    if not isinstance(identity, JobIdentity) or not isinstance(uid, str) or not uid:
        return None
    finished = terminated.get("finishedAt")
    at = timestamp(finished) / 1000 if isinstance(finished, str) else 0.0
    resources = _build((pod.get("spec") or {}).get("containers")).get("resources") or {}
    if not isinstance(resources, dict):
        resources = {}
    return OomRecord(
        project_id=identity.project_id,
        org=identity.org,
        repo=identity.repo,
        ref=identity.workflow,
        job=identity.job,
        pod_uid=uid,
        at=at or now,
        memory_limit=_memory(resources, "limits"),
        memory_request=_memory(resources, "requests"),
        certain=certain,
    )
