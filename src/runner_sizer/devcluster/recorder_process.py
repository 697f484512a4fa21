"""Run the real `runner-sizer-recorder` console script against a cluster."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.service_process import ServiceProcess

SCRIPT = Path(sys.executable).with_name("runner-sizer-recorder")


@dataclass
class RecorderProcess:
    kubeconfig: Path
    namespace: str
    extra_args: list[str] = field(default_factory=list)
    identity: str = "recorder-0"
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="runner-sizer-rec-"))
    )
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.process = ServiceProcess(f"recorder {self.identity}", self.workdir / "recorder.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> RecorderProcess:
        args = [
            str(SCRIPT),
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--kubeconfig={self.kubeconfig}",
            f"--configmap-namespace={self.namespace}",
            f"--identity={self.identity}",
            *self.extra_args,
        ]
        self.process.spawn(args, {})
        self.process.wait_until_ok(f"{self.url}/readyz", timeout=timeout)
        return self

    def metric(self, name: str) -> float:
        """Sum of a metric's samples (0 if absent)."""
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
        return sum(float(v) for v in pattern.findall(text))

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
