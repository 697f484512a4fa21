"""One of our console scripts as a child process, with its log kept in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests


def poll_until_ok(
    url: str,
    *,
    exited: Callable[[], bool],
    verify: str | bool = True,
    cert: tuple[str, str] | None = None,
    timeout: float = 20.0,
) -> str:
    """GET `url` until it answers 200 (returns ""), the process exits or time runs out.

    Returns what went wrong otherwise: the exit, or the last answer or error.
    """
    deadline = time.monotonic() + timeout
    answer = "no answer"
    while time.monotonic() < deadline:
        if exited():
            return "exited"
        try:
            response = requests.get(url, verify=verify, cert=cert, timeout=2)
            if response.ok:
                return ""
            answer = f"{response.status_code} {response.text[-300:]}"
        except requests.RequestException as error:
            answer = str(error)
        time.sleep(0.1)
    return f"not OK after {timeout}s ({answer})"


@dataclass
class ServiceProcess:
    name: str
    log_file: Path
    popen: subprocess.Popen[bytes] | None = None

    def spawn(self, args: list[str], env: dict[str, str]) -> None:
        with self.log_file.open("ab") as log:
            self.popen = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
            )

    def log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-2000:]

    def wait_until_ok(self, url: str, verify: str | bool = True, timeout: float = 20.0) -> None:
        """Poll `url` until it answers 200; fail early if the process exits."""
        problem = poll_until_ok(
            url, exited=lambda: not self.running, verify=verify, timeout=timeout
        )
        if problem:
            self.kill()  # a process that never came up must not outlive its test
            raise RuntimeError(f"{self.name}: {url} {problem}: {self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no goodbye."""
        if self.popen is not None and self.running:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.popen is not None and self.running:
            self.popen.send_signal(signum)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
