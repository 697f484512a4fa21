"""The never-block promise, as a differential property against the real apiserver.

For a generated runner pod, namespace, receiver answer and webhook settings, the
pod is created (server-side dry run) twice through the local control plane: once
past the webhook (an object selector excludes it), once through it, registered
with `failurePolicy: Fail` so a crash or a timeout shows as a rejection. Whenever
the original is admitted, the mutated pod must be admitted too, carry the status
annotation, and either have each feature the case calls for or name a counted
reason. The webhook runs in this process (the same Flask app gunicorn serves),
so each case can bring its own settings and a fresh receiver client.

`make test` runs 300 cases from a fixed seed; `make fuzz` runs unseeded rounds for as
long as asked (FUZZ_SECONDS).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.history.ledger import to_data
from runner_sizer.history.placements import Placement
from runner_sizer.kube.client import KubeClient, KubeError
from runner_sizer.webhook.app import Services, create_app
from runner_sizer.webhook.history_view import HistoryView
from runner_sizer.webhook.metrics import build_metrics
from runner_sizer.webhook.mutation import STATUS_ANNOTATION, Reason
from runner_sizer.webhook.namespace_view import NamespaceView
from runner_sizer.webhook.quantity import parse_quantity
from runner_sizer.webhook.receiver import ReceiverClient
from runner_sizer.webhook.settings import WebhookSettings
from runner_sizer.webhook.sizing import SizingMode
from tests.e2e.conftest import ClusterUnderTest
from tests.support.admission_cases import (
    PROJECT_IDS,
    receiver_answers,
    runner_pods,
    webhook_settings,
)
from tests.support.inprocess_webhook import SwitchableApp, register_fail_closed, serve_tls
from tests.support.kube import wait_for
from tests.support.namespace_profiles import PROFILES, Profile, create_namespace
from tests.support.scripted_receiver import Answer, Script, ScriptedReceiver

POOL_LABEL = "runner-sizer-test/invariant"
BYPASS_LABEL = "runner-sizer-test/bypass"
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))  # set by `make fuzz`: unseeded
ENV_VALUE_LIMIT = 32 * 1024
SIDECAR_ENV_LIMIT = 64 * 1024


def _note(text: str) -> None:
    """A hypothesis event (shown with --hypothesis-show-statistics); ignored outside it."""
    if currently_in_test_context():
        event(text)


@dataclass
class Harness:
    kube: KubeClient
    receiver: ScriptedReceiver
    app: SwitchableApp
    base_settings: WebhookSettings
    rules: NamespaceView
    history: HistoryView
    namespaces: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def namespace(self, profile: Profile) -> str:
        if profile.name not in self.namespaces:
            self.namespaces[profile.name] = create_namespace(
                self.kube, profile, {POOL_LABEL: "true"}
            )
        return self.namespaces[profile.name]

    def use(self, webhook_settings: WebhookSettings, answer: Answer) -> Services:
        """A fresh webhook (settings, metrics, caches) and receiver script for one case."""
        self.receiver.script = Script(sizing=answer)
        metrics = build_metrics(None)
        services = Services(
            webhook_settings,
            metrics,
            ReceiverClient(webhook_settings, metrics),
            history=self.history,
            namespaces=self.rules,
        )
        self.app.current = create_app(services)
        return services


@pytest.fixture(scope="module")
def harness(cluster: ClusterUnderTest) -> Iterator[Harness]:
    receiver = ScriptedReceiver()
    app = SwitchableApp()
    ca = CertificateAuthority("runner-sizer-invariant-ca")
    server = serve_tls(app, ca)
    base = WebhookSettings(
        sizer_url=receiver.url,
        sizer_read_token="read-token",
        sizer_push_token="push-token",
        sidecar_image="registry.example/collector:1",
        deadline_seconds=0.3,
        receiver_timeout_seconds=0.25,
        history_namespace=_history(cluster.kube),
    )
    rules = NamespaceView(lambda: KubeClient.from_kubeconfig(str(cluster.kubeconfig)))
    rules.start()
    history = HistoryView(
        lambda: KubeClient.from_kubeconfig(str(cluster.kubeconfig)),
        base.history_namespace,
        base.history_configmap,
        build_metrics(None),
    )
    history.start()
    wait_for(lambda: rules.synced and history.synced, what="the webhook's views listed")
    harness = Harness(cluster.kube, receiver, app, base, rules, history)
    harness.use(base, Answer(404, b"{}"))
    name = register_fail_closed(
        cluster.kube,
        server,
        ca,
        namespace_selector={"matchLabels": {POOL_LABEL: "true"}},
        object_selector={"matchExpressions": [{"key": BYPASS_LABEL, "operator": "DoesNotExist"}]},
    )
    probe_namespace = harness.namespace(PROFILES[0])
    wait_for(
        lambda: _admitted(harness, probe_namespace, _probe_pod()),
        what="the invariant webhook to be called",
    )
    yield harness
    cluster.kube.delete(
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
    )
    for namespace in harness.namespaces.values():
        cluster.kube.delete(f"/api/v1/namespaces/{namespace}")
    server.shutdown()
    receiver.close()
    rules.stop()
    history.stop()


# Where earlier jobs of the generated projects ran; the last has none yet. A node name
# may be a 253-character DNS subdomain, longer than any label value.
HISTORY = {
    f"runner-7fc08398-project-{PROJECT_IDS[0]}": ["node-a", "node-b"],
    f"runner-7fc08398-project-{PROJECT_IDS[1]}": ["ip-10-0-0-1." + "a" * 60 + ".internal"],
}


def _history(kube: KubeClient) -> str:
    namespace = f"inv-history-{uuid.uuid4().hex[:6]}"
    kube.post("/api/v1/namespaces", {"metadata": {"name": namespace}})
    placements = {k: [Placement(n, 10**12) for n in v] for k, v in HISTORY.items()}
    configmap = {"metadata": {"name": "runner-sizer-history"}, "data": to_data(placements)}
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap)
    return namespace


def _probe_pod() -> dict[str, Any]:
    return runner_pod(RunnerJob())


def _admitted(harness: Harness, namespace: str, pod: dict[str, Any]) -> bool:
    created = _create(harness.kube, namespace, pod)
    return isinstance(created, dict) and STATUS_ANNOTATION in created["metadata"].get(
        "annotations", {}
    )


def _create(kube: KubeClient, namespace: str, pod: dict[str, Any]) -> dict[str, Any] | str:
    """The admitted pod (dry run), or the apiserver's reason for refusing it."""
    try:
        created: dict[str, Any] = kube.post(
            f"/api/v1/namespaces/{namespace}/pods", pod, params={"dryRun": "All"}
        )
    except KubeError as error:
        return str(error)
    return created


def _category(reason: str) -> str:
    for marker in ("PodSecurity", "exceeded quota", "must specify", "usage per"):
        if marker in reason:
            return marker
    return reason.partition(" is ")[2][:150]


def _bypassing(pod: dict[str, Any]) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(pod))
    copy["metadata"].setdefault("labels", {})[BYPASS_LABEL] = "true"
    return copy


def check_case(
    harness: Harness,
    profile: Profile,
    pod: dict[str, Any],
    webhook: WebhookSettings,
    answer: Answer,
) -> None:
    namespace = harness.namespace(profile)
    original = _create(harness.kube, namespace, _bypassing(pod))
    services = harness.use(webhook, answer)
    mutated = _create(harness.kube, namespace, pod)
    if isinstance(original, str):
        _note(f"original refused: {_category(original)}")
        return  # the apiserver refuses the pod as the runner sent it: nothing to keep
    if isinstance(mutated, str):
        refused(mutated)
    _note(f"original admitted in {profile.name}")
    annotations = mutated["metadata"].get("annotations") or {}
    if annotations.get("runner-sizer.io/inject") == "false":
        assert STATUS_ANNOTATION not in annotations
        return
    assert STATUS_ANNOTATION in annotations, "admitted without the status annotation"
    status = json.loads(annotations[STATUS_ANNOTATION])
    _check_features(status, mutated, services, webhook)
    _check_env_sizes(mutated, webhook)


class RefusedError(AssertionError):
    """The original was admitted, the mutated pod was not."""


class RequestAboveLimitError(RefusedError):
    pass


class QuotaMustSpecifyError(RefusedError):
    pass


class QuotaExceededError(RefusedError):
    pass


class LimitRangeError(RefusedError):
    pass


REFUSALS = (
    ("must be less than or equal to", RequestAboveLimitError),
    ("must specify", QuotaMustSpecifyError),
    ("exceeded quota", QuotaExceededError),
    ("usage per", LimitRangeError),
)


def refused(reason: str) -> NoReturn:
    """Raise a distinct error per kind of refusal, so hypothesis reports each one apart."""
    for marker, error in REFUSALS:
        if marker in reason:
            raise error(f"original admitted, mutated refused: {reason}")
    raise RefusedError(f"original admitted, mutated refused: {reason}")


def _check_features(
    status: dict[str, Any], mutated: dict[str, Any], services: Services, webhook: WebhookSettings
) -> None:
    """Each feature is applied, or its skip reason is a known, counted one."""
    reasons = {r.value for r in Reason} - {Reason.RULES_UNKNOWN}  # the view is synced here
    for feature in ("sizing", "sidecar"):
        value = status[feature]
        _note(f"{feature}: {value}")
        if isinstance(value, str) and value.startswith("skipped:"):
            reason = value.removeprefix("skipped:")
            assert reason in reasons, f"{feature}: unknown reason {reason}"
            if reason != Reason.DISABLED:
                counted = services.metrics.skipped_injections.labels(feature, reason)
                assert counted._value.get() >= 1, f"{feature}: {reason} not counted"
    _check_oom_bump(status, mutated, services, webhook)
    affinity = status["affinity"]
    _note(f"affinity: {affinity if isinstance(affinity, str) else 'applied'}")
    if isinstance(affinity, str):
        assert affinity.removeprefix("skipped:") in reasons, f"affinity: {affinity}"
    elif not webhook.dry_run:
        preferred = mutated["spec"]["affinity"]["nodeAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        wanted = [t["preference"]["matchExpressions"][0]["values"][0] for t in preferred]
        assert wanted[-len(affinity) :] == affinity
    init_names = [c["name"] for c in mutated["spec"].get("initContainers") or []]
    injected = webhook.sidecar_name in init_names
    assert injected == (status["sidecar"] == "injected" and not webhook.dry_run), status


def _check_oom_bump(
    status: dict[str, Any], mutated: dict[str, Any], services: Services, webhook: WebhookSettings
) -> None:
    """An answer's OOM floor is reached by the build container's limit, or counted as blocked."""
    bump = status.get("oomBump")
    if bump is None:
        return
    _note(f"oomBump: {bump}")
    if bump == "applied":
        return
    assert bump == f"skipped:{Reason.OOM_BUMP_BLOCKED}", bump
    counted = services.metrics.skipped_injections.labels("oom_bump", Reason.OOM_BUMP_BLOCKED)
    assert counted._value.get() >= 1, "oom_bump_blocked not counted"
    blocked = status["oomBumpBlocked"]
    _note(f"oom bump blocked by {blocked['by']}")
    assert parse_quantity(blocked["limit"]) < parse_quantity(blocked["floor"]), blocked
    if not webhook.dry_run:
        build = next(c for c in mutated["spec"]["containers"] if c["name"] == "build")
        limit = parse_quantity(build["resources"]["limits"]["memory"])
        assert limit == parse_quantity(blocked["limit"]), (build, blocked)


def _check_env_sizes(mutated: dict[str, Any], webhook: WebhookSettings) -> None:
    """The pod can start: no env value over 32 KiB, the sidecar's env under 64 KiB in all."""
    for container in mutated["spec"].get("initContainers") or []:
        if container["name"] != webhook.sidecar_name:
            continue
        values = [str(e.get("value", "")) for e in container.get("env") or []]
        assert all(len(v.encode()) <= ENV_VALUE_LIMIT for v in values), "env value over 32 KiB"
        assert sum(len(v.encode()) for v in values) <= SIDECAR_ENV_LIMIT, "sidecar env over 64 KiB"


def _fuzz_settings() -> settings:
    if FUZZ_EXAMPLES:
        return settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    return settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
        print_blob=True,
    )


# INVARIANT_PROFILES=limits-quota,requests-quota focuses a run (e.g. `make fuzz`) on some.
CHOSEN_PROFILES = [
    p for p in PROFILES if p.name in os.environ.get("INVARIANT_PROFILES", p.name).split(",")
]
CASES = st.tuples(
    st.sampled_from(CHOSEN_PROFILES),
    runner_pods(),
    receiver_answers(),
    st.data(),
)


@_fuzz_settings()
@given(case=CASES)
def test_a_pod_the_apiserver_admits_is_admitted_through_the_webhook(
    harness: Harness, case: tuple[Profile, dict[str, Any], Answer, st.DataObject]
) -> None:
    profile, pod, answer, data = case
    webhook = data.draw(webhook_settings(harness.base_settings))
    check_case(harness, profile, pod, webhook, answer)


def _pod(
    build: dict[str, Any],
    *,
    everything_limited: bool = False,
    version: tuple[int, int] = (18, 4),
    pod_level: dict[str, Any] | None = None,
) -> dict[str, Any]:
    pod = runner_pod(RunnerJob(runner_version=version, services=()))
    spec = pod["spec"]
    if everything_limited:
        for container in spec["containers"] + spec["initContainers"]:
            size = {"cpu": "250m", "memory": "256Mi"}
            container["resources"] = {"requests": dict(size), "limits": dict(size)}
    spec["containers"][0]["resources"] = build
    if pod_level is not None:
        spec["resources"] = pod_level
    return pod


def _profile(name: str) -> Profile:
    return next(p for p in PROFILES if p.name == name)


def _json_answer(body: Any) -> Answer:
    return Answer(200, json.dumps(body).encode())


# Failures the property test found on the code before the fix, shrunk by hypothesis
# and kept here as explicit cases: (why, profile, pod, settings, receiver answer).
REGRESSIONS: list[tuple[str, Profile, dict[str, Any], dict[str, Any], Answer]] = [
    (
        "a request capped at a 1G limit was rounded up to 954Mi, over the limit",
        _profile("open"),
        _pod({"requests": {"memory": "256Mi"}, "limits": {"memory": "1G"}}),
        {"sizing_mode": SizingMode.REQUESTS_ONLY},
        _json_answer({"requests": {"memory": "1G"}}),
    ),
    (
        "the sidecar had no cpu limit under a quota on limits.cpu",
        _profile("limits-quota"),
        _pod(
            {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            everything_limited=True,
        ),
        {},
        Answer(404, b"{}"),
    ),
    (
        "sizing up past the quota's headroom",
        _profile("limits-quota-defaults"),
        _pod({"requests": {"memory": "1G"}, "limits": {"cpu": "1", "memory": "1G"}}),
        {},
        _json_answer({"requests": {"memory": "14Gi"}, "limits": {"memory": "14Gi"}}),
    ),
    (
        "APPLIED_SIZING copied a 300 KB body into one env value",
        _profile("open"),
        _pod({"requests": {"memory": "1Gi"}}),
        {},
        _json_answer({"requests": {"memory": "2Gi"}, "explanation": "y" * 300_000}),
    ),
    (
        "a quantity of the wrong type crashed the admission: no status, nothing cached",
        _profile("open"),
        _pod({"requests": {"memory": "1Gi"}}),
        {},
        _json_answer({"requests": {"cpu": {"value": "1"}, "memory": [1]}}),
    ),
    (
        "the sidecar's 10m/32Mi sat under a LimitRange minimum",
        _profile("min-max"),
        _pod({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}),
        {},
        Answer(404, b"{}"),
    ),
    (
        "sizing up past a Pod LimitRange maximum",
        _profile("pod-bounds"),
        _pod({"requests": {"cpu": "1"}, "limits": {"cpu": "1", "memory": "1Gi"}}),
        {},
        _json_answer({"requests": {"cpu": "6"}, "limits": {"cpu": "6"}}),
    ),
    (
        "pod-level requests left no room for the sidecar",
        _profile("open"),
        _pod(
            {"requests": {"cpu": "1"}},
            version=(18, 10),
            pod_level={"requests": {"cpu": "1100m"}},  # build 1 + helper 100m
        ),
        {},
        Answer(404, b"{}"),
    ),
]


@pytest.mark.parametrize(
    ("why", "profile", "pod", "webhook", "answer"), REGRESSIONS, ids=[r[0] for r in REGRESSIONS]
)
def test_regression_examples(
    harness: Harness,
    why: str,
    profile: Profile,
    pod: dict[str, Any],
    webhook: dict[str, Any],
    answer: Answer,
) -> None:
    check_case(harness, profile, pod, replace(harness.base_settings, **webhook), answer)
