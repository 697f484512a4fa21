"""prometheus_client's multiprocess mode, set up before any metric exists."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> Path:
    """Name (or create) the directory and empty it.

    prometheus_client picks its value class when first imported, so this must
    run before anything imports it; files left by a previous run would be
    summed into this one's figures.
    """
    directory = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="runner-sizer-metrics-")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return path
