"""What the recorder's ConfigMap writers share: a create that names a missing namespace.

And the shape of an optimistic-concurrency update: a `Change` applied to what is
stored, retried after a conflict, leaves an `Update`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from runner_sizer.kube.client import JSON, KubeClient, KubeError

MAX_ATTEMPTS = 10
RECORDER_LABELS = {"app.kubernetes.io/name": "runner-sizer"}
T = TypeVar("T")


class MissingNamespaceError(RuntimeError):
    """The configured namespace does not exist, so nothing can be created in it."""


def create(kube: KubeClient, collection: str, namespace: str, body: JSON) -> JSON:
    """POST `body` into `collection` of `namespace`; a 404 names the missing namespace."""
    try:
        return kube.post(collection, body)
    except KubeError as error:
        if error.status != 404:
            raise
        raise MissingNamespaceError(
            f"namespace {namespace!r} does not exist, so {body['kind']} "
            f"{body['metadata']['name']!r} cannot be created there (--configmap-namespace)"
        ) from error


@dataclass
class Update(Generic[T]):
    """What an update left: the change's result and what it took."""

    result: T
    writes: int
    conflicts: int


# Stored data (empty when the ConfigMap is missing) → (its edits: key → entry, an
# empty entry deletes; result).
Change = Callable[[Mapping[str, str]], tuple[dict[str, str], T]]
