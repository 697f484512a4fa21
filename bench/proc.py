"""What the benches read from /proc about the servers they measure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def _read(path: Path) -> str:
    """A /proc file's text; empty once its thread or process has gone."""
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _tasks(pid: int) -> list[Path]:
    try:
        return list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []


def process_tree(pid: int) -> Iterator[int]:
    yield pid
    for task in _tasks(pid):
        for child in _read(task / "children").split():
            yield from process_tree(int(child))


def cpu_ns(pid: int) -> int:
    """Nanoseconds on a CPU of every thread of `pid` and its children (/proc/*/schedstat)."""
    return sum(
        int((_read(task / "schedstat").split() or ["0"])[0])
        for process in process_tree(pid)
        for task in _tasks(process)
    )
