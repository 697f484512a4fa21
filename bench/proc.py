"""What the benches read from /proc about the servers they measure."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


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


def _own_ns(pid: int) -> int:
    """Nanoseconds on a CPU of `pid`'s own threads (/proc/PID/task/*/schedstat)."""
    return sum(int((_read(task / "schedstat").split() or ["0"])[0]) for task in _tasks(pid))


def cpu_ns(pid: int) -> int:
    """Nanoseconds on a CPU of every thread of `pid` and its children."""
    return sum(_own_ns(process) for process in process_tree(pid))


def _by_pid(root: int) -> dict[int, tuple[str, int]]:
    """Every process under `root`: its command name and CPU nanoseconds so far."""
    return {
        pid: (_read(Path(f"/proc/{pid}/comm")).strip(), _own_ns(pid)) for pid in process_tree(root)
    }


def _reaped_ns() -> int:
    """CPU nanoseconds of this process's children that ended and were waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def _whole_ns(pid: int) -> int:
    """CPU nanoseconds of a process, its threads that ended included (/proc/PID/stat)."""
    fields = _read(Path(f"/proc/{pid}/stat")).rsplit(")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) * 10**9 // os.sysconf("SC_CLK_TCK")


def cores_while(root: int, run: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """`run`'s result, and the cores the processes under `root` used meanwhile, summed by
    command name; `root` counts its threads that ended, and the children it reaped
    meanwhile are summed as "reaped" (their CPU before `run` included)."""
    before = _by_pid(root) | {root: ("", _whole_ns(root))}
    reaped = _reaped_ns()
    began = time.monotonic()
    result = run()
    elapsed = time.monotonic() - began
    used: dict[str, int] = {"reaped": _reaped_ns() - reaped}
    after = _by_pid(root)
    after[root] = (after[root][0], _whole_ns(root))
    for pid, (name, ns) in after.items():
        used[name] = used.get(name, 0) + ns - before.get(pid, (name, 0))[1]
    return result, {name: round(ns / 1e9 / elapsed, 2) for name, ns in sorted(used.items()) if ns}
