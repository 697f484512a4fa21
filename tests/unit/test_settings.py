"""Settings: every bad value is one line naming the setting (and the choices)."""

from __future__ import annotations

import decimal
import logging
from pathlib import Path

import pytest

from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.history.ledger import DEFAULT_MAX_BYTES
from runner_sizer.kube.kubeconfig import kubeconfig_problem
from runner_sizer.options import OptionError, duration
from runner_sizer.recorder import settings as recorder
from runner_sizer.webhook import settings as webhook
from runner_sizer.webhook.settings import SettingsError, load_settings
from runner_sizer.webhook.tls import pair_problem
from runner_sizer.webhook.watched import TokenSource

SIDECAR = ["--sizer-url=http://127.0.0.1:1", "--sizer-read-token=r", "--sizer-sidecar-image=c:1"]


def error_of(argv: list[str]) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(argv, {})
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--max-cpu=1e1000000"], "--max-cpu (WEBHOOK_MAX_CPU): '1e1000000' is not a cpu"),
        (["--max-cpu=2Gi"], "--max-cpu (WEBHOOK_MAX_CPU): '2Gi' is not a cpu quantity"),
        (["--min-cpu=1025"], "between 0 and 1024"),
        (["--max-memory=2Pi"], "--max-memory (WEBHOOK_MAX_MEMORY): '2Pi' is not a memory"),
        (["--default-cpu-request=1e5000"], "--default-cpu-request (WEBHOOK_DEFAULT_CPU_REQUEST)"),
        (["--default-memory-request=1e20"], "--default-memory-request"),
        (["--sidecar-name=Sizer_Collector"], "--sidecar-name (WEBHOOK_SIDECAR_NAME): 'Sizer_"),
        (["--sidecar-name=" + "a" * 64], "is not a DNS-1123 label"),
        (["--sidecar-name=helper"], "is taken by a runner container (build, helper, init-perm"),
        (["--sidecar-name=init-permissions"], "--sidecar-name (WEBHOOK_SIDECAR_NAME)"),
        (["--sidecar-name=job", "--build-container=job"], "taken by a runner container (job,"),
        (
            ["--sizing-mode=Sometimes"],
            "--sizing-mode (WEBHOOK_SIZING_MODE): 'Sometimes' is not one of RequestsOnly, "
            "RequestsAndLimits",
        ),
        (
            ["--history-key=nope"],
            "--history-key (WEBHOOK_HISTORY_KEY): 'nope' is not one of runner-project, "
            "project, project-job",
        ),
        (["--log-level=loud"], "'loud' is not one of debug, info, warning, error"),
        (
            SIDECAR,
            "--sizer-push-token (WEBHOOK_SIZER_PUSH_TOKEN) or --sizer-push-token-file "
            "(WEBHOOK_SIZER_PUSH_TOKEN_FILE): required with --sizer-sidecar-image",
        ),
        (["--min-memory=2Gi", "--max-memory=1Gi"], "--min-memory (WEBHOOK_MIN_MEMORY): greater"),
    ],
)
def test_bad_values_are_one_line_naming_the_setting(argv: list[str], expected: str) -> None:
    assert expected in error_of(argv)


def test_any_parser_failure_is_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    def overflowing(value: str) -> decimal.Decimal:
        raise decimal.Overflow

    monkeypatch.setattr(webhook, "parse_quantity", overflowing)
    assert error_of(["--max-cpu=1"]).startswith("--max-cpu (WEBHOOK_MAX_CPU): '1' is not")


def test_sidecar_without_push_token_is_fine_when_turned_off() -> None:
    settings = load_settings([*SIDECAR, "--enable-sidecar=false"], {})
    assert not settings.sidecar_enabled


def test_empty_token_files_count_as_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    read = error_of(["--sizer-url=http://x", f"--sizer-read-token-file={empty}"])
    assert read.startswith("--sizer-read-token (WEBHOOK_SIZER_READ_TOKEN) or")
    assert f"({empty} is empty)" in read
    push = error_of([*SIDECAR, f"--sizer-push-token-file={empty}"])
    assert push.startswith("--sizer-push-token (WEBHOOK_SIZER_PUSH_TOKEN) or")


def test_token_files_are_reread_when_they_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    read, push = tmp_path / "read", tmp_path / "push"
    read.write_text("read-1\n")
    push.write_text("push-1")
    settings = load_settings(
        [*SIDECAR, f"--sizer-read-token-file={read}", f"--sizer-push-token-file={push}"], {}
    )
    assert (settings.sizer_read_token, settings.sizer_push_token) == ("read-1", "push-1")
    read.write_text("read-2-rotated")
    assert settings.sizer_read_token == "read-2-rotated"
    caplog.set_level(logging.INFO)
    push.write_text("")  # a half-written update keeps the previous token
    assert settings.sizer_push_token == "push-1"
    push.unlink()
    assert settings.sizer_push_token == "push-1"
    push.write_text("push-2")
    assert settings.sizer_push_token == "push-2"
    for secret in ("read-1", "read-2", "push-1", "push-2"):
        assert secret not in repr(settings) and secret not in caplog.text


def test_inline_tokens_stay_out_of_repr() -> None:
    settings = load_settings(
        ["--sizer-url=http://x", "--sizer-read-token=s3cr3t-read"],
        {"WEBHOOK_SIZER_PUSH_TOKEN": "s3cr3t-push"},
    )
    assert settings.sizer_read_token == "s3cr3t-read"
    assert settings.sizer_push_token == "s3cr3t-push"
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in repr(TokenSource("s3cr3t"))


def test_help_shows_each_default_once_and_booleans_as_such(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        load_settings(["--help"], {})
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "'true'" not in text
    assert "--enable-sizing {true,false} apply the receiver's resource recommendation " in text
    assert "(default: true)" in text
    assert "--sizing-mode {RequestsOnly,RequestsAndLimits}" in text
    assert "its namespace (default: POD_NAMESPACE or ci-sizer) --kubeconfig" in text


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--history-key=nope"], "--history-key (RECORDER_HISTORY_KEY): 'nope' is not one of "),
        (["--log-level=loud"], "--log-level (RECORDER_LOG_LEVEL): 'loud' is not one of debug"),
        (
            ["--history-shards=2", "--max-bytes=2000000"],
            "--max-bytes (RECORDER_MAX_BYTES): the history could reach",
        ),
        (["--max-keys=50000", "--max-bytes=20000000"], "--max-bytes (RECORDER_MAX_BYTES)"),
        (["--history-shards=33"], "--history-shards (RECORDER_HISTORY_SHARDS): at most 32"),
        (["--compact-after-bytes=1000000"], "--compact-after-bytes (RECORDER_COMPACT_AFTER"),
    ],
)
def test_recorder_bad_values(argv: list[str], named: str) -> None:
    with pytest.raises(OptionError) as caught:
        recorder.load_settings(argv, {})
    assert str(caught.value).startswith(named)


def test_recorder_history_bound() -> None:
    # 253-char key + 3 x (253-char node, '@', 13 digits, ',') = 1057 bytes per entry.
    assert recorder.history_bound(5000, 3, 10**9) == 5000 * 1057
    assert recorder.history_bound(5000, 3, DEFAULT_MAX_BYTES) == 921600
    # A small key count keeps a large --max-bytes harmless.
    assert recorder.load_settings(["--max-bytes=2000000", "--max-keys=900"], {}).max_keys == 900
    # 50,000 keys (~8 MB) fit the default 16 shards.
    large = ["--max-keys=50000", "--max-bytes=9000000"]
    assert recorder.load_settings(large, {}).history_shards == 16


def test_kubeconfig_problems(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\n")
    token = tmp_path / "token"
    nowhere = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "missing")}
    assert kubeconfig_problem(str(tmp_path / "nope"), {}) == f"no such file: {tmp_path / 'nope'}"
    assert kubeconfig_problem(str(kubeconfig), {}) is None
    assert kubeconfig_problem(None, {"KUBECONFIG": f"/nope:{kubeconfig}"}) is None
    assert "pass --kubeconfig" in str(kubeconfig_problem(None, nowhere, token))
    in_cluster = {
        **nowhere,
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
    }
    assert "pass --kubeconfig" in str(kubeconfig_problem(None, in_cluster, token))
    token.write_text("t")
    assert kubeconfig_problem(None, in_cluster, token) is None


def test_serving_pair_problems(tmp_path: Path) -> None:
    cert, key = CertificateAuthority().serving("a").write(tmp_path, "a")
    other_cert, other_key = CertificateAuthority("other").serving("b").write(tmp_path, "b")
    assert pair_problem(cert, key) is None
    assert pair_problem(key, cert) == f"{key} holds no PEM certificate (swapped with the key?)"
    assert pair_problem(cert, other_cert) == f"{other_cert} holds no PEM private key"
    assert f"cannot serve {cert} with key {other_key}" in str(pair_problem(cert, other_key))
    assert pair_problem(cert, tmp_path / "gone") == f"cannot read {tmp_path / 'gone'}: " + (
        "No such file or directory"
    )


def test_durations() -> None:
    assert duration("14d") == 14 * 86400
    assert duration("1h30m") == 5400
    assert duration("300") == 300 and duration("2.5") == 2.5
    for bad in ("", "0", "-5", "5x", "1h 30m", "nan", "inf"):
        with pytest.raises(ValueError):
            duration(bad)


def test_a_token_checked_on_every_request_looks_at_its_file_once_per_interval(
    tmp_path: Path,
) -> None:
    token, now = tmp_path / "token", [100.0]
    token.write_text("first")
    source = TokenSource(path=token, recheck_after=1.0, clock=lambda: now[0])
    token.write_text("second")
    now[0] += 0.5
    assert source.current() == "first"  # within the interval: the file is not looked at
    now[0] += 0.6
    assert source.current() == "second"
    token.write_text("third")
    now[0] += 0.9
    assert source.current() == "second"
    now[0] += 0.2
    assert source.current() == "third"
