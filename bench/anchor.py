"""The Go anchor (../shared/bench-anchor): a standard-library webhook doing the same work.

Built once per source version into .cache/bin, as tools/controlplane/build.sh does for
the other binaries, and served with the same kind of certificate and the same reviews
as runner-sizer, so `make bench` can drive both with the same load generator.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner_sizer.devcluster.binaries import REPO_ROOT
from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.service_process import ServiceProcess

ANCHOR_DIR = Path(os.environ.get("BENCH_ANCHOR_DIR", REPO_ROOT.parent / "shared" / "bench-anchor"))
CACHE = REPO_ROOT / ".cache" / "bin"
# Offline and reproducible: the anchor uses the standard library only.
GO_ENV = {"GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}


@dataclass(frozen=True)
class Endpoint:
    """What the load generator needs: a base URL and the CA that signed its certificate."""

    url: str
    ca_file: Path
    pid: int


def available() -> bool:
    return shutil.which("go") is not None and (ANCHOR_DIR / "go-webhook" / "main.go").is_file()


def build() -> Path:
    """The anchor webhook binary, built on first use for this source and Go version."""
    source = ANCHOR_DIR / "go-webhook"
    version = subprocess.run(["go", "version"], capture_output=True, text=True, check=True)
    digest = hashlib.sha256(version.stdout.encode())
    for name in ("go.mod", "main.go"):
        digest.update((source / name).read_bytes())
    target = CACHE / f"bench-anchor-{digest.hexdigest()[:12]}"
    if not (target / "webhook").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(dir=CACHE, prefix=f"{target.name}.tmp."))
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(out / "webhook"), "."],
            cwd=source,
            env={**os.environ, **GO_ENV},
            check=True,
        )
        out.chmod(0o755)
        # Two builds at once: the first to finish wins, the other's copy goes.
        with contextlib.suppress(OSError):
            out.rename(target)
        shutil.rmtree(out, ignore_errors=True)
    return target / "webhook"


def lookups(
    reviews: list[dict[str, Any]], recommended: dict[str, dict[str, str]], node: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The anchor's sizing and history files for `reviews`: every lookup hits, as for
    runner-sizer with warm caches."""
    sizing: dict[str, Any] = {}
    history: dict[str, str] = {}
    for review in reviews:
        meta = review["request"]["object"]["metadata"]
        labels, notes = meta["labels"], meta["annotations"]
        key = "/".join(
            (
                labels["project.runner.gitlab.com/root-namespace"],
                labels["project.runner.gitlab.com/name"],
                notes["job.runner.gitlab.com/ref"],
                notes["job.runner.gitlab.com/name"],
            )
        )
        sizing[key] = {
            "cpu_request": recommended["requests"]["cpu"],
            "memory_request": recommended["requests"]["memory"],
            "cpu_limit": recommended["limits"]["cpu"],
            "memory_limit": recommended["limits"]["memory"],
        }
        if "runner-id" in labels:  # pods created through the apiserver carry no runner-id
            history[labels["runner-id"]] = node
    return sizing, history


@contextlib.contextmanager
def running_anchor(
    reviews: list[dict[str, Any]], recommended: dict[str, dict[str, str]]
) -> Iterator[Endpoint]:
    binary = build()
    workdir = Path(tempfile.mkdtemp(prefix="runner-sizer-anchor-"))
    ca = CertificateAuthority("runner-sizer-bench-anchor-ca")
    cert, key = ca.serving("bench-anchor").write(workdir, "tls")
    (workdir / "ca.crt").write_bytes(ca.cert_pem)
    sizing, history = lookups(reviews, recommended, "node-b")
    (workdir / "sizing.json").write_text(json.dumps(sizing))
    (workdir / "history.json").write_text(json.dumps(history))
    port = free_port()
    process = ServiceProcess("anchor", workdir / "anchor.log")
    process.spawn(
        [
            str(binary),
            f"-listen=127.0.0.1:{port}",
            f"-cert={cert}",
            f"-key={key}",
            f"-sizing-file={workdir / 'sizing.json'}",
            f"-history-file={workdir / 'history.json'}",
            "-push-token=anchor-push-token",
        ],
        {},
    )
    assert process.popen is not None
    endpoint = Endpoint(f"https://127.0.0.1:{port}", workdir / "ca.crt", process.popen.pid)
    try:
        process.wait_until_ok(f"{endpoint.url}/healthz", str(endpoint.ca_file))
        yield endpoint
    finally:
        process.stop(signal.SIGTERM)
        shutil.rmtree(workdir, ignore_errors=True)
