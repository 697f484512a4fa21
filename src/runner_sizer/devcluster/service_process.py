"""One of our console scripts as a child process, with its log kept in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests


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
        deadline = time.monotonic() + timeout
        answer = ""
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            try:
                response = requests.get(url, verify=verify, timeout=2)
                if response.ok:
                    return
                answer = response.text
            except requests.RequestException as error:
                answer = str(error)
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name}: {url} not OK after {timeout}s ({answer}): {self.log_tail()}"
        )

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
