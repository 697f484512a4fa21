"""The PrometheusRules' alerts, unit-tested with `promtool test rules`."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.chart.conftest import CHART, find, one, render
from tests.support.promtool import promtool

ALERT_TESTS = Path(__file__).parent / "data" / "alerts-test.yaml"


def test_alert_rules(tmp_path: Path) -> None:
    rules = find(render(CHART / "ci" / "ha-values.yaml"), "PrometheusRule")
    groups = [group for rule in rules for group in rule["spec"]["groups"]]
    assert {g["name"] for g in groups} == {
        "runner-sizer-webhook",
        "runner-sizer-apiserver",
        "runner-sizer-recorder",
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(ALERT_TESTS, tmp_path / "test.yaml")
    promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    promtool("test", "rules", "test.yaml", cwd=tmp_path)


def test_apiserver_alerts_follow_the_webhooks_name_and_can_be_dropped() -> None:
    manifests = render(None, "webhook.metrics.prometheusRule.enabled=true", namespace="ci")
    configuration = one(manifests, "MutatingWebhookConfiguration")
    name = configuration["webhooks"][0]["name"]
    assert name == "rs.ci.pods.runner-sizer.io"
    (rule,) = find(manifests, "PrometheusRule")
    (apiserver,) = [g for g in rule["spec"]["groups"] if g["name"] == "runner-sizer-apiserver"]
    assert all(f'name="{name}",type="admit"' in r["expr"] for r in apiserver["rules"])
    dropped = render(
        None,
        "webhook.metrics.prometheusRule.enabled=true",
        "webhook.metrics.prometheusRule.apiserverAlerts=false",
    )
    (rule,) = find(dropped, "PrometheusRule")
    assert [g["name"] for g in rule["spec"]["groups"]] == ["runner-sizer-webhook"]
