"""`make cluster-up` / `make cluster-down`: start from a shell, stop exactly what was started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner_sizer.kube.client import KubeClient
from tests.e2e.conftest import ClusterUnderTest

CLI = Path(sys.executable).with_name("runner-sizer-cluster")


def running(pid: int) -> bool:
    """Alive and not a zombie (orphans wait for whoever reaps them here)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_up_then_down(cluster: ClusterUnderTest, tmp_path: Path) -> None:
    if cluster.local is None:
        pytest.skip("an existing cluster is in use")
    state_file = tmp_path / "state.json"
    up = subprocess.run(
        [str(CLI), "up", f"--state-file={state_file}"], capture_output=True, text=True, check=True
    )
    kubeconfig = up.stdout.strip().removeprefix("export KUBECONFIG=")
    state = json.loads(state_file.read_text())
    try:
        nodes = KubeClient.from_kubeconfig(kubeconfig).get("/api/v1/nodes")["items"]
        assert [n["metadata"]["name"] for n in nodes] == ["node-a", "node-b", "node-c"]
    finally:
        subprocess.run([str(CLI), "down", f"--state-file={state_file}"], check=True)
    for process in state["processes"]:
        assert not running(process["pid"]), process["name"]
    assert not Path(state["workdir"]).exists()
    assert not state_file.exists()
