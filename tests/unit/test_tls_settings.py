"""The webhook's --tls-secret / --tls-manage-webhook flags: one-line errors at start-up."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from runner_sizer.certs.settings import SecretRef, duration
from runner_sizer.webhook.settings import SettingsError, load_settings

BASE = ["--enable-affinity=false", "--watch-namespace-rules=false"]


def test_the_secret_and_its_management() -> None:
    settings = load_settings(
        [*BASE, "--tls-secret=ns/rs-webhook-tls", "--tls-manage-webhook=rs-webhook"],
        {"POD_NAME": "rs-webhook-0"},
    )
    assert settings.tls_secret == SecretRef("ns", "rs-webhook-tls")
    assert settings.needs_kubernetes
    management = settings.tls_management
    assert management is not None and management.configuration == "rs-webhook"
    assert management.identity == "rs-webhook-0"
    assert management.policy.ca_validity == datetime.timedelta(days=365)
    assert management.policy.overlap == datetime.timedelta(seconds=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-secret=only-a-name"], "--tls-secret (WEBHOOK_TLS_SECRET): 'only-a-name' is not"),
        (["--tls-manage-webhook=rs-webhook"], "needs --tls-secret"),
        (
            ["--tls-secret=ns/s", "--tls-manage-webhook=w", "--tls-cert-validity=400d"],
            "--tls-cert-validity (WEBHOOK_TLS_CERT_VALIDITY): longer than --tls-ca-validity",
        ),
        (
            ["--tls-secret=ns/s", "--tls-manage-webhook=w", "--tls-overlap=20d"],
            "must be under a sixth of --tls-cert-validity",
        ),
        (["--tls-ca-validity=1y"], "is not a positive duration such as 60s"),
    ],
)
def test_bad_tls_settings_name_the_setting(args: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings([*BASE, *args], {})
    assert message in str(error.value)


def test_the_secret_or_the_files_not_both(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("x")
    with pytest.raises(SettingsError, match=r"--tls-secret .*: or --tls-cert-file, not both"):
        load_settings(
            [*BASE, f"--tls-cert-file={cert}", f"--tls-key-file={cert}", "--tls-secret=ns/s"], {}
        )


def test_durations() -> None:
    assert duration("90d") == datetime.timedelta(days=90)
    assert duration("30s") == datetime.timedelta(seconds=30)
    with pytest.raises(ValueError, match="positive duration"):
        duration("0s")
