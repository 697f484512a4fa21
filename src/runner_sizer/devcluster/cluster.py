"""A real Kubernetes control plane run as local processes.

etcd, kube-apiserver (RBAC on), kube-scheduler and kube-controller-manager on
loopback ports, an admin client certificate in `system:masters`, a kubeconfig,
and a few fake Nodes the scheduler can bind pods to. No kubelet, kube-proxy or
pod network: pods get bound to nodes, nothing runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from runner_sizer.devcluster.binaries import Binaries
from runner_sizer.devcluster.pki import CertificateAuthority, signing_key
from runner_sizer.devcluster.service_process import poll_until_ok
from runner_sizer.kube.client import STRATEGIC_MERGE_PATCH, KubeClient

ADMIN_USER = "runner-sizer-admin"
DEFAULT_NODES = ("node-a", "node-b", "node-c")
NODE_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"}

# Without kubelets every node would go NotReady and get tainted and emptied.
_CONTROLLERS = "*,-node-lifecycle-controller"


class ClusterStartError(RuntimeError):
    """A component did not come up; the message names it and ends with its log."""


_LISTEN_PORTS_BELOW_EPHEMERAL = (10000, 32767)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port nothing listens on, outside the ephemeral range where possible.

    A port the kernel picks (bind to 0) comes from the ephemeral range, where any
    outgoing connection may take it as its source port before the service that was
    given it binds ("address already in use" under load).
    """
    low, high = _LISTEN_PORTS_BELOW_EPHEMERAL
    high = min(high, _ephemeral_low() - 1)
    candidates = random.sample(range(low, high + 1), k=min(50, max(0, high - low + 1)))
    for port in [*candidates, 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen: int = sock.getsockname()[1]
            return chosen
    raise RuntimeError("no free loopback port")


@dataclass
class _Process:
    name: str
    pid: int
    exe: str
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)


def _is_same_process(pid: int, exe: str) -> bool:
    """Guard against PID reuse: only signal a PID still running our binary."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return cmdline.split(b"\0", 1)[0].decode(errors="replace") == exe


def _terminate(proc: _Process, grace: float = 10.0) -> None:
    if proc.popen is not None:
        if proc.popen.poll() is None:
            proc.popen.terminate()
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        return
    if not _is_same_process(proc.pid, proc.exe):
        return
    os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _is_same_process(proc.pid, proc.exe):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)


def _kubeconfig(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user: str) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    return json.dumps(config, indent=2)


@dataclass
class LocalCluster:
    """Start with `start()` (or as a context manager), stop with `stop()`."""

    binaries: Binaries
    node_names: Sequence[str] = DEFAULT_NODES
    with_controller_manager: bool = True
    with_scheduler: bool = True
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="runner-sizer-cp-")))
    processes: list[_Process] = field(default_factory=list)
    api_port: int = 0
    etcd_url: str = ""
    started_in_seconds: float = 0.0

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop(keep_logs=exc_info[0] is not None)

    def start(self) -> LocalCluster:
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop(keep_logs=True)
            raise
        self.started_in_seconds = time.monotonic() - began
        return self

    def _start(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        ca = CertificateAuthority("runner-sizer-local-cluster-ca")
        ca.key_pair.write(pki, "ca")
        serving_cert, serving_key = ca.serving(
            "kube-apiserver", ("127.0.0.1", "localhost", "kubernetes.default.svc")
        ).write(pki, "serving")
        admin = ca.client(ADMIN_USER, ("system:masters",))
        sa_public, sa_key = signing_key().write(pki, "service-account")

        etcd_port, etcd_peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            str(self.binaries.etcd),
            [
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait_ready("etcd", f"http://127.0.0.1:{etcd_port}/health")

        self.api_port = free_port()
        self._spawn(
            "kube-apiserver",
            str(self.binaries.kube_apiserver),
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={serving_cert}",
                f"--tls-private-key-file={serving_key}",
                f"--client-ca-file={self.ca_file}",
                f"--secure-port={self.api_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_public}",
                f"--service-account-signing-key-file={sa_key}",
                # No kubelet mounts tokens and no kubelet clears not-ready taints.
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                "--allow-privileged=true",
                # ConfigMap watches go to etcd, so a compaction makes old versions Gone (410).
                "--watch-cache-sizes=configmaps#0",
            ],
        )
        self.kubeconfig.write_text(
            _kubeconfig(self.server, ca.cert_pem, admin.cert_pem, admin.key_pem, ADMIN_USER)
        )
        admin_cert, admin_key = admin.write(pki, "admin")
        self._wait_ready(
            "kube-apiserver",
            f"{self.server}/readyz",
            cert=(str(admin_cert), str(admin_key)),
        )

        shared_flags = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--tls-cert-file={serving_cert}",
            f"--tls-private-key-file={serving_key}",
            "--leader-elect=false",
        ]
        waits = []
        if self.with_scheduler:
            scheduler_port = free_port()
            self._spawn(
                "kube-scheduler",
                str(self.binaries.kube_scheduler),
                [*shared_flags, f"--secure-port={scheduler_port}"],
            )
            waits.append(("kube-scheduler", scheduler_port))
        if self.with_controller_manager:
            kcm_port = free_port()
            self._spawn(
                "kube-controller-manager",
                str(self.binaries.kube_controller_manager),
                [
                    *shared_flags,
                    f"--secure-port={kcm_port}",
                    f"--service-account-private-key-file={sa_key}",
                    f"--root-ca-file={self.ca_file}",
                    f"--controllers={_CONTROLLERS}",
                ],
            )
            waits.append(("kube-controller-manager", kcm_port))
        self.create_nodes(self.node_names)
        for name, port in waits:
            self._wait_ready(name, f"https://127.0.0.1:{port}/healthz")

    def _spawn(self, name: str, exe: str, args: list[str]) -> None:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as sink:
            popen = subprocess.Popen(
                [exe, *args],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append(_Process(name, popen.pid, exe, log, popen, args))

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port: every watch breaks."""
        old = self._process("kube-apiserver")
        _terminate(old)
        self.processes.remove(old)
        self._spawn(old.name, old.exe, old.args)
        pki = self.workdir / "pki"
        self._wait_ready(
            "kube-apiserver",
            f"{self.server}/readyz",
            cert=(str(pki / "admin.crt"), str(pki / "admin.key")),
        )

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision: older resourceVersions are Gone (410)."""
        with requests.Session() as etcd:
            etcd.trust_env = False
            revision = int(
                etcd.post(f"{self.etcd_url}/v3/kv/range", json={"key": "AA=="}, timeout=5).json()[
                    "header"
                ]["revision"]
            )
            etcd.post(
                f"{self.etcd_url}/v3/kv/compaction",
                json={"revision": revision, "physical": True},
                timeout=10,
            ).raise_for_status()
        return revision

    def _process(self, name: str) -> _Process:
        return next(p for p in self.processes if p.name == name)

    def _wait_ready(
        self, name: str, url: str, cert: tuple[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        popen = self._process(name).popen
        problem = poll_until_ok(
            url,
            exited=lambda: popen is not None and popen.poll() is not None,
            verify=str(self.ca_file),
            cert=cert,
            timeout=timeout,
        )
        if problem:
            raise ClusterStartError(f"{name} {problem}: {self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        text = self._process(name).log.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def create_nodes(self, names: Sequence[str]) -> None:
        """Create Ready linux nodes with capacity and a `kubernetes.io/hostname` label."""
        kube = KubeClient.from_kubeconfig(str(self.kubeconfig))
        for name in names:
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            }
            kube.post(
                "/api/v1/nodes",
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}},
            )
            ready = {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "fake node of the local test cluster",
            }
            status = {
                "capacity": NODE_CAPACITY,
                "allocatable": NODE_CAPACITY,
                "conditions": [ready],
            }
            kube.patch(f"/api/v1/nodes/{name}/status", {"status": status}, STRATEGIC_MERGE_PATCH)

    def stop(self, keep_logs: bool = False) -> Path | None:
        """Stop exactly the processes started here; keep logs if asked.

        Returns the directory holding kept logs.
        """
        for proc in reversed(self.processes):
            _terminate(proc)
        self.processes.clear()
        kept: Path | None = None
        if keep_logs and self.log_dir.is_dir():
            kept = Path(tempfile.mkdtemp(prefix="runner-sizer-cp-logs-"))
            shutil.copytree(self.log_dir, kept, dirs_exist_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return kept

    def to_state(self) -> dict[str, Any]:
        """What `stop_from_state` needs once the starting process is gone."""
        return {
            "workdir": str(self.workdir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "processes": [
                {"name": p.name, "pid": p.pid, "exe": p.exe, "log": str(p.log)}
                for p in self.processes
            ],
        }


def stop_from_state(state: dict[str, Any]) -> None:
    for entry in reversed(state["processes"]):
        _terminate(_Process(entry["name"], entry["pid"], entry["exe"], Path(entry["log"])))
    shutil.rmtree(state["workdir"], ignore_errors=True)


def stopped_components(state: dict[str, Any]) -> list[str]:
    """The components of a `to_state` cluster that are no longer running."""
    return [e["name"] for e in state["processes"] if not _is_same_process(e["pid"], e["exe"])]
