"""The chart: lint, strict schema validation and the fields that matter, per ci/*-values.yaml."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from runner_sizer.devcluster.binaries import ensure_binaries
from runner_sizer.history.recordset import every_name
from tests.chart.conftest import (
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    find,
    helm_command,
    one,
    render,
)
from tests.chart.test_oom_rbac import OOM_SHARD_NAMES

CRD_GROUPS = ("monitoring.coreos.com/", "cert-manager.io/")


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_lints_renders_and_validates_strictly(values_file: Path) -> None:
    lint = helm_command("lint", str(CHART), "-f", str(values_file), "--kube-version", KUBE_VERSION)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    manifests = render(values_file)
    for manifest in manifests:
        if manifest["apiVersion"].startswith(CRD_GROUPS):
            continue  # validated server-side against the real CRDs in the e2e suite
        kubernetes_validate.validate(manifest, KUBE_VERSION.rsplit(".", 1)[0], strict=True)
    for manifest in manifests:
        assert_least_privilege(manifest)
        # hostNetwork breaks `baseline` (documented): only the EKS custom CNI file sets it.
        assert_restricted(manifest, host_network_allowed=values_file.stem == "host-network-values")


def assert_least_privilege(manifest: dict[str, Any]) -> None:
    if manifest["kind"] not in ("Role", "ClusterRole"):
        return
    for rule in manifest["rules"]:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), (manifest["metadata"]["name"], rule)
        assert (
            not {"create", "delete", "patch", "deletecollection"} & set(rule["verbs"])
            or (
                # `create` cannot be limited by resourceNames: leases, and the history ConfigMap.
                rule["resources"] in (["leases"], ["configmaps"]) and rule["verbs"] == ["create"]
            )
            or (
                # The history's shards, by name: a move between layouts deletes the old bank.
                rule.get("resourceNames") and set(rule["verbs"]) == {"get", "update", "delete"}
            )
        ), rule


def assert_restricted(manifest: dict[str, Any], *, host_network_allowed: bool = False) -> None:
    """The `restricted` Pod Security Standard, for every pod template."""
    if manifest["kind"] != "Deployment":
        return
    pod = manifest["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["readOnlyRootFilesystem"] is True
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp"}
    assert "hostPID" not in pod
    assert host_network_allowed or "hostNetwork" not in pod


def test_webhook_configuration_defaults(values: Any) -> None:
    manifests = render(values("default"))
    configuration = one(manifests, "MutatingWebhookConfiguration")
    (hook,) = configuration["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] == 5
    assert hook["sideEffects"] == "NoneOnDryRun"
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["matchPolicy"] == "Equivalent"
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["objectSelector"] == {
        "matchExpressions": [{"key": "job.runner.gitlab.com/pod", "operator": "Exists"}]
    }
    assert hook["namespaceSelector"] == {"matchLabels": {"ci-sizer.devfw.io/watch": "true"}}
    assert hook["clientConfig"]["service"] == {
        "name": "rs-webhook",
        "namespace": "ci-sizer",
        "path": "/mutate",
        "port": 443,
    }
    # TLS mode managed: no caBundle rendered, an empty Secret the webhook fills and Helm keeps.
    assert "caBundle" not in hook["clientConfig"]
    secret = one(manifests, "Secret", "rs-webhook-managed-tls")
    assert "data" not in secret and secret["type"] == "Opaque"
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert configuration["metadata"]["annotations"]["runner-sizer.io/inject-ca-from"] == (
        "ci-sizer/rs-webhook-managed-tls"
    )
    for name in ("rs-webhook", "rs-recorder"):
        deployment = one(manifests, "Deployment", name)
        assert deployment["spec"]["replicas"] == 2
    webhook_pod = one(manifests, "Deployment", "rs-webhook")["spec"]["template"]["spec"]
    assert webhook_pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert one(manifests, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    env = {e["name"]: e.get("value") for e in webhook_pod["containers"][0]["env"]}
    assert env["WEBHOOK_SIZER_READ_TOKEN_FILE"] == "/receiver/read-token"
    assert env["WEBHOOK_TLS_SECRET"] == "ci-sizer/rs-webhook-managed-tls"
    assert env["WEBHOOK_TLS_MANAGE_WEBHOOK"] == "rs-webhook"
    assert "WEBHOOK_TLS_CERT_FILE" not in env
    assert "tls" not in {v["name"] for v in webhook_pod["volumes"]}, "read through a watch"
    assert "example-read-token-value" not in str(webhook_pod), (
        "tokens come from a Secret, never inline"
    )
    receiver = one(manifests, "Secret", "rs-receiver")["stringData"]
    assert receiver["read-token"] == "example-read-token-value"


def test_helm_mode_renders_its_generated_ca_as_the_bundle(values: Any) -> None:
    manifests = render(values("default"), "webhook.tls.mode=helm")
    hook = one(manifests, "MutatingWebhookConfiguration")["webhooks"][0]
    secret = one(manifests, "Secret", "rs-webhook-tls")
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert b"BEGIN CERTIFICATE" in base64.b64decode(secret["data"]["tls.crt"])
    assert not find(manifests, "Secret", "rs-webhook-managed-tls")
    assert not find(manifests, "ClusterRole", "rs-webhook-ca-bundle")


def test_url_client_config(values: Any) -> None:
    hook = one(render(values("url")), "MutatingWebhookConfiguration")["webhooks"][0]
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:8443/mutate"
    assert "service" not in hook["clientConfig"]


def test_cert_manager_mode(values: Any) -> None:
    manifests = render(values("cert-manager"))
    configuration = one(manifests, "MutatingWebhookConfiguration")
    assert (
        configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == "ci-sizer/rs-webhook"
    )
    assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]
    certificate = one(manifests, "Certificate", "rs-webhook")
    assert certificate["spec"]["secretName"] == "rs-webhook-cert-manager-tls"
    assert "rs-webhook.ci-sizer.svc" in certificate["spec"]["dnsNames"]
    # The CA chain: self-signed Issuer → CA Certificate → CA Issuer → serving Certificate.
    assert one(manifests, "Issuer", "rs-webhook-selfsigned")["spec"] == {"selfSigned": {}}
    ca = one(manifests, "Certificate", "rs-webhook-ca")["spec"]
    assert ca["isCA"] is True
    assert ca["issuerRef"] == {
        "name": "rs-webhook-selfsigned",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert one(manifests, "Issuer", "rs-webhook-ca")["spec"] == {
        "ca": {"secretName": ca["secretName"]}
    }
    assert certificate["spec"]["issuerRef"] == {
        "name": "rs-webhook-ca",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert not find(manifests, "Secret", "rs-webhook-tls")
    pod = one(manifests, "Deployment", "rs-webhook")["spec"]["template"]["spec"]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "rs-webhook-cert-manager-tls"
    assert not find(manifests, "Secret", "rs-receiver"), "an existing receiver Secret is used"


def test_cert_manager_with_an_issuer_of_ones_own() -> None:
    manifests = render(
        None,
        "webhook.tls.mode=cert-manager",
        "webhook.tls.certManager.issuerRef.name=corp-ca",
        "webhook.tls.certManager.issuerRef.kind=ClusterIssuer",
    )
    assert not find(manifests, "Issuer")
    certificate = one(manifests, "Certificate")
    assert certificate["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


@pytest.mark.parametrize(
    ("url", "field", "san"),
    [
        ("https://hook.example.internal:9443/mutate", "dnsNames", "hook.example.internal"),
        ("https://10.1.2.3/mutate", "ipAddresses", "10.1.2.3"),
    ],
)
def test_cert_manager_certificate_names_the_url_host(url: str, field: str, san: str) -> None:
    manifests = render(None, "webhook.tls.mode=cert-manager", f"webhook.admission.url={url}")
    assert san in one(manifests, "Certificate", "rs-webhook")["spec"][field]


def test_existing_secret_mode(values: Any) -> None:
    manifests = render(values("existing-secret"))
    hook = one(manifests, "MutatingWebhookConfiguration")["webhooks"][0]
    assert hook["clientConfig"]["caBundle"].startswith("LS0t")
    assert not find(manifests, "Secret")
    pod = one(manifests, "Deployment", "rs-webhook")["spec"]["template"]["spec"]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "my-webhook-tls"


def test_existing_secret_mode_needs_its_ca() -> None:
    result = helm_command(
        "template",
        "rs",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "webhook.tls.mode=secret",
        "--set",
        "webhook.tls.secret.name=x",
    )
    assert result.returncode != 0 and "tls.secret.caBundle" in result.stderr


def test_rbac_is_exactly_what_the_services_need(values: Any) -> None:
    manifests = render(values("default"))
    shards = every_name("rs-runner-sizer-history")[1:]
    webhook_role = one(manifests, "Role", "rs-webhook")
    assert webhook_role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": every_name("rs-runner-sizer-history"),
            "verbs": ["get", "list", "watch"],
        },
        # The kept Secret and its Lease (create cannot name one).
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["rs-webhook-managed-tls"],
            "verbs": ["get", "list", "watch", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["rs-webhook-managed-tls"],
            "verbs": ["get", "update"],
        },
    ]
    assert one(manifests, "ClusterRole", "rs-webhook-ca-bundle")["rules"] == [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": ["rs-webhook"],
            "verbs": ["get", "list", "watch", "update"],
        }
    ]
    recorder_role = one(manifests, "Role", "rs-recorder")
    assert recorder_role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["rs-runner-sizer-history", "rs-runner-sizer-ooms", *OOM_SHARD_NAMES],
            "verbs": ["get", "update"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": shards,
            "verbs": ["get", "update", "delete"],
        },
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["rs-recorder"],
            "verbs": ["get", "update"],
        },
    ]
    assert one(manifests, "ClusterRole", "rs-recorder-pods")["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}
    ]
    assert one(manifests, "ClusterRole", "rs-recorder-nodes")["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}
    ]
    assert one(manifests, "ClusterRole", "rs-webhook-namespace-rules")["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["limitranges", "resourcequotas"],
            "verbs": ["list", "watch"],
        }
    ]
    assert {b["metadata"]["name"] for b in find(manifests, "ClusterRoleBinding")} == {
        "rs-recorder-pods",
        "rs-recorder-nodes",
        "rs-webhook-namespace-rules",
        "rs-webhook-ca-bundle",
    }


def test_ha_values(values: Any) -> None:
    manifests = render(values("ha"))
    assert one(manifests, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 8
    assert "replicas" not in one(manifests, "Deployment", "rs-webhook")["spec"], (
        "the HPA owns replicas"
    )
    assert len(find(manifests, "NetworkPolicy")) == 2
    assert len(find(manifests, "ServiceMonitor")) == 2
    assert len(find(manifests, "PrometheusRule")) == 2
    bindings = find(manifests, "RoleBinding", "rs-recorder-pods")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == [
        "gitlab-runner",
        "gitlab-runner-gpu",
    ]
    assert not find(manifests, "ClusterRoleBinding", "rs-recorder-pods")
    pod = one(manifests, "Deployment", "rs-webhook")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["HTTPS_PROXY"] == "http://proxy.example.internal:3128"
    assert env["WEBHOOK_SIZING_MODE"] == "RequestsOnly"
    assert env["WEBHOOK_MAX_MEMORY"] == "32Gi"
    assert env["WEBHOOK_SIDECAR_VOLUME_MOUNTS"] == "runner-cache:/cache"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["priorityClassName"] == "system-cluster-critical"


def test_features_off(values: Any) -> None:
    manifests = render(values("features-off"))
    assert not [m for m in manifests if m["metadata"]["name"].startswith("rs-recorder")]
    env = {
        e["name"]: e.get("value")
        for e in one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (env["WEBHOOK_ENABLE_SIZING"], env["WEBHOOK_DRY_RUN"]) == ("false", "true")
    assert not find(manifests, "PodDisruptionBudget")


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("webhook.replicaCont=3", "additional properties 'replicaCont' not allowed"),
        (
            "webhook.deadline=7",
            "webhook.deadline (7 s) must be below webhook.admission.timeoutSeconds",
        ),
        ("webhook.sizing.mode=Sometimes", "/sizing/mode"),
        (
            "webhook.sizing.maxCpu=lots",
            'webhook.sizing.maxCpu: "lots" is not a quantity; want a number',
        ),
        ("global.sizer.url=ftp://x", "/global/sizer/url"),
        ("recorder.maxKeys=0", "/maxKeys"),
        ("webhook.tls.mode=manual", "/tls/mode"),
    ],
)
def test_schema_rejects_typos_and_bad_values(setting: str, complaint: str) -> None:
    result = helm_command(
        "template", "rs", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting
    )
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_history_configmap_is_kept_on_uninstall(values: Any) -> None:
    configmap = one(render(values("default")), "ConfigMap", "rs-runner-sizer-history")
    assert configmap["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "data" not in configmap, "the recorder owns the data; upgrades must not reset it"


def test_chart_readme_is_generated_from_the_values() -> None:
    readme = (CHART / "README.md").read_text()
    generated = subprocess.run(
        [
            str(ensure_binaries().helm_docs),
            "-c",
            str(CHART),
            "-g",
            str(CHART),
            "-u",
            "--skip-version-footer",
            "--dry-run",
            "--log-level",
            "error",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert generated.strip() == readme.strip(), "run `make chart-docs`"


def test_receiver_ca_reaches_the_webhook_with_an_existing_token_secret(values: Any) -> None:
    manifests = render(values("existing-secret"))
    ca = one(manifests, "ConfigMap", "rs-receiver-ca")["data"]["ca.crt"]
    assert "BEGIN CERTIFICATE" in ca
    pod = one(manifests, "Deployment", "rs-webhook")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert env["WEBHOOK_SIZER_CA_FILE"] == f"{mounts['receiver-ca']}/ca.crt"
