"""How a runner pod looks once its build container has ended (OOM kills and others)."""

from __future__ import annotations

from typing import Any

OOM_KILLED = {"reason": "OOMKilled", "exitCode": 137}
SUSPECTED = {"reason": "Error", "exitCode": 137}
FAILED = {"reason": "Error", "exitCode": 1}


def build_ended(ending: dict[str, Any], finished_at: str) -> dict[str, Any]:
    """The pod `status` (for the status subresource) of a build container that ended so."""
    terminated = {**ending, "startedAt": "2026-11-26T10:00:00Z", "finishedAt": finished_at}
    return {
        "phase": "Failed",
        "containerStatuses": [
            {
                "name": "build",
                "image": "alpine:3.20",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
