"""Sizing math, quantities, history keys and settings validation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from runner_sizer.history.keys import HistoryKey, from_configmap_key, history_key, to_configmap_key
from runner_sizer.history.ledger import from_data
from runner_sizer.webhook.quantity import (
    QuantityError,
    format_cpu,
    format_memory,
    parse_quantity,
    round_up,
)
from runner_sizer.webhook.settings import SettingsError, load_settings
from runner_sizer.webhook.sizing import (
    Bounds,
    Recommendation,
    SizingMode,
    parse_recommendation,
    sized_resources,
)

GI = Decimal(2**30)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("2Gi", 2 * GI),
        ("512Mi", Decimal(512 * 2**20)),
        ("1e3", Decimal(1000)),
        ("1G", Decimal(10**9)),
        (3, Decimal(3)),
    ],
)
def test_parse_quantity(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Qi", "-1", "1.2.3", True, float("nan")])
def test_parse_quantity_rejects(text: str | float) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_formats_are_exact() -> None:
    assert format_cpu(Decimal("1.5")) == "1500m"
    assert format_cpu(Decimal(2)) == "2"
    assert format_cpu(Decimal("1.5005")) == "1500500u"
    assert format_cpu(Decimal("0.0000000001")) == "1n"
    assert format_memory(4 * GI) == "4Gi"
    assert format_memory(Decimal(1500 * 2**20)) == "1500Mi"
    assert format_memory(Decimal(10**9)) == "1000000000"


def test_round_up_to_readable_steps() -> None:
    assert round_up("cpu", Decimal("0.0001")) == Decimal("0.001")
    assert round_up("memory", Decimal(1500 * 2**20 + 1)) == 1501 * 2**20


@pytest.mark.parametrize(
    ("text", "value"),
    [("1500500u", Decimal("1.5005")), ("250n", Decimal("2.5e-7")), ("1e9", Decimal(10**9))],
)
def test_parse_quantity_reads_every_form(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["1e1000000", "1e5000", "1e20E", "9" * 41, 1e300])
def test_parse_quantity_rejects_absurd_magnitudes(text: str | float) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_requests_only_never_rounds_over_the_limit() -> None:
    """Found by reading: a 2 GB recommendation under a `1G` limit became `954Mi` > 1e9."""
    rec = Recommendation(requests={"memory": 2 * Decimal(10**9), "cpu": Decimal(3)})
    current = {"limits": {"memory": "1G", "cpu": "1500500u"}}
    out = sized_resources(current, rec, Bounds(), SizingMode.REQUESTS_ONLY)
    assert out["requests"] == {"memory": "1000000000", "cpu": "1500500u"}
    assert out["limits"] == {"memory": "1G", "cpu": "1500500u"}


def test_rounding_never_lifts_a_value_over_its_bound() -> None:
    bounds = Bounds(maximum={"memory": Decimal(4 * 10**9)})
    rec = Recommendation(requests={"memory": Decimal(4 * 10**9 - 1)})
    out = sized_resources({}, rec, bounds, SizingMode.REQUESTS_AND_LIMITS)
    assert out == {"requests": {"memory": "4000000000"}}


def test_implausible_answers_are_dropped() -> None:
    body = {"requests": {"cpu": "1e20", "memory": "1e1000000"}, "limits": {"memory": "1Gi"}}
    assert parse_recommendation(body) == Recommendation(requests={}, limits={"memory": GI})
    assert parse_recommendation({"requests": {"cpu": float("nan"), "memory": "12"}}) is None


def test_parse_recommendation_is_tolerant() -> None:
    assert parse_recommendation({"requests": {"cpu": "1", "memory": "bogus"}, "extra": 1}) == (
        Recommendation(requests={"cpu": Decimal(1)}, limits={})
    )
    garbage: object
    for garbage in (None, [], "x", {"requests": "x"}, {"requests": {"cpu": "-1"}}, {}):
        assert parse_recommendation(garbage) is None


def test_requests_and_limits_never_invert() -> None:
    rec = Recommendation(requests={"cpu": Decimal(3), "memory": 6 * GI}, limits={"cpu": Decimal(2)})
    current = {"requests": {"cpu": "1", "ephemeral-storage": "4Gi"}, "limits": {"memory": "4Gi"}}
    both = sized_resources(current, rec, Bounds(), SizingMode.REQUESTS_AND_LIMITS)
    assert both == {
        "requests": {"cpu": "3", "memory": "6Gi", "ephemeral-storage": "4Gi"},
        "limits": {"cpu": "3", "memory": "6Gi"},
    }
    only = sized_resources(current, rec, Bounds(), SizingMode.REQUESTS_ONLY)
    assert only == {
        "requests": {"cpu": "3", "memory": "4Gi", "ephemeral-storage": "4Gi"},
        "limits": {"memory": "4Gi"},
    }


def test_bounds_clamp_requests_and_limits() -> None:
    bounds = Bounds(minimum={"cpu": Decimal("0.25")}, maximum={"cpu": Decimal(4), "memory": 8 * GI})
    rec = Recommendation(
        requests={"cpu": Decimal("0.01"), "memory": 16 * GI}, limits={"cpu": Decimal(9)}
    )
    out = sized_resources({}, rec, bounds, SizingMode.REQUESTS_AND_LIMITS)
    assert out == {"requests": {"cpu": "250m", "memory": "8Gi"}, "limits": {"cpu": "4"}}


def test_history_key_derivations() -> None:
    metadata = {
        "labels": {"pod": "runner-abc-project-7-concurrent-3"},
        "annotations": {
            "project.runner.gitlab.com/id": "7",
            "job.runner.gitlab.com/name": "unit tests",
        },
    }
    assert history_key(HistoryKey.RUNNER_PROJECT, metadata) == "runner-abc-project-7"
    assert history_key(HistoryKey.PROJECT, metadata) == "project-7"
    assert history_key(HistoryKey.PROJECT_JOB, metadata) == "project-7/unit tests"
    assert history_key(HistoryKey.RUNNER_PROJECT, {"labels": {}}) is None


@pytest.mark.parametrize("key", ["runner-abc-project-7", "project-7/unit tests", "b64.x", "ünï"])
def test_configmap_keys_round_trip_and_are_valid(key: str) -> None:
    stored = to_configmap_key(key)
    assert all(c.isalnum() or c in "-._" for c in stored)
    assert from_configmap_key(stored) == key


def test_from_data_ignores_garbage() -> None:
    data = {
        to_configmap_key("a/b"): "n1@1763942400000,n2@1763942300000",
        "broken": "not a placement",
        "empty": "",
        "wrong": "n3@yesterday",
    }
    assert {k: [p.node for p in v] for k, v in from_data(data).items()} == {"a/b": ["n1", "n2"]}


def test_settings_flags_win_over_env(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-file\n")
    settings = load_settings(
        ["--sizer-url", "https://sizer.example/", "--deadline", "1"],
        {
            "WEBHOOK_SIZER_URL": "http://ignored",
            "WEBHOOK_SIZER_READ_TOKEN_FILE": str(token),
            "WEBHOOK_LISTEN_ADDR": "127.0.0.1:9443",
            "WEBHOOK_MIN_CPU": "100m",
        },
    )
    assert settings.sizer_url == "https://sizer.example"
    assert settings.sizer_read_token == "from-file"
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 9443)
    assert settings.deadline_seconds == 1.0
    assert settings.bounds.minimum == {"cpu": Decimal("0.1")}
    assert "from-file" not in repr(settings)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--sizer-url", "ftp://x"], "--sizer-url"),
        (["--sizer-url", "http://x"], "--sizer-read-token"),
        (["--deadline", "0"], "--deadline"),
        (["--deadline", "6"], "--deadline"),
        (["--sizing-mode", "Sometimes"], "--sizing-mode"),
        (["--min-cpu", "2", "--max-cpu", "1"], "--min-cpu"),
        (["--listen-addr", ":99999"], "--listen-addr"),
        (["--tls-cert-file", "/nonexistent"], "--tls-cert-file"),
        (["--enable-sizing", "maybe"], "--enable-sizing"),
        (["--history-key", "nope"], "--history-key"),
        (["--log-level", "loud"], "--log-level"),
    ],
)
def test_bad_settings_name_the_setting(argv: list[str], named: str) -> None:
    with pytest.raises(SettingsError, match=f"^{named}"):
        load_settings(argv, {})
