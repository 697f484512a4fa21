"""List, then watch from the list's resourceVersion, forever.

Bookmarks keep the resourceVersion fresh; a 410 Gone (too old) means list
again; any other failure backs off and resumes. Lists are paginated so a
cluster with thousands of pods never lands in memory as one response.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from runner_sizer.kube.client import JSON, KubeClient, KubeError

log = logging.getLogger(__name__)
WATCH_SECONDS = 300
PAGE_SIZE = 500
MAX_BACKOFF = 30.0


class _Relist(Exception):  # noqa: N818 - control flow, not an error
    pass


@dataclass
class ListWatch:
    """Calls `on_list(items)` after each (re-)list and `on_event(type, object)` per change."""

    connect: Callable[[], KubeClient]
    path: str
    on_list: Callable[[list[JSON]], None]
    on_event: Callable[[str, JSON], None]
    params: Mapping[str, str] = field(default_factory=dict)
    on_problem: Callable[[str], None] = lambda problem: None
    on_restart: Callable[[str], None] = lambda reason: None
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self, name: str) -> None:
        threading.Thread(target=self.run, name=name, daemon=True).start()

    def run(self) -> None:
        backoff = 0.5
        kube: KubeClient | None = None
        while not self.stop.is_set():
            try:
                kube = kube or self.connect()
                self._list_and_watch(kube)
                backoff = 0.5
            except _Relist:
                self.on_restart("gone")
            except Exception as error:
                problem = f"{type(error).__name__}: {error}"[:300]
                self.on_problem(problem)
                self.on_restart("error")
                log.warning("watch interrupted", extra={"path": self.path, "error": problem})
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _list(self, kube: KubeClient) -> str:
        items: list[JSON] = []
        params: dict[str, str | int] = {**self.params, "limit": PAGE_SIZE}
        while True:
            page = kube.get(self.path, params)
            items.extend(page.get("items") or [])
            token = page["metadata"].get("continue")
            if not token:
                self.on_list(items)
                version: str = page["metadata"]["resourceVersion"]
                return version
            params["continue"] = token

    def _events(self, kube: KubeClient, params: Mapping[str, str | int]) -> Iterator[JSON]:
        """The watch stream; Gone (410) as an answer or as an event means list again."""
        try:
            for event in kube.watch(self.path, params, read_timeout=WATCH_SECONDS + 30):
                obj = event.get("object") or {}
                if event.get("type") == "ERROR" and obj.get("code") == 410:
                    raise _Relist
                yield event
        except KubeError as error:
            if error.status == 410:
                raise _Relist from error
            raise

    def _list_and_watch(self, kube: KubeClient) -> None:
        version = self._list(kube)
        while not self.stop.is_set():
            params: dict[str, str | int] = {
                **self.params,
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": WATCH_SECONDS,
            }
            for event in self._events(kube, params):
                kind, obj = str(event.get("type")), event.get("object") or {}
                if kind == "ERROR":
                    raise KubeError(
                        int(obj.get("code", 500)), obj.get("reason", ""), obj.get("message", "")
                    )
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind != "BOOKMARK":
                    self.on_event(kind, obj)
                if self.stop.is_set():
                    return
