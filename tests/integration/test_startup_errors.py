"""The real console scripts: a bad setting stops start-up with one line, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.service_process import poll_until_ok
from runner_sizer.devcluster.webhook_process import NO_KUBERNETES
from runner_sizer.options import package_version

BIN = Path(sys.executable).parent
WEBHOOK, RECORDER, CLUSTER = (
    str(BIN / f"runner-sizer-{name}") for name in ("webhook", "recorder", "cluster")
)


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment outside any cluster, with no kubeconfig and a private temp dir."""
    (tmp_path / "tmp").mkdir()
    outside = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBERNETES_", "KUBECONFIG", "WEBHOOK_", "RECORDER_", "PROMETHEUS_"))
    }
    return {**outside, "HOME": str(tmp_path), "TMPDIR": str(tmp_path / "tmp")}


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return CertificateAuthority().serving("runner-sizer-webhook").write(tmp_path, "tls")


def one_line_error(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def webhook_args(cert: Path, key: Path, *extra: str) -> list[str]:
    return [
        WEBHOOK,
        f"--listen-addr=127.0.0.1:{free_port()}",
        f"--metrics-addr=127.0.0.1:{free_port()}",
        f"--tls-cert-file={cert}",
        f"--tls-key-file={key}",
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--max-cpu=1e1000000"], "--max-cpu (WEBHOOK_MAX_CPU): '1e1000000' is not a cpu"),
        (["--max-cpu=2Gi"], "between 0 and 1024"),
        (["--sidecar-name=helper"], "--sidecar-name (WEBHOOK_SIDECAR_NAME): 'helper' is taken"),
        (["--sidecar-name=Not_A_Label"], "is not a DNS-1123 label"),
        (
            ["--sizer-url=http://127.0.0.1:9", "--sizer-read-token=r", "--sizer-sidecar-image=c"],
            "--sizer-push-token (WEBHOOK_SIZER_PUSH_TOKEN) or --sizer-push-token-file",
        ),
        (["--sizing-mode=x"], "'x' is not one of RequestsOnly, RequestsAndLimits"),
        (["--history-key=x"], "'x' is not one of runner-project, project, project-job"),
        (["--log-level=x"], "--log-level (WEBHOOK_LOG_LEVEL): 'x' is not one of debug, info"),
    ],
)
def test_webhook_bad_setting(
    extra: list[str], expected: str, pair: tuple[Path, Path], home: dict[str, str]
) -> None:
    line = one_line_error(webhook_args(*pair, *NO_KUBERNETES, *extra), home)
    assert line.startswith("runner-sizer-webhook: invalid configuration: --")
    assert expected in line


def test_webhook_empty_token_file(
    tmp_path: Path, pair: tuple[Path, Path], home: dict[str, str]
) -> None:
    empty = tmp_path / "read-token"
    empty.write_text("")
    args = [*NO_KUBERNETES, "--sizer-url=http://127.0.0.1:9"]
    line = one_line_error(webhook_args(*pair, *args, f"--sizer-read-token-file={empty}"), home)
    assert (
        f"--sizer-read-token-file (WEBHOOK_SIZER_READ_TOKEN_FILE): required with --sizer-url "
        f"({empty} is empty)" in line
    )


@pytest.mark.parametrize("problem", ["swapped", "mismatched"])
def test_webhook_unusable_serving_pair(
    problem: str, tmp_path: Path, pair: tuple[Path, Path], home: dict[str, str]
) -> None:
    cert, key = pair
    other_key = CertificateAuthority("other").serving("x").write(tmp_path, "other")[1]
    files = (key, cert) if problem == "swapped" else (cert, other_key)
    line = one_line_error(webhook_args(*files, *NO_KUBERNETES), home)
    assert line.startswith(
        "runner-sizer-webhook: invalid configuration: --tls-cert-file (WEBHOOK_TLS_CERT_FILE)/"
        "--tls-key-file (WEBHOOK_TLS_KEY_FILE): "
    )
    assert str(files[0]) in line and ("swapped" in line or str(files[1]) in line)


def test_kubeconfig_errors_are_the_same_for_both(
    tmp_path: Path, pair: tuple[Path, Path], home: dict[str, str]
) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    webhook = one_line_error(webhook_args(*pair, f"--kubeconfig={missing}"), home)
    recorder = one_line_error([RECORDER, f"--kubeconfig={missing}"], home)
    assert webhook.endswith(
        f"--kubeconfig (WEBHOOK_KUBECONFIG): no such file: {missing}, "
        "or turn off affinity (--enable-affinity=false) "
        "and namespace rules (--watch-namespace-rules=false)"
    )
    assert recorder.endswith(f"--kubeconfig (RECORDER_KUBECONFIG): no such file: {missing}")
    outside = "not running in a cluster and no kubeconfig found: pass --kubeconfig"
    webhook = one_line_error(webhook_args(*pair), home)
    assert webhook.endswith(
        f"{outside}, or turn off affinity (--enable-affinity=false) "
        "and namespace rules (--watch-namespace-rules=false)"
    )
    assert "Service host/port" not in webhook
    assert one_line_error([RECORDER], home).endswith(f"(RECORDER_KUBECONFIG): {outside}")


def test_the_recommender_needs_credentials_only_to_read_oom_records(
    tmp_path: Path, home: dict[str, str]
) -> None:
    recommender = [str(BIN / "runner-sizer-recommender"), "--prometheus-url=http://127.0.0.1:9"]
    ooms = "--oom-configmap=ci-sizer/rs-runner-sizer-ooms"
    missing = tmp_path / "no-such-kubeconfig"
    line = one_line_error([*recommender, ooms, f"--kubeconfig={missing}"], home)
    assert line.endswith(f"--kubeconfig (RECOMMENDER_KUBECONFIG): no such file: {missing}")
    assert one_line_error([*recommender, ooms], home).endswith(
        "(RECOMMENDER_KUBECONFIG): not running in a cluster and no kubeconfig found: "
        "pass --kubeconfig"
    )
    assert "--oom-configmap (RECOMMENDER_OOM_CONFIGMAP): 'ooms' is not NAMESPACE/NAME" in (
        one_line_error([*recommender, "--oom-configmap=ooms"], home)
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--max-bytes=2000000", "--history-shards=1"],
            "--max-bytes (RECORDER_MAX_BYTES): the history could reach",
        ),
        (["--history-key=x"], "'x' is not one of runner-project, project, project-job"),
        (["--log-level=x"], "--log-level (RECORDER_LOG_LEVEL): 'x' is not one of debug"),
    ],
)
def test_recorder_bad_setting(extra: list[str], expected: str, home: dict[str, str]) -> None:
    assert expected in one_line_error([RECORDER, *extra], home)


@pytest.mark.parametrize("script", [WEBHOOK, RECORDER, CLUSTER])
def test_version(script: str) -> None:
    done = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"{Path(script).name} {package_version()}"


def test_cluster_status(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    status = [CLUSTER, "status", f"--state-file={state_file}"]
    down = subprocess.run(status, check=False, capture_output=True, text=True)
    assert (down.returncode, down.stderr.strip()) == (1, "no local cluster is up")
    stand_in = subprocess.Popen(["/bin/sleep", "60"])
    state = {
        "workdir": str(tmp_path),
        "kubeconfig": str(tmp_path / "kubeconfig"),
        "server": "https://127.0.0.1:6443",
        "processes": [{"name": "kube-apiserver", "pid": stand_in.pid, "exe": "/bin/sleep"}],
    }
    state_file.write_text(json.dumps(state))
    try:
        up = subprocess.run(status, check=False, capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        assert up.stdout == f"export KUBECONFIG={tmp_path / 'kubeconfig'}\n"
    finally:
        stand_in.kill()
        stand_in.wait()
    broken = subprocess.run(status, check=False, capture_output=True, text=True)
    assert broken.returncode == 1 and "kube-apiserver not running" in broken.stderr


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_clean_shutdown_leaves_no_metrics_dir_and_logs_only_json(
    pair: tuple[Path, Path], home: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    args = webhook_args(*pair, *NO_KUBERNETES, "--workers=1")
    args[1] = f"--listen-addr=127.0.0.1:{port}"
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=home, start_new_session=True
    )
    try:
        problem = poll_until_ok(
            f"https://127.0.0.1:{port}/healthz",
            exited=lambda: process.poll() is not None,
            verify=False,
        )
        assert problem == ""
        assert list((tmp_path / "tmp").glob("runner-sizer-metrics-*")), "made while running"
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert list((tmp_path / "tmp").glob("runner-sizer-metrics-*")) == []
    lines = stderr.decode().splitlines()
    assert lines and stdout == b""
    for line in lines:
        assert isinstance(json.loads(line), dict), line


def test_a_tls_secret_needs_credentials_and_no_files(
    pair: tuple[Path, Path], home: dict[str, str]
) -> None:
    secret_only = [
        WEBHOOK,
        f"--listen-addr=127.0.0.1:{free_port()}",
        "--tls-secret=ci-sizer/rs-webhook-managed-tls",
        *NO_KUBERNETES,
    ]
    assert one_line_error(secret_only, home).endswith(
        "pass --kubeconfig (--tls-secret reads the certificate through the API)"
    )
    both = one_line_error([*webhook_args(*pair), "--tls-secret=ns/s", *NO_KUBERNETES], home)
    assert both.endswith("--tls-secret (WEBHOOK_TLS_SECRET): or --tls-cert-file, not both")
    neither = one_line_error([WEBHOOK, *NO_KUBERNETES], home)
    assert neither.endswith(
        "--tls-cert-file (WEBHOOK_TLS_CERT_FILE) or --tls-secret (WEBHOOK_TLS_SECRET): "
        "required for HTTPS"
    )
