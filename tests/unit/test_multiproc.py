"""The process id prometheus_client's multiprocess values are told (observability.multiproc)."""

from __future__ import annotations

import os

from runner_sizer.observability.multiproc import process_id


def test_the_process_id_follows_a_fork() -> None:
    parent = os.getpid()
    assert process_id() == parent
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, f"{process_id()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write)
    told, actual = os.read(read, 100).decode().split()
    os.waitpid(child, 0)
    assert told == actual != str(parent)
