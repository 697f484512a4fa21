"""Recommender settings: defaults, env fallback, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner_sizer.options import OptionError
from runner_sizer.recommender.promql import IdentitySource
from runner_sizer.recommender.settings import load_settings

URL = ["--prometheus-url=http://127.0.0.1:9090/"]


def test_defaults() -> None:
    settings = load_settings(URL, {})
    assert settings.prometheus_url == "http://127.0.0.1:9090"
    assert (settings.window, settings.refresh_interval, settings.step) == (14 * 86400, 300, 30)
    assert settings.strategy.min_runs == 5 and settings.strategy.memory_margin == 0.15
    assert settings.identity_source is IdentitySource.RUNNER_SIZER
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", 8080)


def test_env_fallback_and_flags_win(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    settings = load_settings(
        ["--window=7d"],
        {
            "RECOMMENDER_PROMETHEUS_URL": "https://thanos:10902",
            "RECOMMENDER_WINDOW": "1d",
            "RECOMMENDER_LABEL_MATCHERS": 'cluster="prod"',
            "RECOMMENDER_IDENTITY_SOURCE": "kube-state-metrics",
            "RECOMMENDER_PROMETHEUS_TOKEN_FILE": str(token),
        },
    )
    assert settings.window == 7 * 86400 and settings.label_matchers == ('cluster="prod"',)
    assert settings.identity_source is IdentitySource.KUBE_STATE_METRICS
    assert settings.prometheus_token_file == token


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        ([], "--prometheus-url (RECOMMENDER_PROMETHEUS_URL): required"),
        (["--prometheus-url=ftp://x"], "--prometheus-url (RECOMMENDER_PROMETHEUS_URL)"),
        ([*URL, "--min-runs=40"], "--min-runs (RECOMMENDER_MIN_RUNS): greater than --max-runs"),
        ([*URL, "--step=10m"], "--step (RECOMMENDER_STEP)"),
        ([*URL, "--step=2h", "--window=1h"], "--step (RECOMMENDER_STEP)"),
        ([*URL, "--cpu-percentile=101"], "--cpu-percentile (RECOMMENDER_CPU_PERCENTILE)"),
        ([*URL, "--identity-source=x"], "runner-sizer, kube-state-metrics"),
        ([*URL, "--read-token-file=/nonexistent"], "--read-token-file"),
    ],
)
def test_bad_values_name_the_setting(argv: list[str], names: str) -> None:
    with pytest.raises(OptionError) as error:
        load_settings(argv, {})
    assert names in str(error.value) and "\n" not in str(error.value)
