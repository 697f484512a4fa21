"""TLS mode `managed` (the chart's default) on the local control plane, no cert-manager.

The chart is installed in URL mode (the apiserver dials 127.0.0.1 only); the webhook
runs locally with the Deployment's own environment and a token of the chart's
ServiceAccount, so it keeps its CA and caBundle with exactly the chart's RBAC.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from runner_sizer.certs.authority import hosts_of, signed_by, split_pem
from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.receiver_standin import StandinServer
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import STANDIN_TOKENS, WebhookProcess
from runner_sizer.devcluster.webhooks import has_status_annotation
from runner_sizer.kube.client import KubeClient
from tests.chart.conftest import CHART
from tests.e2e.conftest import WATCH_LABEL, ClusterUnderTest
from tests.e2e.test_chart_e2e import crds, helm  # noqa: F401 - crds: cert-manager's CRDs
from tests.support.kube import create_pod, mint_token, pods_path, token_kubeconfig, wait_for

_RUN = uuid.uuid4().hex[:6]
NAMESPACE = f"rs-managed-tls-{_RUN}"
RELEASE = "mt"
PODS = f"mt-jobs-{_RUN}"
SELECTOR_LABEL = "managed-tls-e2e"
SECRET = f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}-webhook-managed-tls"
CONFIGURATION = (
    f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{RELEASE}-webhook"
)
WEBHOOK_NAME = f"{RELEASE}.{NAMESPACE}.pods.runner-sizer.io"
# Paths and addresses of the pod, not of this machine.
POD_ONLY_ENV = {"WEBHOOK_LISTEN_ADDR", "WEBHOOK_METRICS_ADDR", "WEBHOOK_WORKER_TMP_DIR"}


@dataclass
class Release:
    cluster: ClusterUnderTest
    port: int
    standin: StandinServer
    workdir: Path
    webhook: WebhookProcess | None = None
    sets: list[str] = field(default_factory=list)

    def upgrade(self, *sets: str) -> None:
        args = ["upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE]
        for item in (
            f"webhook.admission.url=https://127.0.0.1:{self.port}/mutate",
            f"webhook.admission.namespaceSelector.matchLabels.{SELECTOR_LABEL}=yes",
            f"global.sizer.url={self.standin.url}",
            "global.sizer.readToken=read-token",
            "global.sizer.pushToken=push-token",
            "webhook.sidecarImage=registry.example/sizer-collector:1.0",
            "webhook.features.affinity=false",
            "recorder.enabled=false",
            *sets,
        ):
            args += ["--set", item]
        helm(self.cluster, *args)

    def start_webhook(self) -> WebhookProcess:
        """The Deployment's environment, with a token of its ServiceAccount."""
        if self.webhook is not None:
            self.webhook.stop()
        deployment = self.cluster.kube.get(
            f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{RELEASE}-webhook"
        )
        env = {
            e["name"]: e["value"]
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            if "value" in e and e["name"] not in POD_ONLY_ENV and not e["name"].endswith("_FILE")
        }
        token = mint_token(self.cluster.kube, NAMESPACE, f"{RELEASE}-webhook")
        kubeconfig = token_kubeconfig(self.workdir / "webhook.kubeconfig", self.cluster.kube, token)
        self.webhook = WebhookProcess(
            CertificateAuthority(),
            port=self.port,
            extra_args=[f"--kubeconfig={kubeconfig}"],
            env={
                **env,
                **STANDIN_TOKENS,
                "POD_NAMESPACE": NAMESPACE,
                "POD_NAME": f"{RELEASE}-webhook-0",
                # Never shed: on 2 shared cores a review may wait past the 50 ms budget and be
                # allowed unchanged, which says nothing about TLS.
                "WEBHOOK_SHED_AFTER": "0",
            },
            tls_secret=env["WEBHOOK_TLS_SECRET"],
        )
        return self.webhook.start(timeout=30)

    def secret(self) -> dict[str, str]:
        data: dict[str, str] = self.cluster.kube.get(SECRET).get("data") or {}
        return data

    def bundle(self) -> str:
        hooks = self.cluster.kube.get(CONFIGURATION)["webhooks"]
        return str(hooks[0]["clientConfig"].get("caBundle", ""))


@pytest.fixture(scope="module")
def release(
    cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    for name, labels in ((NAMESPACE, {}), (PODS, {SELECTOR_LABEL: "yes", WATCH_LABEL: "true"})):
        cluster.kube.post("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
    standin = StandinServer().start()
    state = Release(cluster, free_port(), standin, tmp_path_factory.mktemp("managed"))
    state.upgrade()
    state.start_webhook()
    yield state
    if state.webhook is not None:
        state.webhook.stop()
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE)
    standin.stop()
    cluster.kube.delete(pods_path(PODS), params={"gracePeriodSeconds": 0})
    for name in (PODS, NAMESPACE):
        cluster.kube.delete(f"/api/v1/namespaces/{name}")


def filled(release: Release) -> dict[str, str] | None:
    data = release.secret()
    return data if data.get("tls.crt") and release.bundle() == data.get("ca.crt") else None


def test_installs_without_cert_manager_and_the_apiserver_trusts_the_kept_ca(
    release: Release,
) -> None:
    manifest = helm(release.cluster, "get", "manifest", RELEASE, "-n", NAMESPACE)
    assert "cert-manager.io" not in manifest
    data = wait_for(lambda: filled(release), timeout=30, what="the Secret and the caBundle")
    serving = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
    (ca,) = split_pem(base64.b64decode(data["ca.crt"]))
    assert signed_by(serving, x509.load_pem_x509_certificate(ca))
    assert hosts_of(serving) == {"127.0.0.1"}, "the SAN follows the URL's host"
    kube = release.cluster.kube
    wait_for(
        lambda: has_status_annotation(
            create_pod(kube, PODS, runner_pod(RunnerJob()), dry_run=True)
        ),
        what="the apiserver to call the webhook over the kept CA",
    )
    pod = create_pod(kube, PODS, runner_pod(RunnerJob()))
    assert has_status_annotation(pod)
    assert pod["spec"]["initContainers"][-1]["name"] == "sizer-collector"


def test_an_upgrade_that_changes_nothing_keeps_the_ca(release: Release) -> None:
    before = wait_for(lambda: filled(release), timeout=30, what="the kept pair")
    release.upgrade()
    time.sleep(2)  # a keeper that reacted would have done so by now
    assert release.secret() == before
    assert release.bundle() == before["ca.crt"]


def test_a_wiped_ca_bundle_is_patched_again(release: Release) -> None:
    """What an Argo CD sync without ignoreDifferences, or a replace, does."""
    kube = release.cluster.kube
    configuration = kube.get(CONFIGURATION)
    for hook in configuration["webhooks"]:
        hook["clientConfig"].pop("caBundle", None)
    kube.put(CONFIGURATION, configuration)
    wait_for(lambda: filled(release), timeout=15, what="the caBundle to come back")


def apiserver_fail_open(kube: KubeClient) -> float:
    text = kube.session.get(f"{kube.server}/metrics", timeout=10).text
    pattern = re.compile(
        r'^apiserver_admission_webhook_fail_open_count\{[^}]*name="'
        + re.escape(WEBHOOK_NAME)
        + r'"[^}]*\} (\S+)$',
        re.MULTILINE,
    )
    return sum(float(v) for v in pattern.findall(text))


def test_forced_rotation_under_steady_admissions_fails_none_open(release: Release) -> None:
    """A short validity forces CA rotations while pods are created at >= 50/s for 30 s.

    Dry-run creates: the same admission chain (the webhook is NoneOnDryRun), without
    writing 1,800 pods that 2 busy cores would then have to schedule and delete.
    """
    kube = release.cluster.kube
    release.upgrade(
        "webhook.tls.managed.caValidity=30s",
        "webhook.tls.managed.certValidity=15s",
        "webhook.tls.managed.overlap=2s",
    )
    release.start_webhook()
    wait_for(lambda: filled(release), timeout=30, what="the kept pair after the restart")
    fail_open_before = apiserver_fail_open(kube)
    signers: set[str] = set()
    stop = threading.Event()

    def watch_signers() -> None:
        while not stop.wait(0.2):
            signers.add(release.secret().get("ca-signer.crt", ""))

    watcher = threading.Thread(target=watch_signers, daemon=True)
    watcher.start()
    rate, seconds = 60, 30
    results: list[dict[str, Any]] = []
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = []
        for index in range(rate * seconds):
            time.sleep(max(0.0, start + index / rate - time.monotonic()))
            job = RunnerJob(job_id=9_000_000 + index, runner_short=uuid.uuid4().hex[:8])
            futures.append(pool.submit(create_pod, kube, PODS, runner_pod(job), dry_run=True))
        offered = time.monotonic() - start
        results = [f.result() for f in futures]
    elapsed = time.monotonic() - start
    stop.set()
    watcher.join()
    unmutated = [p for p in results if not has_status_annotation(p)]
    assert not unmutated, f"{len(unmutated)} of {len(results)} pods went through unmutated"
    assert apiserver_fail_open(kube) == fail_open_before
    assert len(signers - {""}) >= 2, "the CA rotated during the run"
    # Offered at 60/s (what completes depends on what else the 2 cores run: printed).
    assert len(results) / offered >= 50, f"{len(results)} offered in {offered:.1f}s"
    print(
        f"\n{len(results)} admissions offered in {offered:.1f}s, done in {elapsed:.1f}s, "
        f"{len(signers - {''})} CAs signed serving certificates meanwhile"
    )


@pytest.mark.usefixtures("crds")
def test_switching_to_helm_and_cert_manager_and_back(release: Release) -> None:
    """The configuration no longer names the kept Secret in helm or cert-manager mode, so
    the running keeper leaves the caBundle to Helm or cainjector; back to managed, the
    kept Secret is adopted again and the keeper patches the bundle."""
    kube = release.cluster.kube
    release.upgrade("webhook.tls.mode=helm")
    helm_ca = kube.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}-webhook-tls")["data"][
        "ca.crt"
    ]
    assert release.bundle() == helm_ca
    release.upgrade("webhook.tls.mode=cert-manager")
    annotations = kube.get(CONFIGURATION)["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{RELEASE}-webhook"
    assert "runner-sizer.io/inject-ca-from" not in annotations
    time.sleep(3)  # a keeper that still patched would have done so by now
    assert release.bundle() == "", "left to cainjector (none runs here)"
    release.upgrade()
    release.start_webhook()
    wait_for(lambda: filled(release), timeout=30, what="the kept caBundle again")
    wait_for(
        lambda: has_status_annotation(
            create_pod(kube, PODS, runner_pod(RunnerJob()), dry_run=True)
        ),
        what="pods mutated again",
    )
