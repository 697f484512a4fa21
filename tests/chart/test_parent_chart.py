"""runner-sizer as a dependency of a parent chart (the Argo CD / Flux way)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import KUBE_VERSION, find, helm_command, one
from tests.chart.parent import build_parent_chart


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_parent_chart(tmp_path_factory.mktemp("parent"))


def test_parent_with_extra_globals_lints(parent: Path) -> None:
    lint = helm_command("lint", str(parent), "--kube-version", KUBE_VERSION)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_parent_renders_runner_sizer_with_its_globals(parent: Path) -> None:
    rendered = helm_command(
        "template", "platform", str(parent), "-n", "ci-sizer", "--kube-version", KUBE_VERSION
    )
    assert rendered.returncode == 0, rendered.stderr
    manifests = [m for m in yaml.safe_load_all(rendered.stdout) if m]
    assert one(manifests, "ConfigMap", "platform-platform")["data"] == {"store": "vault"}
    pod = one(manifests, "Deployment", "platform-webhook")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"].startswith("registry.example/mirror/")
    assert one(manifests, "Certificate", "platform-webhook")
    assert one(manifests, "Deployment", "platform-recorder")


def test_condition_turns_runner_sizer_off(parent: Path) -> None:
    rendered = helm_command(
        "template",
        "platform",
        str(parent),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "runner-sizer.enabled=false",
    )
    assert rendered.returncode == 0, rendered.stderr
    manifests = [m for m in yaml.safe_load_all(rendered.stdout) if m]
    assert [m["metadata"]["name"] for m in manifests] == ["platform-platform"]
    assert not find(manifests, "MutatingWebhookConfiguration")
