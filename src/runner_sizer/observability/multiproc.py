"""prometheus_client's multiprocess mode, set up before any metric exists."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_process = {"id": os.getpid()}
os.register_at_fork(after_in_child=lambda: _process.update(id=os.getpid()))


def process_id() -> int:
    """`os.getpid()` as of the last fork. prometheus_client asks at every sample update
    whether the process changed; a getpid syscall each was 3.7 % of a webhook worker
    under load (py-spy)."""
    return _process["id"]


def _empty(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[Path]:
    """Name (or create) the directory, empty it, and clean up when the server stops.

    prometheus_client picks its value class when first imported, so this must
    be entered before anything imports it; files left by a previous run would
    be summed into this one's figures. A directory this made is removed on the
    way out, one given in the environment only emptied. Forked workers leave
    through here too: only the process that entered cleans up.
    """
    given = os.environ.get(MULTIPROC_ENV)
    path = Path(given or tempfile.mkdtemp(prefix="runner-sizer-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    _empty(path)
    os.environ[MULTIPROC_ENV] = str(path)
    from prometheus_client import values  # noqa: PLC0415 - after the environment is set

    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)  # type: ignore[no-untyped-call]
    owner = os.getpid()
    try:
        yield path
    finally:
        if os.getpid() == owner:
            if given:
                _empty(path)
            else:
                shutil.rmtree(path, ignore_errors=True)
