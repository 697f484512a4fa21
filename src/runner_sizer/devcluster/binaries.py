"""Where the control-plane binaries live, building them on first use."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "tools" / "controlplane" / "build.sh"


class BinariesUnavailableError(RuntimeError):
    """The control plane cannot be built here (no Go toolchain or module proxy)."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_scheduler: Path
    kube_controller_manager: Path
    kubectl: Path
    etcd: Path
    helm: Path
    promtool: Path
    helm_docs: Path
    prometheus: Path


def ensure_binaries() -> Binaries:
    """Run the cached build and return the binaries' paths.

    The build script prints one directory per component (kubernetes, etcd, helm, promtool,
    helm-docs, prometheus); a warm cache makes this a fraction of a second.
    """
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        last_line = (result.stderr.strip().splitlines() or ["control-plane build failed"])[-1]
        raise BinariesUnavailableError(last_line)
    kubernetes, etcd, helm, promtool, helm_docs, prometheus = (
        Path(line) for line in result.stdout.split()
    )
    return Binaries(
        kube_apiserver=kubernetes / "kube-apiserver",
        kube_scheduler=kubernetes / "kube-scheduler",
        kube_controller_manager=kubernetes / "kube-controller-manager",
        kubectl=kubernetes / "kubectl",
        etcd=etcd / "etcd",
        helm=helm / "helm",
        promtool=promtool / "promtool",
        helm_docs=helm_docs / "helm-docs",
        prometheus=prometheus / "prometheus",
    )
