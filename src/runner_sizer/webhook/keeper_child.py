"""The gunicorn master's certificate keeper child (`--tls-manage-webhook`), restarted if it dies."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

log = logging.getLogger(__name__)
MAX_BACKOFF = 30.0


class KeeperChild:
    def __init__(self, argv: list[str]) -> None:
        self._argv = argv
        self._stopping = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        threading.Thread(target=self._supervise, name="tls-keeper", daemon=True).start()

    def _supervise(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            self._child = subprocess.Popen(
                [sys.executable, "-m", "runner_sizer.certs.keeper_main", *self._argv]
            )
            code = self._child.wait()
            if self._stopping.is_set():
                return
            log.warning("certificate keeper exited; restarting", extra={"exit_code": code})
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def stop(self) -> None:
        """The child hands its Lease over on SIGTERM."""
        self._stopping.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
