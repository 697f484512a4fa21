"""OOM records for tests: a certain kill of acme/app (project 7) main `build`."""

from __future__ import annotations

from typing import Any

from runner_sizer.history.ooms import OomRecord

GIB = 2**30


def oom_record(**changes: Any) -> OomRecord:
    """At 4.5 s, limit 1.5 Gi, request 1 Gi; `changes` override any field."""
    fields: dict[str, Any] = {
        "project_id": "7",
        "org": "acme",
        "repo": "app",
        "ref": "main",
        "job": "build",
        "pod_uid": "uid-1",
        "at": 4.5,
        "memory_limit": 1.5 * GIB,
        "memory_request": float(GIB),
        "certain": True,
    }
    return OomRecord(**(fields | changes))
