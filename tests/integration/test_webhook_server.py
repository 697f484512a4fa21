"""Each receiver outcome, through gunicorn over TLS, with a real HTTP receiver."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import requests
from cryptography import x509

from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.receiver_standin import StandinServer
from runner_sizer.devcluster.runnerpods import RunnerJob
from runner_sizer.devcluster.webhook_process import NO_KUBERNETES, WebhookProcess, webhook_for
from runner_sizer.webhook.tls import ReloadingServerContext
from tests.integration.conftest import (
    RECOMMENDED,
    Admission,
    metric_value,
    post_review,
    start_webhook,
)
from tests.support.kube import wait_for
from tests.support.promtool import assert_promtool_accepts
from tests.support.reviews import review_for, runner_review

Admit = Callable[[RunnerJob], Admission]


def build(admission: Admission) -> dict[str, object]:
    container: dict[str, object] = next(
        c for c in admission.pod["spec"]["containers"] if c["name"] == "build"
    )
    return container


def test_recommendation_applied_and_sidecar_injected(admit: Admit, fresh_job: RunnerJob) -> None:
    admission = admit(fresh_job)
    response = admission.review["response"]
    assert admission.review["apiVersion"] == "admission.k8s.io/v1"
    assert admission.review["kind"] == "AdmissionReview"
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    assert build(admission)["resources"] == {
        "requests": {"cpu": "1500m", "memory": "3Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    sidecar = admission.pod["spec"]["initContainers"][-1]
    assert sidecar["name"] == "sizer-collector" and sidecar["restartPolicy"] == "Always"
    token = next(e["value"] for e in sidecar["env"] if e["name"] == "COLLECTOR_PUSH_TOKEN")
    assert token.startswith("push-")
    assert admission.status["sizing"] == "applied"


def test_steady_state_makes_no_receiver_calls(
    admit: Admit, fresh_job: RunnerJob, standin: StandinServer
) -> None:
    before = sum(standin.state.calls.values())
    for _ in range(40):
        assert admit(fresh_job).status["sizing"] == "applied"
    # One sizing and one token call per worker process at most.
    assert sum(standin.state.calls.values()) - before <= 4


def test_cold_start_404_leaves_resources(admit: Admit, standin: StandinServer) -> None:
    job = RunnerJob(job_name="never seen")
    original = runner_review(job)["request"]["object"]["spec"]["containers"][0]["resources"]
    admission = admit(job)
    assert build(admission)["resources"] == original
    assert admission.status["sizing"] == "skipped:cold_start"
    assert admission.status["sidecar"] == "injected"


def test_receiver_errors_leave_the_pod_alone(
    admit: Admit, fresh_job: RunnerJob, standin: StandinServer
) -> None:
    original = runner_review(fresh_job)["request"]["object"]
    for mode, reason in (("500", "receiver_error"), ("garbage", "invalid_answer")):
        standin.state.set_mode(mode)
        job = RunnerJob(job_name=f"{fresh_job.job_name}-{mode}", ref=fresh_job.ref)
        admission = admit(job)
        assert admission.review["response"]["allowed"] is True
        assert build(admission)["resources"] == original["spec"]["containers"][0]["resources"]
        assert admission.status["sizing"] == f"skipped:{reason}"


def test_receiver_down_still_allows(standin: StandinServer) -> None:
    process = WebhookProcess(
        CertificateAuthority(),
        extra_args=[
            "--sizer-url=http://127.0.0.1:9",
            "--sizer-sidecar-image=c:1",
            *NO_KUBERNETES,
        ],
        env={"WEBHOOK_SIZER_READ_TOKEN": "r", "WEBHOOK_SIZER_PUSH_TOKEN": "p"},
    ).start()
    try:
        admission = post_review(process, runner_review())
        assert admission.status == {
            "sizing": "skipped:receiver_error",
            "sidecar": "skipped:receiver_error",
            "affinity": "skipped:disabled",
            "dryRun": False,
        }
    finally:
        process.stop()


def test_hanging_receiver_is_cut_off_at_the_deadline(
    webhook: WebhookProcess, fresh_job: RunnerJob, standin: StandinServer
) -> None:
    standin.state.set_mode("hang")
    started = time.monotonic()
    admission = post_review(webhook, runner_review(fresh_job))
    elapsed = time.monotonic() - started
    standin.state.set_mode("ok")
    assert admission.review["response"]["allowed"] is True
    assert admission.status["sizing"] == "skipped:timeout"
    # Both calls together stay inside the 0.5 s budget (plus transport slack).
    assert elapsed < 1.5, elapsed
    assert (
        metric_value(webhook, "runner_sizer_webhook_skipped_injections_total", reason="timeout")
        >= 1
    )


def test_breaker_opens_then_closes(standin: StandinServer, fresh_job: RunnerJob) -> None:
    process = start_webhook(standin, "--workers=1", "--breaker-failures=2", "--breaker-cooldown=1")
    try:
        standin.state.set_mode("500")
        for index in range(2):
            post_review(process, runner_review(RunnerJob(job_name=f"breaker {index}")))
        calls = sum(standin.state.calls.values())
        admission = post_review(process, runner_review(RunnerJob(job_name="breaker open")))
        assert admission.status["sizing"] == "skipped:breaker_open"
        assert sum(standin.state.calls.values()) == calls, "an open breaker makes no call"
        assert metric_value(process, "runner_sizer_webhook_receiver_breaker_open") == 1
        standin.state.set_mode("ok")
        time.sleep(1.1)
        assert post_review(process, runner_review(fresh_job)).status["sizing"] == "applied"
        assert metric_value(process, "runner_sizer_webhook_receiver_breaker_open") == 0
    finally:
        process.stop()


def _served_serial(process: WebhookProcess) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", process.port)) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_rotated_certificate_is_served_without_restart(webhook: WebhookProcess) -> None:
    before = _served_serial(webhook)
    new_ca = CertificateAuthority("rotated-ca")
    webhook.write_serving_cert(new_ca)
    after = _served_serial(webhook)
    assert after != before
    webhook.ca_file.write_bytes(new_ca.cert_pem)
    assert requests.get(f"{webhook.url}/healthz", verify=str(webhook.ca_file), timeout=5).ok


def test_serving_context_requires_tls_1_2(webhook: WebhookProcess) -> None:
    context = ReloadingServerContext(webhook.workdir / "tls.crt", webhook.workdir / "tls.key")
    assert context.current().minimum_version is ssl.TLSVersion.TLSv1_2


def test_malformed_requests_get_4xx_never_5xx(webhook: WebhookProcess) -> None:
    url, verify = f"{webhook.url}/mutate", str(webhook.ca_file)
    bodies: list[bytes] = [
        b"",
        b"not json",
        b"[]",
        b'{"request": 1}',
        b'{"request": {"uid": ""}}',
        b"\xff\xfe",
    ]
    for body in bodies:
        response = requests.post(url, data=body, verify=verify, timeout=5)
        assert response.status_code == 400, (body, response.status_code)
    huge = requests.post(url, data=b"x" * (5 * 1024 * 1024), verify=verify, timeout=10)
    assert huge.status_code == 413
    # Chunked, with no length to refuse it by before it is read.
    streamed = requests.post(url, data=iter([b" " * 1024 * 1024] * 5), verify=verify, timeout=10)
    assert streamed.status_code == 413
    chunks = iter([json.dumps(runner_review()).encode()])
    whole = requests.post(url, data=chunks, verify=verify, timeout=5)
    assert whole.status_code == 200 and whole.json()["response"]["allowed"] is True
    odd = runner_review()
    odd["request"]["object"] = {"spec": "nonsense", "metadata": {"labels": {"pod": 7}}}
    answer = requests.post(url, json=odd, verify=verify, timeout=5)
    assert answer.status_code == 200 and answer.json()["response"]["allowed"] is True


def test_non_runner_and_update_are_allowed_unchanged(webhook: WebhookProcess) -> None:
    plain = review_for(
        {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    )
    update = runner_review()
    update["request"]["operation"] = "UPDATE"
    for review in (plain, update):
        admission = post_review(webhook, review)
        assert admission.review["response"] == {"uid": review["request"]["uid"], "allowed": True}


def test_shed_answers_are_valid_reviews_that_change_nothing(
    standin: StandinServer, fresh_job: RunnerJob
) -> None:
    """A budget of 1 us is past before any work starts (the TLS read and the HTTP parse
    alone take longer), so every admission is shed: sequential and 4 at a time."""
    process = start_webhook(standin, "--shed-after=0.000001")
    try:
        reviews = [runner_review(fresh_job) for _ in range(12)]
        calls = sum(standin.state.calls.values())
        admissions = [post_review(process, review) for review in reviews[:4]]
        with ThreadPoolExecutor(4) as pool:
            admissions += pool.map(partial(post_review, process), reviews[4:])
        for review, admission in zip(reviews, admissions, strict=True):
            assert admission.status_code == 200
            assert admission.review == {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": review["request"]["uid"], "allowed": True},
            }
        assert metric_value(process, "runner_sizer_webhook_admissions_total", outcome="shed") == 12
        assert sum(standin.state.calls.values()) == calls, "a shed admission asks nothing"
    finally:
        process.stop()


def test_metrics_are_exposed(webhook: WebhookProcess, admit: Admit, fresh_job: RunnerJob) -> None:
    admit(fresh_job)
    text = requests.get(webhook.metrics_url, timeout=5).text
    for name in (
        "runner_sizer_webhook_admissions_total",
        "runner_sizer_webhook_mutations_total",
        "runner_sizer_webhook_skipped_injections_total",
        "runner_sizer_webhook_admission_duration_seconds_bucket",
        "runner_sizer_webhook_receiver_request_duration_seconds_bucket",
        "runner_sizer_webhook_receiver_responses_total",
        "runner_sizer_webhook_cache_lookups_total",
    ):
        assert name in text, name
    assert metric_value(webhook, "runner_sizer_webhook_mutations_total", mutation="sidecar") >= 1
    assert metric_value(webhook, "runner_sizer_webhook_cache_lookups_total", result="hit") >= 0


def test_connections_are_counted(webhook: WebhookProcess) -> None:
    before = metric_value(webhook, "runner_sizer_http_connections_total")
    for _ in range(3):
        with requests.Session() as session:  # one connection, two requests
            for _ in range(2):
                session.get(f"{webhook.url}/healthz", verify=str(webhook.ca_file), timeout=5)
    assert metric_value(webhook, "runner_sizer_http_connections_total") == before + 3


def test_metric_names_pass_promtool(
    webhook: WebhookProcess, admit: Admit, fresh_job: RunnerJob
) -> None:
    admit(fresh_job)
    text = requests.get(webhook.metrics_url, timeout=5).text
    assert_promtool_accepts(text)


def test_tokens_never_reach_the_logs(
    webhook: WebhookProcess, admit: Admit, fresh_job: RunnerJob
) -> None:
    admission = admit(fresh_job)
    sidecar_env = {
        e["name"]: e.get("value") for e in admission.pod["spec"]["initContainers"][-1]["env"]
    }
    log = webhook.process.log_file.read_text()
    assert '"webhook ready"' in log, "the start-up line (with the settings) is there"
    for secret in ("read-token", "push-token", sidecar_env["COLLECTOR_PUSH_TOKEN"]):
        assert secret not in log


def test_receiver_behind_a_private_ca(
    tmp_path: Path, fresh_job: RunnerJob, standin: StandinServer
) -> None:
    """--sizer-ca-file wins over REQUESTS_CA_BUNDLE and the system store."""
    private = CertificateAuthority("receiver-private-ca")
    cert, key = private.serving("receiver").write(tmp_path, "receiver")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    secured = StandinServer(standin.state, tls=context).start()
    ca_file = tmp_path / "receiver-ca.crt"
    ca_file.write_bytes(private.cert_pem)
    trusting = webhook_for(secured.url, *NO_KUBERNETES, f"--sizer-ca-file={ca_file}")
    trusting.env = {**trusting.env, "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
    untrusting = webhook_for(secured.url, *NO_KUBERNETES)
    try:
        assert post_review(trusting.start(), runner_review(fresh_job)).status["sizing"] == "applied"
        assert (
            post_review(untrusting.start(), runner_review(fresh_job)).status["sizing"]
            == "skipped:receiver_error"
        )
    finally:
        trusting.stop()
        untrusting.stop()
        secured.stop()


def test_serves_without_a_kubernetes_api(
    standin: StandinServer, fresh_job: RunnerJob, tmp_path: Path
) -> None:
    """No API server answers: admissions go on without affinity, and /readyz says why."""
    unreachable = tmp_path / "kubeconfig"
    unreachable.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "gone",
                        "cluster": {
                            "server": f"https://127.0.0.1:{free_port()}",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "gone", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    process = webhook_for(standin.url, f"--kubeconfig={unreachable}").start()
    try:

        def readiness() -> requests.Response:
            return requests.get(f"{process.url}/readyz", verify=str(process.ca_file), timeout=5)

        wait_for(
            lambda: "history ConfigMap unavailable" in readiness().json()["reason"],
            what="the reason",
        )
        assert readiness().status_code == 503
        admission = post_review(process, runner_review(fresh_job))
        # Without the namespace's LimitRanges and quotas nothing is added that they could refuse.
        assert admission.status["sizing"] == "skipped:rules_unknown"
        assert admission.status["affinity"] == "skipped:no_history"
    finally:
        process.stop()


def test_token_files_are_reread_when_rotated(standin: StandinServer, tmp_path: Path) -> None:
    """A rotated read token is used from the next call on, without a restart."""
    read_token = tmp_path / "read-token"
    read_token.write_text("stale-token\n")
    process = webhook_for(standin.url, *NO_KUBERNETES, f"--sizer-read-token-file={read_token}")
    process.env = {"WEBHOOK_SIZER_PUSH_TOKEN": "push-token"}
    process.start()
    try:
        first = RunnerJob(job_name="rotation before")
        standin.state.recommendations[f"acme/ml-pipeline/{first.ref}/{first.job_name}"] = (
            RECOMMENDED
        )
        assert post_review(process, runner_review(first)).status["sizing"] == (
            "skipped:receiver_error"
        )
        read_token.write_text(standin.state.read_token)
        second = RunnerJob(job_name="rotation after")
        standin.state.recommendations[f"acme/ml-pipeline/{second.ref}/{second.job_name}"] = (
            RECOMMENDED
        )
        assert post_review(process, runner_review(second)).status["sizing"] == "applied"
        assert "stale-token" not in process.process.log_file.read_text()
    finally:
        process.stop()


def test_stale_answer_is_served_when_the_receiver_fails(
    standin: StandinServer, fresh_job: RunnerJob
) -> None:
    process = start_webhook(standin, "--workers=1", "--cache-ttl=0.3")
    try:
        assert post_review(process, runner_review(fresh_job)).status["sizing"] == "applied"
        standin.state.set_mode("500")
        time.sleep(0.4)  # the fresh entry has expired
        assert post_review(process, runner_review(fresh_job)).status["sizing"] == "applied"
        assert (
            metric_value(process, "runner_sizer_webhook_cache_lookups_total", result="stale") == 1
        )
    finally:
        standin.state.set_mode("ok")
        process.stop()
