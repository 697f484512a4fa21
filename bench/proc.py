"""What the benches read from /proc about the servers they measure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def process_tree(pid: int) -> Iterator[int]:
    yield pid
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            yield from process_tree(int(child))


def cpu_ns(pid: int) -> int:
    """Nanoseconds on a CPU of every thread of `pid` and its children (/proc/*/schedstat)."""
    return sum(
        int((task / "schedstat").read_text().split()[0])
        for process in process_tree(pid)
        for task in Path(f"/proc/{process}/task").iterdir()
    )
