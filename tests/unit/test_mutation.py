"""The pure review → patch logic over realistic runner pods."""

from __future__ import annotations

import copy
import dataclasses
import json
from decimal import Decimal
from typing import Any

import jsonpatch
import pytest

from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.webhook.constraints import NO_RULES
from runner_sizer.webhook.mutation import (
    STATUS_ANNOTATION,
    Fetched,
    Ignore,
    Plan,
    Reason,
    build_mutation,
    plan_admission,
)
from runner_sizer.webhook.patch import pointer
from runner_sizer.webhook.review import parse_review
from runner_sizer.webhook.settings import WebhookSettings
from runner_sizer.webhook.sizing import Recommendation
from tests.support.reviews import review_for, runner_review, sample_review

SETTINGS = WebhookSettings(
    sizer_url="http://127.0.0.1:1", sizer_read_token="r", sidecar_image="collector:1"
)
RECOMMENDATION = Recommendation(
    requests={"cpu": Decimal("1.5"), "memory": Decimal(3 * 2**30)},
    limits={"cpu": Decimal(2), "memory": Decimal(4 * 2**30)},
)
FETCHED = Fetched(
    recommendation=RECOMMENDATION,
    push_token="push-123",
    history_nodes=("node-b", "node-a"),
    rules=NO_RULES,
)


def plan_for(review: dict[str, Any], settings: WebhookSettings = SETTINGS) -> Plan:
    plan = plan_admission(parse_review(review), settings)
    assert isinstance(plan, Plan), plan
    return plan


def mutate(
    review: dict[str, Any], fetched: Fetched = FETCHED, settings: WebhookSettings = SETTINGS
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod after the patch is applied, and the status annotation."""
    plan = plan_for(review, settings)
    mutation = build_mutation(plan, fetched, settings)
    patched: dict[str, Any] = jsonpatch.apply_patch(plan.pod, mutation.patch)
    return patched, json.loads(patched["metadata"]["annotations"][STATUS_ANNOTATION])


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c
        for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
        if c["name"] == name
    )
    return found


@pytest.mark.parametrize("index", [0, 1, 2])
def test_full_runner_18_pod_gets_every_feature(index: int) -> None:
    review = sample_review(index)
    original = copy.deepcopy(review["request"]["object"])
    pod, status = mutate(review)
    assert container(pod, "build")["resources"]["requests"] == {
        **original["spec"]["containers"][0]["resources"].get("requests", {}),
        "cpu": "1500m",
        "memory": "3Gi",
    }
    assert container(pod, "build")["resources"]["limits"]["memory"] == "4Gi"
    sidecar = pod["spec"]["initContainers"][-1]
    assert sidecar["name"] == "sizer-collector"
    assert sidecar["restartPolicy"] == "Always"
    assert pod["spec"]["initContainers"][:-1] == original["spec"]["initContainers"]
    assert pod["spec"]["shareProcessNamespace"] is True
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in sidecar["env"]}
    assert env["COLLECTOR_PUSH_TOKEN"] == "push-123"
    assert env["GITLAB_CI"] == "true"
    assert "CI_JOB_TOKEN" not in env and "CI_REGISTRY_PASSWORD" not in env
    assert env["RUNNER_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert json.loads(env["CGROUP_LIMITS"])["build"]["requests"]["cpu"] == "1500m"
    assert json.loads(env["APPLIED_SIZING"]) == {
        "requests": {"cpu": "1500m", "memory": "3Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert sidecar["resources"]["limits"]["cpu"] == sidecar["resources"]["requests"]["cpu"]
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    assert status == {
        "sizing": "applied",
        "sidecar": "injected",
        "affinity": ["node-b", "node-a"],
        "dryRun": False,
    }
    # Everything but what we meant to change is untouched.
    for name in ("helper",):
        assert container(pod, name) == container(original, name)
    assert pod["metadata"]["labels"] == original["metadata"]["labels"]


def test_existing_affinity_terms_are_all_kept() -> None:
    review = sample_review(1)
    original_affinity = copy.deepcopy(review["request"]["object"]["spec"]["affinity"])
    assert original_affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    pod, _ = mutate(review)
    node_affinity = pod["spec"]["affinity"]["nodeAffinity"]
    preferred = node_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    original_preferred = original_affinity["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert preferred[: len(original_preferred)] == original_preferred
    assert [t["weight"] for t in preferred[len(original_preferred) :]] == [100, 50]
    assert preferred[len(original_preferred)]["preference"]["matchExpressions"][0]["values"] == [
        "node-b"
    ]
    assert (
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]
        == (original_affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"])
    )


@pytest.mark.parametrize(
    "affinity",
    [
        None,
        {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}
            }
        },
    ],
)
def test_affinity_is_created_at_the_missing_level(affinity: dict[str, Any] | None) -> None:
    pod, _ = mutate(runner_review(affinity=affinity))
    for key, value in (affinity or {}).items():
        if key != "nodeAffinity":
            assert pod["spec"]["affinity"][key] == value
    preferred = pod["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert [t["weight"] for t in preferred] == [100, 50]


def test_runner_17_5_pod_label_only_falls_back_to_ci_variables() -> None:
    job = RunnerJob(runner_version=(17, 5), project_path="group/sub/app", ref="release/1.x")
    review = runner_review(job)
    assert "project.runner.gitlab.com/name" not in review["request"]["object"]["metadata"]["labels"]
    plan = plan_for(review)
    assert plan.identity is not None
    assert (plan.identity.org, plan.identity.repo) == ("group", "app")
    assert plan.identity.receiver_path() == "group/app/release%2F1.x/build"
    assert plan.history_key == "runner-7fc08398-project-1000"
    pod, status = mutate(review)
    assert status["sidecar"] == "injected"
    # Services of old runners are named svc-N: only `build` is resized.
    assert container(pod, "svc-0")["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}}


def test_unicode_and_slashes_are_encoded_for_the_receiver() -> None:
    job = RunnerJob(ref="feature/ünï côde", job_name="test: unit/py 3.12")
    plan = plan_for(runner_review(job))
    assert plan.identity is not None
    assert plan.identity.receiver_path() == (
        "acme/ml-pipeline/feature%2F%C3%BCn%C3%AF%20c%C3%B4de/test%3A%20unit%2Fpy%203.12"
    )


def test_json_pointer_escapes_slash_and_tilde() -> None:
    assert pointer("metadata", "annotations", "runner-sizer.io/status") == (
        "/metadata/annotations/runner-sizer.io~1status"
    )
    assert pointer("a~b/c", 0) == "/a~0b~1c/0"
    plan = plan_for(runner_review())
    ops = build_mutation(plan, FETCHED, SETTINGS).patch
    assert ops[-1]["path"] == "/metadata/annotations/runner-sizer.io~1status"


def test_pod_without_init_containers_or_annotations_gets_both_created() -> None:
    pod_manifest = runner_pod(RunnerJob())
    del pod_manifest["spec"]["initContainers"]
    review = review_for(pod_manifest)
    review["request"]["object"]["metadata"]["annotations"] = {}
    review["request"]["object"]["metadata"]["labels"]["job.runner.gitlab.com/pod"] = "x"
    pod, status = mutate(review)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["sizer-collector"]
    assert status["sidecar"] == "injected"


def test_already_injected_pod_is_left_alone() -> None:
    pod, _ = mutate(runner_review())
    assert plan_admission(parse_review(review_for(pod)), SETTINGS) is Ignore.ALREADY_INJECTED
    del pod["metadata"]["annotations"][STATUS_ANNOTATION]
    assert plan_admission(parse_review(review_for(pod)), SETTINGS) is Ignore.ALREADY_INJECTED


def test_opt_out_non_runner_and_other_operations_are_ignored() -> None:
    opted_out = runner_pod(RunnerJob(extra_annotations={"runner-sizer.io/inject": "false"}))
    assert plan_admission(parse_review(review_for(opted_out)), SETTINGS) is Ignore.OPT_OUT
    plain = {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c"}]},
    }
    assert plan_admission(parse_review(review_for(plain)), SETTINGS) is Ignore.NOT_RUNNER_POD
    for operation in ("UPDATE", "DELETE", "CONNECT"):
        review = runner_review()
        review["request"]["operation"] = operation
        assert plan_admission(parse_review(review), SETTINGS) is Ignore.NOT_POD_CREATE


def test_dry_run_annotates_only() -> None:
    settings = dataclasses.replace(SETTINGS, dry_run=True)
    plan = plan_for(runner_review(), settings)
    mutation = build_mutation(plan, FETCHED, settings)
    assert [op["path"] for op in mutation.patch] == [
        "/metadata/annotations/runner-sizer.io~1status"
    ]
    assert json.loads(mutation.patch[0]["value"])["dryRun"] is True
    assert json.loads(mutation.patch[0]["value"])["sidecar"] == "injected"


def test_failed_fetches_leave_the_pod_as_is_and_say_why() -> None:
    fetched = Fetched(
        sizing_reason=Reason.TIMEOUT, token_reason=Reason.BREAKER_OPEN, rules=NO_RULES
    )
    review = runner_review()
    pod, status = mutate(review, fetched)
    assert container(pod, "build") == container(review["request"]["object"], "build")
    assert "shareProcessNamespace" not in pod["spec"]
    assert status == {
        "sizing": "skipped:timeout",
        "sidecar": "skipped:breaker_open",
        "affinity": "skipped:no_history",
        "dryRun": False,
    }


def test_cold_start_uses_configured_defaults() -> None:
    settings = dataclasses.replace(SETTINGS, default_requests={"cpu": Decimal("0.5")})
    pod, status = mutate(
        runner_review(), Fetched(sizing_reason=Reason.COLD_START, rules=NO_RULES), settings
    )
    assert status["sizing"] == "default"
    assert container(pod, "build")["resources"]["requests"]["cpu"] == "500m"


def test_features_can_be_toggled_off() -> None:
    settings = dataclasses.replace(
        SETTINGS, enable_sizing=False, enable_sidecar=False, enable_affinity=False
    )
    _, status = mutate(runner_review(), FETCHED, settings)
    assert status == {
        "sizing": "skipped:disabled",
        "sidecar": "skipped:disabled",
        "affinity": "skipped:disabled",
        "dryRun": False,
    }


def test_pods_without_a_cache_volume_get_no_affinity() -> None:
    pod, status = mutate(runner_review(RunnerJob(cache_volume=None)))
    assert status["affinity"] == "skipped:no_cache_volume"
    assert "affinity" not in pod["spec"]


def test_sidecar_mounts_only_volumes_the_pod_has() -> None:
    settings = dataclasses.replace(
        SETTINGS, sidecar_volume_mounts=(("runner-cache", "/cache"), ("docker-certs", "/certs"))
    )
    pod, _ = mutate(runner_review(), FETCHED, settings)
    assert container(pod, "sizer-collector")["volumeMounts"] == [
        {"name": "runner-cache", "mountPath": "/cache", "readOnly": True}
    ]
