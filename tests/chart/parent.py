"""A throwaway parent chart that pulls this chart in as a file:// dependency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.chart.conftest import CHART, helm_command

PARENT_VALUES: dict[str, Any] = {
    # A parent's own globals (and another subchart's) next to runner-sizer's.
    "global": {
        "imageRegistry": "registry.example/mirror",
        "storageClass": "fast",
        "externalSecrets": {"store": "vault"},
        "sizer": {
            "url": "https://sizer.example.internal",
            "existingSecret": "sizer-credentials",
        },
    },
    "runner-sizer": {"enabled": True, "webhook": {"tls": {"mode": "cert-manager"}}},
}


def build_parent_chart(root: Path) -> Path:
    """Chart `platform` in `root/platform`, with its dependency built into `charts/`."""
    parent = root / "platform"
    (parent / "templates").mkdir(parents=True)
    (parent / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "platform",
                "version": "1.0.0",
                "dependencies": [
                    {
                        "name": "runner-sizer",
                        "version": "0.1.0",
                        "repository": f"file://{CHART}",
                        "condition": "runner-sizer.enabled",
                    }
                ],
            }
        )
    )
    (parent / "values.yaml").write_text(yaml.safe_dump(PARENT_VALUES))
    # What a parent typically adds: the receiver credentials from somewhere else.
    (parent / "templates" / "credentials.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-platform\n"
        "data:\n  store: {{ .Values.global.externalSecrets.store | quote }}\n"
    )
    built = helm_command(
        "dependency", "build", str(parent), "--skip-refresh", *helm_home_flags(root)
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert list((parent / "charts").glob("runner-sizer-*.tgz"))
    return parent


def helm_home_flags(root: Path) -> list[str]:
    """Keep helm's repository files inside the test's tmp dir."""
    return [
        "--repository-config",
        str(root / "repositories.yaml"),
        "--repository-cache",
        str(root / "cache"),
    ]
