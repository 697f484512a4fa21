"""The PrometheusRules' alerts, unit-tested with `promtool test rules`."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.chart.conftest import CHART, find, render
from tests.support.promtool import promtool

ALERT_TESTS = Path(__file__).parent / "data" / "alerts-test.yaml"


def test_alert_rules(tmp_path: Path) -> None:
    rules = find(render(CHART / "ci" / "ha-values.yaml"), "PrometheusRule")
    groups = [group for rule in rules for group in rule["spec"]["groups"]]
    assert {g["name"] for g in groups} == {"runner-sizer-webhook", "runner-sizer-recorder"}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(ALERT_TESTS, tmp_path / "test.yaml")
    promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    promtool("test", "rules", "test.yaml", cwd=tmp_path)
