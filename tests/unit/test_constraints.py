"""The model of what the apiserver checks after the webhook, and stepping back from it."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import jsonpatch

from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.webhook.constraints import (
    NO_RULES,
    LimitItem,
    NamespaceRules,
    Quota,
    Rule,
    aggregate,
    boxes,
    limit_items,
    problems,
    quota_of,
)
from runner_sizer.webhook.fitting import fit
from runner_sizer.webhook.mutation import STATUS_ANNOTATION, Fetched, build_mutation
from runner_sizer.webhook.settings import WebhookSettings
from runner_sizer.webhook.sidecar import sidecar_resources
from runner_sizer.webhook.sizing import Recommendation
from tests.support.reviews import review_for
from tests.unit.test_mutation import SETTINGS, plan_for

GI = Decimal(2**30)


def spec_with(build: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"containers": [{"name": "build", "resources": build}], **extra}


def test_limit_range_and_quota_are_read_as_stored() -> None:
    items = limit_items(
        {"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "default": {"cpu": "1"}}]}}
    )
    assert items == (
        LimitItem("Container", maximum={"cpu": Decimal(2)}, default={"cpu": Decimal(1)}),
    )
    assert quota_of({"metadata": {"name": "q"}, "status": {}}) is None  # not enforced yet
    quota = quota_of(
        {"metadata": {"name": "q"}, "status": {"hard": {"pods": "3"}, "used": {"pods": "1"}}}
    )
    assert quota == Quota("q", {"pods": Decimal(3)}, {"pods": Decimal(1)})


def test_sidecars_add_up_and_init_containers_take_the_peak() -> None:
    spec = {
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
        "initContainers": [
            {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
            {"name": "i", "resources": {"requests": {"cpu": "3"}}},
        ],
    }
    assert aggregate(boxes(spec), "requests") == {"cpu": Decimal(4)}


def test_limit_range_defaults_land_on_what_the_webhook_adds() -> None:
    """A default cpu limit on a sidecar without one counts against limits.cpu."""
    rules = NamespaceRules(
        limits=(LimitItem("Container", default={"cpu": Decimal(1)}),),
        quotas=(Quota("q", {"limits.cpu": Decimal("2.5")}, {"limits.cpu": Decimal(1)}),),
    )
    plain = spec_with({"requests": {"cpu": "1"}, "limits": {"cpu": "1"}})
    assert problems(plain, rules) == set()
    with_sidecar = {**plain, "initContainers": [{"name": "c", "restartPolicy": "Always"}]}
    assert {p.rule for p in problems(with_sidecar, rules)} == {Rule.QUOTA}


def test_a_quota_on_limits_needs_every_container_to_set_one() -> None:
    rules = NamespaceRules(quotas=(Quota("q", {"limits.cpu": Decimal(10)}, {}),))
    spec = {**spec_with({"limits": {"cpu": "1"}}), "initContainers": [{"name": "c"}]}
    assert [p.detail for p in problems(spec, rules)] == ["q: c must specify limits.cpu"]


def test_limit_range_compares_at_milli_precision() -> None:
    rules = NamespaceRules(limits=(LimitItem("Container", maximum={"cpu": Decimal("1.5")}),))
    assert problems(spec_with({"limits": {"cpu": "1500m"}}), rules) == set()
    assert problems(spec_with({"limits": {"cpu": "1500001u"}}), rules)


def test_fit_keeps_what_the_rules_allow_and_names_the_rule() -> None:
    rules = NamespaceRules(quotas=(Quota("q", {"requests.memory": 4 * GI}, {}),))
    spec = spec_with({"requests": {"memory": "1Gi", "cpu": "1"}})
    sized = {"requests": {"memory": "8Gi", "cpu": "2"}}
    chosen = fit(
        spec,
        build_index=0,
        sized=sized,
        sized_resources=frozenset({"cpu", "memory"}),
        sidecar=None,
        rules=rules,
    )
    assert chosen.resources == {"cpu"}
    assert chosen.blocked == {"memory": Rule.QUOTA}


def test_sidecar_size_moves_inside_the_limit_range() -> None:
    items = (
        LimitItem("Container", minimum={"cpu": Decimal("0.1"), "memory": Decimal(128 * 2**20)}),
    )
    assert sidecar_resources(items)["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert sidecar_resources(())["limits"] == sidecar_resources(())["requests"]


def _status(settings: WebhookSettings, fetched: Fetched, job: RunnerJob) -> dict[str, Any]:
    plan = plan_for(review_for(runner_pod(job)), settings)
    mutation = build_mutation(plan, fetched, settings)
    pod = jsonpatch.apply_patch(plan.pod, mutation.patch)
    status: dict[str, Any] = json.loads(pod["metadata"]["annotations"][STATUS_ANNOTATION])
    return status


def test_unknown_rules_add_nothing_they_could_refuse() -> None:
    fetched = Fetched(recommendation=Recommendation({"cpu": Decimal(2)}), push_token="t")
    status = _status(SETTINGS, fetched, RunnerJob())
    assert (status["sizing"], status["sidecar"]) == ("skipped:rules_unknown",) * 2


def test_a_job_that_set_its_own_memory_keeps_it() -> None:
    settings = dataclasses.replace(SETTINGS, sidecar_image="")
    recommendation = Recommendation({"cpu": Decimal(2), "memory": 3 * GI})
    fetched = Fetched(recommendation=recommendation, rules=NO_RULES)
    job = RunnerJob()
    pod = runner_pod(job)
    pod["spec"]["containers"][0]["env"].append(
        {"name": "KUBERNETES_MEMORY_REQUEST", "value": "2Gi"}
    )
    plan = plan_for(review_for(pod), settings)
    mutation = build_mutation(plan, fetched, settings)
    after = jsonpatch.apply_patch(plan.pod, mutation.patch)
    assert after["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
    status = json.loads(after["metadata"]["annotations"][STATUS_ANNOTATION])
    assert status["sizingKept"] == {"memory": "explicit_overwrite"}
    assert ("sizing", "explicit_overwrite") in set(mutation.reasons())


def test_unknown_rules_keep_nothing_partial() -> None:
    job = RunnerJob()
    pod = runner_pod(job)
    pod["spec"]["containers"][0]["env"].append({"name": "KUBERNETES_CPU_LIMIT", "value": "1"})
    recommendation = Recommendation({"cpu": Decimal(2), "memory": 3 * GI})
    plan = plan_for(review_for(pod), SETTINGS)
    mutation = build_mutation(plan, Fetched(recommendation=recommendation), SETTINGS)
    assert mutation.kept == {}
    assert mutation.skipped["sizing"] == "rules_unknown"


def test_a_sidecar_name_taken_by_a_container_is_not_injected() -> None:
    settings = dataclasses.replace(SETTINGS, sidecar_name="helper")
    fetched = Fetched(push_token="t", rules=NO_RULES)
    assert _status(settings, fetched, RunnerJob())["sidecar"] == "skipped:name_collision"


def test_a_job_with_huge_identifiers_gets_no_unstartable_sidecar() -> None:
    fetched = Fetched(push_token="t", rules=NO_RULES)
    job = RunnerJob(job_name="x" * 40_000)
    assert _status(SETTINGS, fetched, job)["sidecar"] == "skipped:env_too_large"
