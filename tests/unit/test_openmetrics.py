"""The OpenMetrics writer for promtool's backfill, and the loopback-only scrape config."""

from __future__ import annotations

import math

import pytest

from runner_sizer.devcluster.prometheus import Family, Series, openmetrics_lines, scrape_config

DAY = 1_790_000_000.0


def text(*families: Family, not_after: float = DAY + 3600) -> str:
    return "".join(openmetrics_lines(families, not_after=not_after))


def test_families_are_typed_escaped_sorted_and_end_with_eof() -> None:
    cpu = Family(
        "container_cpu_usage_seconds_total",
        "counter",
        [Series({"pod": "p-1", "container": "build"}, [(DAY + 20, 3.5), (DAY + 10, 1.0)])],
    )
    info = Family("runner_sizer_job_info", "gauge", [Series({"ref": 'a"b\\c\nd'}, [(DAY, 1)])])
    assert text(cpu, info) == (
        "# TYPE container_cpu_usage_seconds counter\n"
        'container_cpu_usage_seconds_total{container="build",pod="p-1"} 1.0 1790000010.0\n'
        'container_cpu_usage_seconds_total{container="build",pod="p-1"} 3.5 1790000020.0\n'
        "# TYPE runner_sizer_job_info gauge\n"
        'runner_sizer_job_info{ref="a\\"b\\\\c\\nd"} 1.0 1790000000.0\n'
        "# EOF\n"
    )


def test_special_values_and_no_labels() -> None:
    samples = [(DAY, math.nan), (DAY + 1, math.inf), (DAY + 2, -math.inf)]
    assert text(Family("m", "unknown", [Series({}, samples)])).splitlines()[1:4] == [
        "m NaN 1790000000.0",
        "m +Inf 1790000001.0",
        "m -Inf 1790000002.0",
    ]


def test_an_empty_input_is_still_a_complete_file() -> None:
    assert text() == "# EOF\n"


@pytest.mark.parametrize(
    "at",
    [DAY * 1000, DAY + 3601, -1.0],
    ids=["milliseconds", "after not_after", "negative"],
)
def test_timestamps_must_be_past_unix_seconds(at: float) -> None:
    with pytest.raises(ValueError, match="unix seconds"):
        text(Family("m", "gauge", [Series({}, [(at, 1.0)])]))


@pytest.mark.parametrize(
    "families",
    [
        [Family("bad-name", "gauge", [])],
        [Family("m", "gauge", []), Family("m", "gauge", [])],
        [Family("m", "gauge", [Series({"bad-label": "x"}, [(DAY, 1)])])],
        [Family("m", "gauge", [Series({"__name__": "x"}, [(DAY, 1)])])],
    ],
    ids=["metric name", "repeated family", "label name", "reserved label"],
)
def test_invalid_names_are_refused(families: list[Family]) -> None:
    with pytest.raises(ValueError, match="invalid"):
        text(*families)


def test_scrape_config_attaches_target_labels() -> None:
    config = scrape_config(
        "recorder", "127.0.0.1:8080", labels={"namespace": "ci-sizer"}, honor_labels=True
    )
    assert config == {
        "job_name": "recorder",
        "honor_labels": True,
        "metrics_path": "/metrics",
        "static_configs": [{"targets": ["127.0.0.1:8080"], "labels": {"namespace": "ci-sizer"}}],
    }


@pytest.mark.parametrize("target", ["127.0.0.1:9", "localhost:9", "[::1]:9", "127.1.2.3:9"])
def test_loopback_targets_are_allowed(target: str) -> None:
    assert scrape_config("j", target)["static_configs"][0]["targets"] == [target]


@pytest.mark.parametrize("target", ["10.0.0.1:9", "example.com:9", "0.0.0.0:9"])
def test_other_targets_are_refused(target: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        scrape_config("j", target)
