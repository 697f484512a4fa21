"""LimitRanges and ResourceQuotas of every namespace, kept current by watches.

Admissions read `rules(namespace)` from memory; only the background watches talk
to the API server, so no admission makes an API call. Until both kinds are listed
the view is not synced, and the webhook adds nothing that a LimitRange or quota
could refuse (see `mutation`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runner_sizer.kube.client import JSON, KubeClient
from runner_sizer.kube.informer import ListWatch
from runner_sizer.webhook.constraints import (
    LimitItem,
    NamespaceRules,
    Quota,
    limit_items,
    quota_of,
)


class _Kind:
    """The parsed objects of one kind, by namespace and name."""

    def __init__(self, parse: Callable[[Mapping[str, Any]], Any]) -> None:
        self._parse = parse
        self.by_namespace: dict[str, dict[str, Any]] = {}
        self.synced = False

    def listed(self, items: list[JSON]) -> None:
        self.by_namespace = {}
        for item in items:
            self.changed("ADDED", item)
        self.synced = True

    def changed(self, kind: str, obj: JSON) -> None:
        metadata = obj.get("metadata") or {}
        namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
        objects = self.by_namespace.setdefault(namespace, {})
        parsed = None if kind == "DELETED" else self._parse(obj)
        if parsed is None:
            objects.pop(name, None)
        else:
            objects[name] = parsed
        if not objects:
            self.by_namespace.pop(namespace, None)


class NamespaceView:
    def __init__(self, connect: Callable[[], KubeClient]) -> None:
        self._limits = _Kind(limit_items)
        self._quotas = _Kind(quota_of)
        self.problem = "LimitRanges and ResourceQuotas not read yet"
        self._watches = [
            ListWatch(
                connect=connect,
                path=f"/api/v1/{resource}",
                on_list=kind.listed,
                on_event=kind.changed,
                on_problem=self._trouble,
            )
            for resource, kind in (("limitranges", self._limits), ("resourcequotas", self._quotas))
        ]

    @property
    def synced(self) -> bool:
        return self._limits.synced and self._quotas.synced

    def rules(self, namespace: str) -> NamespaceRules:
        limits: tuple[LimitItem, ...] = tuple(
            item
            for items in self._limits.by_namespace.get(namespace, {}).values()
            for item in items
        )
        quotas: tuple[Quota, ...] = tuple(self._quotas.by_namespace.get(namespace, {}).values())
        return NamespaceRules(limits, quotas)

    def start(self) -> None:
        for watch, name in zip(self._watches, ("limitrange-view", "quota-view"), strict=True):
            watch.start(name)

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop.set()

    def _trouble(self, problem: str) -> None:
        self.problem = f"LimitRanges/ResourceQuotas unavailable: {problem}"
