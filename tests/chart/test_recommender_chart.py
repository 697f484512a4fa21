"""The recommender subchart: one global switch points the webhook's sizing at it."""

from __future__ import annotations

from typing import Any

from tests.chart.conftest import find, one, render
from tests.chart.test_oom_rbac import OOM_SHARD_NAMES
from tests.chart.test_values import egress_ports, env_of, render_error, webhook_pod


def test_off_by_default_and_the_webhook_keeps_the_receiver() -> None:
    manifests = render(None, "global.sizer.url=https://sizer.example", *_tokens())
    assert not find(manifests, "Deployment", "rs-recommender")
    env = env_of(webhook_pod(manifests))
    assert env["WEBHOOK_SIZER_URL"] == "https://sizer.example"
    assert env["WEBHOOK_ENABLE_SIDECAR"] == "true"


def test_enabled_it_is_the_webhooks_source_and_the_sidecar_is_off(values: Any) -> None:
    manifests = render(values("recommender"))
    env = env_of(webhook_pod(manifests))
    assert env["WEBHOOK_SIZER_URL"] == "http://rs-recommender.ci-sizer.svc:8080"
    assert env["WEBHOOK_SIZER_READ_TOKEN_FILE"] == "/receiver/read-token"
    assert "WEBHOOK_SIZER_PUSH_TOKEN_FILE" not in env
    assert env["WEBHOOK_ENABLE_SIDECAR"] == "false"
    pod = one(manifests, "Deployment", "rs-recommender")["spec"]["template"]["spec"]
    recommender = env_of(pod)
    assert (
        recommender["RECOMMENDER_PROMETHEUS_URL"]
        == "http://prometheus-operated.monitoring.svc:9090"
    )
    assert recommender["RECOMMENDER_READ_TOKEN_FILE"] == "/receiver/read-token"
    assert recommender["RECOMMENDER_LABEL_MATCHERS"] == 'cluster="prod"'
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] and container["capabilities"] == {"drop": ["ALL"]}
    assert one(manifests, "Service", "rs-recommender")["spec"]["ports"][0]["port"] == 8080
    assert one(manifests, "ServiceMonitor", "rs-recommender")


def test_it_reads_the_recorders_oom_records_with_get_on_their_names_only(values: Any) -> None:
    manifests = render(
        values("recommender"), "recommender.networkPolicy.apiServerCIDRs={10.0.0.1/32}"
    )
    pod = one(manifests, "Deployment", "rs-recommender")["spec"]["template"]["spec"]
    assert env_of(pod)["RECOMMENDER_OOM_CONFIGMAP"] == "ci-sizer/rs-runner-sizer-ooms"
    assert one(manifests, "ConfigMap", "rs-runner-sizer-ooms")  # the recorder's
    assert pod["automountServiceAccountToken"] is True
    role = one(manifests, "Role", "rs-recommender")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["rs-runner-sizer-ooms", *OOM_SHARD_NAMES],  # the head, its shards
            "verbs": ["get"],
        }
    ]
    binding = one(manifests, "RoleBinding", "rs-recommender")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"] == "rs-recommender"
    policy = one(manifests, "NetworkPolicy", "rs-recommender")
    assert ([443, 6443], ["10.0.0.1/32"]) in egress_ports(policy)

    without = render(values("recommender"), "recommender.ooms.enabled=false")
    pod = one(without, "Deployment", "rs-recommender")["spec"]["template"]["spec"]
    assert "RECOMMENDER_OOM_CONFIGMAP" not in env_of(pod)
    assert pod["automountServiceAccountToken"] is False
    assert not find(without, "Role", "rs-recommender")
    assert [443, 6443] not in [
        ports for ports, _ in egress_ports(one(without, "NetworkPolicy", "rs-recommender"))
    ]


def test_a_receiver_url_wins_over_the_recommender(values: Any) -> None:
    manifests = render(values("recommender"), "global.sizer.url=https://sizer.example", *_tokens())
    env = env_of(webhook_pod(manifests))
    assert env["WEBHOOK_SIZER_URL"] == "https://sizer.example"
    assert env["WEBHOOK_ENABLE_SIDECAR"] == "true"


def test_network_policies_open_exactly_webhook_to_recommender_to_prometheus(
    values: Any,
) -> None:
    manifests = render(values("recommender"))
    webhook = one(manifests, "NetworkPolicy", "rs-webhook")
    assert ([8080], []) in egress_ports(webhook)
    to_recommender = [
        rule for rule in webhook["spec"]["egress"] if rule["ports"][0]["port"] == 8080
    ]
    assert to_recommender[0]["to"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "recommender",
        "app.kubernetes.io/instance": "rs",
    }
    recommender = one(manifests, "NetworkPolicy", "rs-recommender")
    to_prometheus = [
        rule for rule in recommender["spec"]["egress"] if rule["ports"][0]["port"] == 9090
    ]
    assert to_prometheus[0]["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_missing_settings_fail_the_render_with_what_to_set() -> None:
    without_url = render_error("global.recommender.enabled=true", "global.sizer.readToken=x")
    assert "recommender.prometheus.url is required" in without_url
    without_token = render_error(
        "global.recommender.enabled=true", "recommender.prometheus.url=http://p:9090"
    )
    assert "global.sizer.readToken" in without_token


def _tokens() -> tuple[str, str]:
    return ("global.sizer.readToken=r", "global.sizer.pushToken=p")
