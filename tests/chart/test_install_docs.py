"""What a new user meets: the README's example values, NOTES, render-time messages, and
renders that are reproducible wherever the TLS mode allows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, CI_VALUES, KUBE_VERSION, Manifests, helm_command, render

ROOT = CHART.parents[1]
EXAMPLE = CHART / "examples" / "values.yaml"


@pytest.mark.parametrize(
    "readme", [ROOT / "README.md", CHART / "README.md"], ids=lambda p: p.parent.name
)
def test_readme_install_points_at_the_shipped_example(readme: Path) -> None:
    files = re.findall(r"helm upgrade --install .*? -f (\S+)", readme.read_text())
    assert files, "an install command with -f"
    for name in files:
        assert (ROOT / name).is_file(), name


def test_example_values_render() -> None:
    manifests = render(EXAMPLE)
    webhook = next(
        m for m in manifests if m["kind"] == "Deployment" and "webhook" in m["metadata"]["name"]
    )
    assert webhook["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example.com/ci/runner-sizer-webhook:0.1.0"
    )


def test_readme_documents_kube_version_and_images() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "--kube-version" in readme
    for needle in (
        "global.imageRegistry",
        "webhook.image.repository",
        "services/webhook/Dockerfile",
    ):
        assert needle in readme, needle


def test_a_receiver_url_needs_tokens() -> None:
    result = helm_command(
        "template", "rs", str(CHART), "--kube-version", KUBE_VERSION,
        "--set", "global.sizer.url=https://sizer.example", "--set", "global.sizer.readToken=r",
    )  # fmt: skip
    assert result.returncode != 0
    assert "global.sizer.url is set but the receiver tokens are missing" in result.stderr


def notes(tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as Helm renders it (helm template skips it: include it from a copy)."""
    chart = tmp_path / "runner-sizer"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ include "runner-sizer/templates/NOTES.txt" . | quote }}}\n'
    )
    args = ["template", "rs", str(chart), "-n", "ci-sizer", "--kube-version", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    result = helm_command(*args, "--show-only", "templates/zz-notes.yaml")
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


def test_notes_in_service_mode(tmp_path: Path) -> None:
    text = notes(tmp_path)
    assert "rollout status deploy/rs-webhook" in text
    assert "URL mode" not in text
    assert "delete lease rs-recorder" in text, "the Lease outlives the release"
    assert "configmap rs-runner-sizer-history" in text


def test_notes_in_url_mode(tmp_path: Path) -> None:
    text = notes(tmp_path, "webhook.admission.url=https://hook.example:9443/mutate")
    assert "rollout status" not in text, "nothing in the cluster serves admissions"
    assert "Deployment and Service rs-webhook are still created" in text
    assert "After a reinstall the CA is new only if the Secret was deleted" in text
    assert "--tls-secret ci-sizer/rs-webhook-managed-tls" in text
    helm_mode = notes(
        tmp_path / "helm", "webhook.admission.url=https://hook.example:9443/mutate",
        "webhook.tls.mode=helm",
    )  # fmt: skip
    assert "After a reinstall the CA is new:" in helm_mode
    assert "Secret ci-sizer/rs-webhook-tls" in helm_mode


def test_notes_name_what_the_managed_mode_leaves_behind(tmp_path: Path) -> None:
    text = notes(tmp_path)
    assert "delete secret,lease rs-webhook-managed-tls" in text


def without_generated_tls(manifests: Manifests) -> list[dict[str, Any]]:
    """tls.mode=helm: the generated CA and pair differ on every render without a cluster."""
    for manifest in manifests:
        if manifest["kind"] == "Secret" and manifest["metadata"]["name"].endswith("-webhook-tls"):
            manifest["data"] = "generated"
        if manifest["kind"] == "MutatingWebhookConfiguration":
            for hook in manifest["webhooks"]:
                hook["clientConfig"].pop("caBundle", None)
    return manifests


def render_text(values_file: Path) -> str:
    result = helm_command(
        "template", "rs", str(CHART), "-n", "ci-sizer", "--kube-version", KUBE_VERSION,
        "-f", str(values_file),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("values_file", [*CI_VALUES, EXAMPLE], ids=lambda p: p.name)
def test_two_renders_are_identical_but_for_helm_generated_tls(values_file: Path) -> None:
    first, second = render_text(values_file), render_text(values_file)
    parsed = [[m for m in yaml.safe_load_all(text) if m] for text in (first, second)]
    helm_tls = any(
        m["kind"] == "Secret" and m["metadata"]["name"].endswith("-webhook-tls") for m in parsed[0]
    )
    if not helm_tls:
        assert first == second, "managed, cert-manager and existing-Secret modes: byte for byte"
        return
    assert first != second, "tls.mode=helm generates a new CA per render (documented)"
    assert without_generated_tls(parsed[0]) == without_generated_tls(parsed[1])
