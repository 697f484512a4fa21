"""Run the real `runner-sizer-webhook` console script on loopback, with a throw-away cert."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.pki import CertificateAuthority, KeyPair
from runner_sizer.devcluster.service_process import ServiceProcess

SCRIPT = Path(sys.executable).with_name("runner-sizer-webhook")
# The receiver stand-in's default credentials.
STANDIN_TOKENS = {
    "WEBHOOK_SIZER_READ_TOKEN": "read-token",
    "WEBHOOK_SIZER_PUSH_TOKEN": "push-token",
}


@dataclass
class WebhookProcess:
    """`extra_args` are CLI flags; `env` adds to the environment (e.g. tokens).

    With `tls_secret` (NAMESPACE/NAME) the pair comes from that Secret, not from files,
    and the probes skip verification (the Secret's CA may not exist yet).
    """

    ca: CertificateAuthority
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="runner-sizer-wh-")))
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    tls_secret: str = ""

    def __post_init__(self) -> None:
        self.process = ServiceProcess("webhook", self.workdir / "webhook.log")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    def write_serving_cert(self, ca: CertificateAuthority | None = None) -> None:
        """(Re)issue the serving pair; replaced atomically, as a Secret update would."""
        self.write_serving_pair((ca or self.ca).serving("runner-sizer-webhook"))

    def write_serving_pair(self, pair: KeyPair) -> None:
        staging = self.workdir / "staging"
        staging.mkdir(exist_ok=True)
        cert, key = pair.write(staging, "tls")
        os.replace(key, self.workdir / "tls.key")
        os.replace(cert, self.workdir / "tls.crt")

    def start(
        self, timeout: float = 20.0, serving: KeyPair | None = None, serving_ca: bytes = b""
    ) -> WebhookProcess:
        """Serve `serving` (signed by `serving_ca`, e.g. what Helm generated), else a fresh pair."""
        self.ca_file.write_bytes(serving_ca or self.ca.cert_pem)
        if serving is None:
            self.write_serving_cert()
        else:
            self.write_serving_pair(serving)
        tls = (
            [f"--tls-secret={self.tls_secret}"]
            if self.tls_secret
            else [
                f"--tls-cert-file={self.workdir / 'tls.crt'}",
                f"--tls-key-file={self.workdir / 'tls.key'}",
            ]
        )
        args = [
            str(SCRIPT),
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            *tls,
            *self.extra_args,
        ]
        self.process.spawn(
            args, {"PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics"), **self.env}
        )
        self.process.wait_until_ok(f"{self.url}/healthz", self._verify, timeout)
        return self

    @property
    def _verify(self) -> str | bool:
        return False if self.tls_secret else str(self.ca_file)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until /readyz says 200 (history synced)."""
        self.process.wait_until_ok(f"{self.url}/readyz", self._verify, timeout)

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        """Quick shutdown (SIGINT): graceful draining waits on idle keep-alive connections."""
        self.process.stop(signal.SIGINT)
        shutil.rmtree(self.workdir, ignore_errors=True)


# Flags for a webhook with no Kubernetes API to watch: no history, no namespace rules.
NO_KUBERNETES = ("--enable-affinity=false", "--watch-namespace-rules=false")


def webhook_for(
    receiver_url: str, *extra_args: str, ca_name: str = "runner-sizer-dev-ca"
) -> WebhookProcess:
    """A webhook (not yet started) talking to the receiver stand-in at `receiver_url`."""
    return WebhookProcess(
        CertificateAuthority(ca_name),
        extra_args=[
            f"--sizer-url={receiver_url}",
            "--sizer-sidecar-image=registry.example/sizer-collector:1.0",
            *extra_args,
        ],
        env=STANDIN_TOKENS,
    )


@contextlib.contextmanager
def running_webhook(receiver_url: str, *extra_args: str) -> Iterator[WebhookProcess]:
    process = webhook_for(receiver_url, *extra_args).start()
    try:
        yield process
    finally:
        process.stop()
