"""The chart installed into a real API server, and both services run with its ServiceAccounts.

The webhook configuration is rendered with `webhook.admission.url` on loopback:
these machines let the apiserver dial 127.0.0.1 only, never a Service's ClusterIP.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner_sizer.devcluster.binaries import BUILD_SCRIPT, ensure_binaries
from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.pki import CertificateAuthority, KeyPair
from runner_sizer.devcluster.receiver_standin import StandinServer
from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import STANDIN_TOKENS, WebhookProcess
from runner_sizer.devcluster.webhooks import has_status_annotation
from runner_sizer.history.ledger import from_data
from runner_sizer.history.recordset_store import RecordSet
from runner_sizer.kube.client import KubeClient, KubeError
from tests.chart.conftest import CHART, CI_VALUES, KUBE_VERSION
from tests.chart.parent import build_parent_chart
from tests.e2e.conftest import ClusterUnderTest
from tests.support.kube import create_pod, mint_token, pods_path, token_kubeconfig, wait_for

NAMESPACE = "runner-sizer-system"
RELEASE = "rs"
VALIDATION_NAMESPACE = "runner-sizer-validate"
HISTORY = f"{RELEASE}-runner-sizer-history"  # release-scoped by the chart


@dataclass
class Installed:
    webhook_port: int
    standin: StandinServer
    workdir: Path


def run(*args: str, kubeconfig: Path, stdin: str | None = None) -> str:
    result = subprocess.run(
        [*args, f"--kubeconfig={kubeconfig}"],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{args[:3]}: {result.stdout}{result.stderr}"
    return result.stdout


def helm(cluster: ClusterUnderTest, *args: str) -> str:
    return run(str(ensure_binaries().helm), *args, kubeconfig=cluster.kubeconfig)


def install_args(installed: Installed, *extra: str) -> list[str]:
    return [
        "upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE,
        "--set", f"webhook.admission.url=https://127.0.0.1:{installed.webhook_port}/mutate",
        "--set", f"global.sizer.url={installed.standin.url}",
        "--set", "global.sizer.readToken=read-token",
        "--set", "global.sizer.pushToken=push-token",
        "--set", "webhook.sidecarImage=registry.example/sizer-collector:1.0",
        "--set", "webhook.metrics.serviceMonitor.enabled=true",
        "--set", "webhook.metrics.prometheusRule.enabled=true",
        "--set", "recorder.metrics.serviceMonitor.enabled=true",
        "--set", "recorder.metrics.prometheusRule.enabled=true",
        # Helm's generated pair, which the local webhook serves from files (managed mode:
        # tests/e2e/test_managed_tls_e2e.py).
        "--set", "webhook.tls.mode=helm",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def crds(cluster: ClusterUnderTest) -> None:
    """ServiceMonitor, PrometheusRule, Certificate and Issuer, from the projects' own modules."""
    found = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "crds"], capture_output=True, text=True, check=True
    )
    kubectl = str(ensure_binaries().kubectl)
    run(
        kubectl, "apply", "--server-side", "-f", found.stdout.strip(), kubeconfig=cluster.kubeconfig
    )
    run(
        kubectl,
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
        kubeconfig=cluster.kubeconfig,
    )


@pytest.fixture(scope="module")
def installed(
    cluster: ClusterUnderTest, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    cluster.kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}})  # fmt: skip
    standin = StandinServer().start()
    state = Installed(free_port(), standin, tmp_path_factory.mktemp("chart"))
    helm(cluster, *install_args(state))
    yield state
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE)
    standin.stop()


def service_account_kube(
    cluster: ClusterUnderTest, name: str, workdir: Path
) -> tuple[KubeClient, Path]:
    token = mint_token(cluster.kube, NAMESPACE, name)
    return cluster.kube.with_token(token), token_kubeconfig(
        workdir / f"{name}.kubeconfig", cluster.kube, token
    )


def test_deployments_pods_pass_restricted_pod_security(
    cluster: ClusterUnderTest, installed: Installed
) -> None:
    """kube-controller-manager turns the Deployments into Pods; PodSecurity admits them."""

    def pods_by_app() -> set[str] | None:
        pods = cluster.kube.get(pods_path(NAMESPACE))["items"]
        names = {p["metadata"]["labels"]["app.kubernetes.io/name"] for p in pods}
        return names if {"webhook", "recorder"} <= names else None

    assert wait_for(pods_by_app, timeout=60, what="Deployment pods") >= {"webhook", "recorder"}
    events = cluster.kube.get(f"/api/v1/namespaces/{NAMESPACE}/events")["items"]
    assert not [e for e in events if "violates PodSecurity" in e.get("message", "")]


def test_services_work_with_the_charts_service_accounts(
    cluster: ClusterUnderTest, installed: Installed, namespace: str
) -> None:
    secret = cluster.kube.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}-webhook-tls")[
        "data"
    ]
    serving = KeyPair(base64.b64decode(secret["tls.crt"]), base64.b64decode(secret["tls.key"]))
    _, webhook_kubeconfig = service_account_kube(cluster, f"{RELEASE}-webhook", installed.workdir)
    _, recorder_kubeconfig = service_account_kube(cluster, f"{RELEASE}-recorder", installed.workdir)
    recorder = RecorderProcess(
        recorder_kubeconfig,
        NAMESPACE,
        extra_args=[
            f"--lease-name={RELEASE}-recorder",
            f"--configmap-name={HISTORY}",
            f"--oom-configmap={RELEASE}-runner-sizer-ooms",
            "--flush-interval=0.3",
        ],
    ).start()
    webhook = WebhookProcess(
        CertificateAuthority(),
        port=installed.webhook_port,
        extra_args=[
            f"--sizer-url={installed.standin.url}",
            "--sizer-sidecar-image=registry.example/sizer-collector:1.0",
            f"--kubeconfig={webhook_kubeconfig}",
            f"--history-namespace={NAMESPACE}",
            f"--history-configmap={HISTORY}",
        ],
        env=STANDIN_TOKENS,
    )
    try:
        webhook.start(serving=serving, serving_ca=base64.b64decode(secret["ca.crt"]))
        webhook.wait_ready()
        # The chart's own webhook configuration, Helm's CA: the apiserver calls us.
        probe = runner_pod(RunnerJob())
        wait_for(
            lambda: has_status_annotation(create_pod(cluster.kube, namespace, probe, dry_run=True)),
            what="the chart's webhook configuration to call the local webhook",
        )
        job = RunnerJob(runner_short=uuid.uuid4().hex[:8])
        pod = create_pod(cluster.kube, namespace, runner_pod(job))
        assert pod["spec"]["initContainers"][-1]["name"] == "sizer-collector"
        key = f"runner-{job.runner_short}-project-{job.project_id}"

        def recorded() -> bool:
            # The head and the shards it names, as the webhook reads them.
            return key in from_data(RecordSet(cluster.kube, NAMESPACE, HISTORY).read())

        wait_for(recorded, timeout=30, what="the recorder to write through its chart RBAC")
        assert recorder.metric("runner_sizer_recorder_leader") == 1
    finally:
        webhook.stop()
        recorder.stop()


REFUSED: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "webhook": [
        (
            "PUT",
            f"/api/v1/namespaces/{NAMESPACE}/configmaps/{HISTORY}",
            {"metadata": {"name": HISTORY}},
        ),
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/other", None),
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets", None),
        ("GET", "/api/v1/pods", None),
        ("GET", "/api/v1/nodes", None),
    ],
    "recorder": [
        ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/configmaps/{HISTORY}", None),
        ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/configmaps/{RELEASE}-runner-sizer-ooms", None),
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/other", None),
        (
            "PUT",
            f"/api/v1/namespaces/{NAMESPACE}/configmaps/other",
            {"metadata": {"name": "other"}},
        ),
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets", None),
        ("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", {"metadata": {"name": "x"}}),
        (
            "DELETE",
            f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{RELEASE}-recorder",
            None,
        ),
        (
            "PUT",
            f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/other",
            {"metadata": {"name": "other"}},
        ),
    ],
}


@pytest.mark.parametrize("service", ["webhook", "recorder"])
def test_any_extra_verb_is_refused(
    cluster: ClusterUnderTest, installed: Installed, service: str
) -> None:
    kube, _ = service_account_kube(cluster, f"{RELEASE}-{service}", installed.workdir)
    for method, path, body in REFUSED[service]:
        with pytest.raises(KubeError) as refused:
            kube.request(method, path, body=body)
        assert refused.value.status == 403, (service, method, path)


def test_upgrade_with_changed_values_keeps_the_generated_ca(
    cluster: ClusterUnderTest, installed: Installed
) -> None:
    path = f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}-webhook-tls"
    before = cluster.kube.get(path)["data"]["ca.crt"]
    helm(
        cluster,
        *install_args(
            installed, "--set", "webhook.logLevel=debug", "--set", "recorder.flushInterval=2"
        ),
    )
    assert cluster.kube.get(path)["data"]["ca.crt"] == before
    configuration = cluster.kube.get(
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{RELEASE}-webhook"
    )
    assert configuration["webhooks"][0]["clientConfig"]["caBundle"] == before
    deployment = cluster.kube.get(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{RELEASE}-recorder"
    )
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["RECORDER_FLUSH_INTERVAL"] == "2"


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_every_values_file_passes_server_side_validation(
    cluster: ClusterUnderTest, installed: Installed, values_file: Path
) -> None:
    # Its own namespace (and the ones ha-values binds into), so nothing of the release conflicts.
    for extra in (VALIDATION_NAMESPACE, "gitlab-runner", "gitlab-runner-gpu"):
        try:
            cluster.kube.post("/api/v1/namespaces", {"metadata": {"name": extra}})
        except KubeError as error:
            assert error.status == 409
    rendered = helm(
        cluster,
        "template",
        "validate",
        str(CHART),
        "-n",
        VALIDATION_NAMESPACE,
        "-f",
        str(values_file),
        "--kube-version",
        KUBE_VERSION,
    )
    out = run(
        str(ensure_binaries().kubectl),
        "apply",
        "--dry-run=server",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        kubeconfig=cluster.kubeconfig,
        stdin=rendered,
    )
    assert "(server dry run)" in out
    for line in json.dumps(out).split("\\n"):
        assert "error" not in line.lower(), line


def test_installs_as_a_dependency_of_a_parent_chart(
    cluster: ClusterUnderTest, crds: None, tmp_path: Path
) -> None:
    """A parent with its own globals and `condition: runner-sizer.enabled`, installed and
    then upgraded with the condition off (the Argo CD / Flux umbrella way)."""
    parent = build_parent_chart(tmp_path)
    namespace = f"platform-{uuid.uuid4().hex[:6]}"
    cluster.kube.post("/api/v1/namespaces", {"metadata": {"name": namespace}})
    # Never matches: the cluster's other tests must not wait on this release's Service.
    quiet = ["--set", "runner-sizer.webhook.admission.namespaceSelector.matchLabels.none=x"]
    release = ["platform", str(parent), "-n", namespace, *quiet]
    helm(cluster, "install", *release)
    try:
        apps = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        names = {d["metadata"]["name"] for d in cluster.kube.get(apps)["items"]}
        assert names == {"platform-webhook", "platform-recorder"}
        mine = cluster.kube.get(f"/api/v1/namespaces/{namespace}/configmaps/platform-platform")
        assert mine["data"] == {"store": "vault"}
        certificates = f"/apis/cert-manager.io/v1/namespaces/{namespace}/certificates"
        assert {c["metadata"]["name"] for c in cluster.kube.get(certificates)["items"]} == {
            "platform-webhook",
            "platform-webhook-ca",
        }
        helm(cluster, "upgrade", *release, "--reuse-values", "--set", "runner-sizer.enabled=false")
        assert not cluster.kube.get(apps)["items"]
        with pytest.raises(KubeError) as gone:
            cluster.kube.get(
                "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/platform-webhook"
            )
        assert gone.value.status == 404
    finally:
        helm(cluster, "uninstall", "platform", "-n", namespace)
        cluster.kube.delete(f"/api/v1/namespaces/{namespace}")


def rendered_pod(*sets: str) -> dict[str, Any]:
    args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    result = subprocess.run(
        [
            str(ensure_binaries().helm),
            *args,
            "--show-only",
            "charts/webhook/templates/deployment.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    template = yaml.safe_load(result.stdout)["spec"]["template"]
    metadata = {"name": "probe", **template["metadata"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def test_host_network_is_refused_by_restricted_pod_security(
    cluster: ClusterUnderTest, installed: Installed
) -> None:
    """What the README says: the default pod passes `restricted`, a hostNetwork one does not."""
    default = create_pod(cluster.kube, NAMESPACE, rendered_pod(), dry_run=True)
    assert default["spec"]["containers"][0]["ports"][0]["containerPort"] == 10250
    with pytest.raises(KubeError) as refused:
        create_pod(
            cluster.kube,
            NAMESPACE,
            rendered_pod("webhook.hostNetwork=true", "webhook.port=9443"),
            dry_run=True,
        )
    assert refused.value.status == 403
    assert "hostNetwork" in str(refused.value)


def test_switching_tls_modes(cluster: ClusterUnderTest, crds: None) -> None:
    """helm → cert-manager → helm → secret: each mode's Secret has its own name, so no
    upgrade meets a Secret another owner holds (cert-manager's carries no Helm labels)."""
    namespace = f"tls-{uuid.uuid4().hex[:6]}"
    cluster.kube.post("/api/v1/namespaces", {"metadata": {"name": namespace}})
    secrets = f"/api/v1/namespaces/{namespace}/secrets"
    configuration = (
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/switch-webhook"
    )

    def upgrade(*sets: str) -> None:
        args = ["upgrade", "--install", "switch", str(CHART), "-n", namespace]
        for item in (
            "recorder.enabled=false",
            "webhook.admission.namespaceSelector.matchLabels.none=x",
            *sets,
        ):
            args += ["--set", item]
        helm(cluster, *args)

    def ca_bundle() -> str | None:
        bundle: str | None = cluster.kube.get(configuration)["webhooks"][0]["clientConfig"].get(
            "caBundle"
        )
        return bundle

    try:
        upgrade("webhook.tls.mode=helm")
        first = cluster.kube.get(f"{secrets}/switch-webhook-tls")["data"]["ca.crt"]
        assert ca_bundle() == first
        upgrade("webhook.tls.mode=cert-manager")
        with pytest.raises(KubeError):
            cluster.kube.get(f"{secrets}/switch-webhook-tls")
        # What cert-manager would write (no controller runs here): a Secret Helm does not own.
        pem = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
        cluster.kube.post(secrets, {
            "metadata": {"name": "switch-webhook-cert-manager-tls"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": pem.decode(), "tls.key": pem.decode()},
        })  # fmt: skip
        upgrade("webhook.tls.mode=helm")
        second = cluster.kube.get(f"{secrets}/switch-webhook-tls")["data"]["ca.crt"]
        assert ca_bundle() == second
        upgrade(
            "webhook.tls.mode=secret",
            "webhook.tls.secret.name=switch-webhook-cert-manager-tls",
            f"webhook.tls.secret.caBundle={pem.decode()}",
        )
        assert ca_bundle() == pem.decode()
    finally:
        helm(cluster, "uninstall", "switch", "-n", namespace)
        cluster.kube.delete(f"/api/v1/namespaces/{namespace}")
