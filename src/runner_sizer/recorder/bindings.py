"""Pure: which history entry a pod event means."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner_sizer.history.keys import HistoryKey, history_key
from runner_sizer.history.ledger import timestamp
from runner_sizer.identity import is_runner_pod


@dataclass(frozen=True)
class Binding:
    key: str
    node: str
    at: int  # unix milliseconds


def watched_runner_pod(metadata: Mapping[str, Any], namespaces: tuple[str, ...]) -> bool:
    """A pod the webhook would also recognise as a runner pod, in `namespaces` (all if empty)."""
    return is_runner_pod(metadata) and (not namespaces or metadata.get("namespace") in namespaces)


def binding_of(
    pod: dict[str, Any],
    kind: HistoryKey,
    now: datetime.datetime,
    namespaces: tuple[str, ...] = (),
) -> Binding | None:
    """The (key, node, when) of a runner pod bound to a node, or None.

    Only pods the webhook would also recognise as runner pods count, and only
    in `namespaces` (all when empty). "When" is the scheduling time if known,
    so re-listing old pods after a restart does not make them look recent.
    """
    node = (pod.get("spec") or {}).get("nodeName")
    metadata = pod.get("metadata") or {}
    if not isinstance(node, str) or not node or not watched_runner_pod(metadata, namespaces):
        return None
    key = history_key(kind, metadata)
    if key is None:
        return None
    conditions = (pod.get("status") or {}).get("conditions") or []
    scheduled = next(
        (
            c.get("lastTransitionTime")
            for c in conditions
            if c.get("type") == "PodScheduled" and c.get("status") == "True"
        ),
        None,
    )
    moment = scheduled or metadata.get("creationTimestamp")
    return Binding(key, node, timestamp(moment) if moment else timestamp(now))
