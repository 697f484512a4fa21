"""Render the chart with the real helm binary."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner_sizer.devcluster.binaries import ensure_binaries

CHART = Path(__file__).resolve().parents[2] / "charts" / "runner-sizer"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.35.4"
Manifests = list[dict[str, Any]]


def helm_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_binaries().helm), *args], capture_output=True, text=True, check=False
    )


def render(values_file: Path | None = None, *sets: str, namespace: str = "ci-sizer") -> Manifests:
    args = ["template", "rs", str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION]
    if values_file:
        args += ["-f", str(values_file)]
    for item in sets:
        args += ["--set", item]
    result = helm_command(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(manifests: Manifests, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]


def one(manifests: Manifests, kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


@pytest.fixture
def values(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    return lambda name: CHART / "ci" / f"{name}-values.yaml"
