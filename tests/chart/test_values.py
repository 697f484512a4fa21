"""Template behaviour of the values platform teams set: ports, hostNetwork, webhook
metadata, egress, PDB, security contexts, release-scoped names, render-time checks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, KUBE_VERSION, find, helm_command, one, render

OLD_VALUES = Path(__file__).parent / "data" / "values-0.1.0"


def webhook_pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = one(manifests, "Deployment", "rs-webhook")["spec"]["template"]["spec"]
    return pod


def env_of(pod: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}


def render_error(*sets: str, flag: str = "--set") -> str:
    args = ["template", "rs", str(CHART), "--kube-version", KUBE_VERSION]
    for item in sets:
        args += [flag, item]
    result = helm_command(*args)
    assert result.returncode != 0, "the render should fail"
    return result.stderr


def test_webhook_listens_on_10250_by_default() -> None:
    manifests = render()
    pod = webhook_pod(manifests)
    assert pod["containers"][0]["ports"][0] == {"name": "https", "containerPort": 10250}
    assert env_of(pod)["WEBHOOK_LISTEN_ADDR"] == ":10250"
    assert "hostNetwork" not in pod
    service = one(manifests, "Service", "rs-webhook")
    assert service["spec"]["ports"][0]["targetPort"] == "https"


def test_host_network_on_another_port(values: Any) -> None:
    manifests = render(values("host-network"))
    pod = webhook_pod(manifests)
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert env_of(pod)["WEBHOOK_LISTEN_ADDR"] == ":9443"
    assert pod["containers"][0]["ports"][0]["containerPort"] == 9443


def test_host_network_refuses_the_kubelets_port() -> None:
    error = render_error("webhook.hostNetwork=true")
    assert "webhook.port other than 10250" in error and "kubelet" in error


@pytest.mark.parametrize(("deadline", "timeout"), [("5", "5"), ("2", "2"), ("3.5", "3")])
def test_deadline_must_stay_below_the_apiservers_timeout(deadline: str, timeout: str) -> None:
    error = render_error(
        f"webhook.deadline={deadline}",
        f"webhook.admission.timeoutSeconds={timeout}",
        flag="--set-json",
    )
    assert "must be below webhook.admission.timeoutSeconds" in error


def test_a_longer_timeout_allows_a_longer_deadline() -> None:
    env = env_of(
        webhook_pod(render(None, "webhook.deadline=7", "webhook.admission.timeoutSeconds=10"))
    )
    assert env["WEBHOOK_DEADLINE"] == "7"


def test_webhook_configuration_metadata_and_match_conditions(values: Any) -> None:
    configuration = one(render(values("platform")), "MutatingWebhookConfiguration")
    assert configuration["metadata"]["labels"]["team"] == "platform"
    assert configuration["metadata"]["annotations"] == {
        "admissions.enforcer/disabled": "true",
        "argocd.argoproj.io/sync-options": "ServerSideApply=true",
        "runner-sizer.io/inject-ca-from": "ci-sizer/rs-webhook-managed-tls",
    }
    (hook,) = configuration["webhooks"]
    assert hook["name"] == "rs.ci-sizer.pods.runner-sizer.io"
    assert hook["matchConditions"] == [
        {"name": "not-a-dry-run", "expression": "!has(request.dryRun) || !request.dryRun"}
    ]


def test_aks_admissions_enforcer_is_off_by_default_and_cert_manager_annotates_too(
    values: Any,
) -> None:
    default = one(render(), "MutatingWebhookConfiguration")
    assert default["metadata"]["annotations"] == {
        "admissions.enforcer/disabled": "true",
        "runner-sizer.io/inject-ca-from": "ci-sizer/rs-webhook-managed-tls",
    }
    assert "matchConditions" not in default["webhooks"][0]
    cert_manager = one(render(values("cert-manager")), "MutatingWebhookConfiguration")
    assert cert_manager["metadata"]["annotations"] == {
        "admissions.enforcer/disabled": "true",
        "cert-manager.io/inject-ca-from": "ci-sizer/rs-webhook",
    }


def egress_ports(policy: dict[str, Any]) -> list[tuple[list[int], list[str]]]:
    return [
        (
            [p["port"] for p in rule.get("ports", [])],
            [t["ipBlock"]["cidr"] for t in rule.get("to", []) if "ipBlock" in t],
        )
        for rule in policy["spec"]["egress"]
    ]


def test_network_policies_let_calls_through_the_proxy(values: Any) -> None:
    manifests = render(values("ha"))
    webhook = egress_ports(one(manifests, "NetworkPolicy", "rs-webhook"))
    assert ([443], ["10.20.0.0/16"]) in webhook, "direct calls to the receiver (NO_PROXY)"
    assert ([3128], []) in webhook, "calls through HTTPS_PROXY"
    assert ([3128], []) in egress_ports(one(manifests, "NetworkPolicy", "rs-recorder"))


def test_network_policies_proxy_cidrs_and_extra_egress(values: Any) -> None:
    manifests = render(values("platform"))
    webhook = egress_ports(one(manifests, "NetworkPolicy", "rs-webhook"))
    assert ([8080, 3128], ["10.30.0.10/32"]) in webhook
    assert ([8200], ["10.40.0.0/16"]) in webhook
    recorder = egress_ports(one(manifests, "NetworkPolicy", "rs-recorder"))
    assert ([8080, 3128], ["10.30.0.10/32"]) in recorder
    assert ([8200], ["10.40.0.0/16"]) not in recorder


def test_no_proxy_no_proxy_rule() -> None:
    policy = one(render(None, "webhook.networkPolicy.enabled=true"), "NetworkPolicy")
    assert [ports for ports, _ in egress_ports(policy)] == [[53, 53], [443, 6443]]


def test_proxy_without_a_port_uses_the_schemes() -> None:
    policy = one(
        render(
            None,
            "webhook.networkPolicy.enabled=true",
            "global.proxy.httpsProxy=https://proxy.example",
            "recorder.enabled=false",
        ),
        "NetworkPolicy",
    )
    assert egress_ports(policy)[-1] == ([443], [])


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ((), True),
        (("webhook.replicaCount=1",), False),
        (("webhook.replicaCount=1", "webhook.autoscaling.enabled=true"), True),
        (
            (
                "webhook.autoscaling.enabled=true",
                "webhook.autoscaling.minReplicas=1",
            ),
            False,
        ),
        (("webhook.podDisruptionBudget.enabled=false",), False),
    ],
)
def test_pdb_only_with_more_than_one_replica(sets: tuple[str, ...], expected: bool) -> None:
    budgets = find(render(None, *sets), "PodDisruptionBudget")
    assert bool(budgets) is expected
    if budgets:
        assert budgets[0]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_openshift_security_context_without_fixed_ids(values: Any) -> None:
    manifests = render(values("platform"))
    for name in ("rs-webhook", "rs-recorder"):
        pod = one(manifests, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_container_security_context_is_overridable() -> None:
    pod = webhook_pod(render(None, "webhook.containerSecurityContext.readOnlyRootFilesystem=false"))
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


SHARD_NAME = re.compile(r"-[ab][0-9]+$")  # the history's shards (history/recordset.py)


def history_names(manifests: list[dict[str, Any]]) -> set[str]:
    webhook = env_of(webhook_pod(manifests))["WEBHOOK_HISTORY_CONFIGMAP"]
    recorder_pod = one(manifests, "Deployment", "rs-recorder")["spec"]["template"]["spec"]
    recorder = env_of(recorder_pod)["RECORDER_CONFIGMAP_NAME"]
    (configmap,) = [
        m["metadata"]["name"]
        for m in find(manifests, "ConfigMap")
        if m["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep"
        and not m["metadata"]["name"].endswith("-ooms")
    ]
    roles = {
        name
        for role in find(manifests, "Role")
        for rule in role["rules"]
        if rule["resources"] == ["configmaps"]
        for name in rule.get("resourceNames", [])
        if not name.endswith("-ooms") and not SHARD_NAME.search(name)
    }
    return {str(webhook), str(recorder), configmap, *roles}


def test_history_configmap_is_release_scoped_and_agreed_on(values: Any) -> None:
    assert history_names(render()) == {"rs-runner-sizer-history"}
    result = helm_command("template", "runner-sizer", str(CHART), "--kube-version", KUBE_VERSION)
    manifests = [m for m in yaml.safe_load_all(result.stdout) if m]
    assert {m["metadata"]["name"] for m in find(manifests, "ConfigMap")} == {
        "runner-sizer-history",
        "runner-sizer-ooms",
    }, "the README's release name keeps the name it always had (and the recorder's default)"
    assert history_names(render(values("platform"))) == {"ci-placement-history"}


def test_oom_configmap_is_release_scoped_kept_and_writable_by_name() -> None:
    manifests = render(None, "recorder.ooms.window=36h", "recorder.ooms.maxRecords=9")
    (kept,) = [m for m in find(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-ooms")]
    assert kept["metadata"]["name"] == "rs-runner-sizer-ooms"
    assert kept["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "data" not in kept, "the recorder owns the data"
    recorder_pod = one(manifests, "Deployment", "rs-recorder")["spec"]["template"]["spec"]
    env = env_of(recorder_pod)
    assert (env["RECORDER_OOM_CONFIGMAP"], env["RECORDER_OOM_WINDOW"]) == (
        "rs-runner-sizer-ooms",
        "36h",
    )
    assert env["RECORDER_OOM_MAX_RECORDS"] == "9"
    rules = one(manifests, "Role", "rs-recorder")["rules"]
    assert "rs-runner-sizer-ooms" in rules[0]["resourceNames"]


@pytest.mark.parametrize("value", ["recorder.ooms.window=2 weeks", "recorder.ooms.maxRecords=0"])
def test_bad_oom_bounds_fail_the_render(value: str) -> None:
    result = helm_command(
        "template", "rs", str(CHART), "--kube-version", KUBE_VERSION, "--set", value
    )
    assert result.returncode != 0 and "ooms" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "rendered"),
    [
        ("--set-json", "8", "8"),
        ("--set-json", "0.5", "0.5"),
        ("--set-json", '"1500m"', "1500m"),
        ("--set", "2", "2"),
    ],
)
def test_quantity_bounds_take_numbers_and_strings(flag: str, value: str, rendered: str) -> None:
    result = helm_command(
        "template", "rs", str(CHART), "--kube-version", KUBE_VERSION,
        flag, f"webhook.sizing.maxCpu={value}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifests = [m for m in yaml.safe_load_all(result.stdout) if m]
    assert env_of(webhook_pod(manifests))["WEBHOOK_MAX_CPU"] == rendered


def test_quantity_numbers_from_a_values_file(values: Any) -> None:
    env = env_of(webhook_pod(render(values("host-network"))))
    assert (env["WEBHOOK_MAX_CPU"], env["WEBHOOK_MIN_CPU"], env["WEBHOOK_MAX_MEMORY"]) == (
        "8",
        "0.25",
        "34359738368",
    )


@pytest.mark.parametrize("value", ['"lots"', '"4GB"', "-1"])
def test_quantity_errors_name_the_key_and_the_form(value: str) -> None:
    error = render_error(f"webhook.sizing.maxMemory={value}", flag="--set-json")
    assert "webhook.sizing.maxMemory" in error and '"4Gi"' in error, error


def test_reuse_values_upgrade_from_the_first_chart(tmp_path: Path) -> None:
    """`helm upgrade --reuse-values` renders with the previous chart's values: every value
    added since must have a default in the templates (`dig`), never a nil pointer."""
    chart = tmp_path / "runner-sizer"
    shutil.copytree(CHART, chart)
    shutil.copy(OLD_VALUES / "umbrella.yaml", chart / "values.yaml")
    shutil.copy(OLD_VALUES / "webhook.yaml", chart / "charts" / "webhook" / "values.yaml")
    shutil.copy(OLD_VALUES / "recorder.yaml", chart / "charts" / "recorder" / "values.yaml")
    sets = [
        "webhook.networkPolicy.enabled=true",
        "recorder.networkPolicy.enabled=true",
        "webhook.metrics.prometheusRule.enabled=true",
        "global.proxy.httpsProxy=http://proxy:3128",
    ]
    args = ["template", "rs", str(chart), "--kube-version", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    result = helm_command(*args)
    assert result.returncode == 0, result.stderr
    manifests = [m for m in yaml.safe_load_all(result.stdout) if m]
    pod = webhook_pod(manifests)
    assert pod["securityContext"]["runAsUser"] == 10001
    assert env_of(pod)["WEBHOOK_LISTEN_ADDR"] == ":10250"
    assert one(manifests, "PodDisruptionBudget")["spec"]["unhealthyPodEvictionPolicy"] == (
        "AlwaysAllow"
    )
    # The old default name was set explicitly then; the upgrade keeps it.
    assert history_names(manifests) == {"runner-sizer-history"}
