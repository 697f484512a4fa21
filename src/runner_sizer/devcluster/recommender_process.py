"""The real `runner-sizer-recommender` on loopback, for demos, tests and benches."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import requests

from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.service_process import ServiceProcess
from runner_sizer.identity import JobIdentity
from runner_sizer.recommender.promql import Identity

SCRIPT = Path(sys.executable).with_name("runner-sizer-recommender")
READ_TOKEN = "recommender-read-token"  # noqa: S105 - a local demo's credential


@dataclass
class RecommenderProcess:
    prometheus_url: str
    extra_args: list[str] = field(default_factory=list)
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="runner-sizer-rec-"))
    )
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.process = ServiceProcess("recommender", self.workdir / "recommender.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_file(self) -> Path:
        return self.workdir / "read-token"

    def start(self, *, ready: bool = True, timeout: float = 60.0) -> RecommenderProcess:
        self.token_file.write_text(READ_TOKEN + "\n")
        self.process.spawn(
            [
                str(SCRIPT),
                f"--listen-addr=127.0.0.1:{self.port}",
                f"--prometheus-url={self.prometheus_url}",
                f"--read-token-file={self.token_file}",
                *self.extra_args,
            ],
            {},
        )
        self.process.wait_until_ok(f"{self.url}/healthz", timeout=timeout)
        if ready:
            self.process.wait_until_ok(f"{self.url}/readyz", timeout=timeout)
        return self

    def get(self, path: str, **params: str) -> requests.Response:
        """GET `path` as given: requests would decode %2E, so the URL is set after preparing."""
        url = f"{self.url}{path}" + (f"?{urlencode(params)}" if params else "")
        with requests.Session() as session:
            prepared = session.prepare_request(
                requests.Request("GET", url, headers={"Authorization": f"Bearer {READ_TOKEN}"})
            )
            prepared.url = url
            return session.send(prepared, timeout=10)

    def stop(self) -> None:
        self.process.stop(signal.SIGINT)
        shutil.rmtree(self.workdir, ignore_errors=True)


def sizing_path(identity: Identity) -> str:
    """The path the webhook would ask (each segment percent-encoded)."""
    job = JobIdentity(identity.org, identity.repo, identity.ref, identity.job, run_id="1")
    return f"/api/v1/sizing/repo/{job.receiver_path()}"
