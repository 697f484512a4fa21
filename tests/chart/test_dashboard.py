"""The Grafana dashboard ConfigMap: gated, sidecar-labelled, and every panel's PromQL parses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from runner_sizer.recorder.jobinfo import INFO_METRIC
from tests.chart.conftest import find, one, render
from tests.support.promtool import promtool

SRC = Path(__file__).resolve().parents[2] / "src" / "runner_sizer"
# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
}


def dashboard(*sets: str) -> dict[str, Any]:
    configmap = one(
        render(None, "dashboard.enabled=true", *sets), "ConfigMap", "rs-runner-sizer-dashboard"
    )
    loaded: dict[str, Any] = json.loads(configmap["data"]["runner-sizer.json"])
    return loaded


def expressions(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def test_no_dashboard_by_default() -> None:
    assert not [m for m in find(render(), "ConfigMap") if "dashboard" in m["metadata"]["name"]]


def test_dashboard_configmap_for_the_grafana_sidecar() -> None:
    manifests = render(
        None,
        "dashboard.enabled=true",
        "dashboard.namespace=monitoring",
        "dashboard.annotations.grafana_folder=CI",
    )
    configmap = one(manifests, "ConfigMap", "rs-runner-sizer-dashboard")
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "CI"}
    board = json.loads(configmap["data"]["runner-sizer.json"])
    assert len(board["uid"]) <= 40 and board["title"] == "runner-sizer (rs)"
    assert "__" not in json.dumps(board).replace("$__", ""), "every placeholder is replaced"


def test_panels_cover_what_platform_teams_look_at() -> None:
    queries = "\n".join(expressions(dashboard()))
    for needle in (
        "runner_sizer_webhook_admissions_total",
        "sum by (feature, reason) (rate(runner_sizer_webhook_skipped_injections_total",
        "runner_sizer_webhook_admission_duration_seconds_bucket",
        'apiserver_admission_webhook_fail_open_count{name="rs.ci-sizer.pods.runner-sizer.io"',
        "apiserver_admission_webhook_admission_duration_seconds_bucket",
        "runner_sizer_webhook_receiver_responses_total",
        "runner_sizer_webhook_receiver_breaker_open",
        "runner_sizer_recorder_history_keys",
        "runner_sizer_recorder_history_bytes",
        "runner_sizer_recommender_table_age_seconds",
        "runner_sizer_recommender_refresh_errors_total",
        "runner_sizer_recommender_identities",
        "sum by (outcome) (rate(runner_sizer_recommender_answers_total",
        'kube_pod_container_resource_requests{resource="memory",container="build"}',
        'container_memory_working_set_bytes{container="build"}',
        "on (namespace, pod) group_left (root_namespace, project, job_name)",
        "sum by (certainty) (increase(runner_sizer_oom_kills_total",
    ):
        assert needle in queries, needle


def defined_metrics() -> set[str]:
    names = {INFO_METRIC}
    for service in ("webhook", "recorder", "recommender"):
        source = (SRC / service / "metrics.py").read_text()
        prefix = re.search(r'^PREFIX = "(\w+)"', source, re.MULTILINE)
        assert prefix, service
        names |= {prefix.group(1) + suffix for suffix in re.findall(r'f"\{PREFIX\}(_\w+)"', source)}
        names |= set(re.findall(r'"(runner_sizer_\w+)"', source))
    return names


def test_every_runner_sizer_metric_exists() -> None:
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for expr in expressions(dashboard())
        for name in re.findall(r"runner_sizer_\w+", expr)
    }
    assert used and used <= defined_metrics(), used - defined_metrics()


def substitute(expr: str) -> str:
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    assert not re.search(r"\$(?!\d)", expr), expr  # $1 is label_replace's, not Grafana's
    return expr


def test_every_panel_query_parses(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:panel_query:{number}", "expr": substitute(expr)}
        for number, expr in enumerate(expressions(dashboard()))
    ]
    (tmp_path / "dashboard-rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    promtool("check", "rules", "dashboard-rules.yaml", cwd=tmp_path)
