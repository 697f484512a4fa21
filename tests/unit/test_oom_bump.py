"""An answer's OOM floor: reached by the pod's memory limit, or the counted reason why not."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import jsonpatch
import pytest

from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.webhook.constraints import NO_RULES, LimitItem, NamespaceRules
from runner_sizer.webhook.mutation import (
    STATUS_ANNOTATION,
    Fetched,
    Plan,
    Reason,
    build_mutation,
    plan_admission,
)
from runner_sizer.webhook.review import parse_review
from runner_sizer.webhook.settings import WebhookSettings
from runner_sizer.webhook.sizing import Bounds, Recommendation, SizingMode, parse_recommendation
from tests.support.reviews import review_for

GI = 2**30
SETTINGS = WebhookSettings(sizer_url="http://127.0.0.1:1", sizer_read_token="r")
BUMPED = Recommendation(
    requests={"cpu": Decimal(1), "memory": Decimal(5 * GI)},
    limits={"memory": Decimal(5 * GI)},
    memory_floor=Decimal(5 * GI),
)


def admit(
    *,
    job: RunnerJob | None = None,
    settings: WebhookSettings = SETTINGS,
    recommendation: Recommendation = BUMPED,
    rules: NamespaceRules = NO_RULES,
) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, Reason]]]:
    """The build container after the patch, the status, and the counted reasons."""
    plan = plan_admission(parse_review(review_for(runner_pod(job or RunnerJob()))), settings)
    assert isinstance(plan, Plan)
    mutation = build_mutation(plan, Fetched(recommendation, rules=rules), settings)
    pod = jsonpatch.apply_patch(plan.pod, mutation.patch)
    build = next(c for c in pod["spec"]["containers"] if c["name"] == "build")
    status = json.loads(pod["metadata"]["annotations"][STATUS_ANNOTATION])
    return build["resources"], status, list(mutation.reasons())


def test_requests_and_limits_mode_raises_the_limit_to_the_floor() -> None:
    resources, status, reasons = admit()
    assert resources["limits"]["memory"] == "5Gi" and resources["requests"]["memory"] == "5Gi"
    assert status["oomBump"] == "applied" and "oomBumpBlocked" not in status
    assert ("oom_bump", Reason.OOM_BUMP_BLOCKED) not in reasons


def test_requests_only_keeps_the_limit_that_killed_the_job_and_counts_it() -> None:
    requests_only = dataclasses.replace(SETTINGS, sizing_mode=SizingMode.REQUESTS_ONLY)
    resources, status, reasons = admit(settings=requests_only)
    assert resources["limits"]["memory"] == "4Gi"  # the runner's, as it was
    assert status["oomBump"] == "skipped:oom_bump_blocked"
    assert status["oomBumpBlocked"] == {"floor": "5Gi", "limit": "4Gi", "by": "requests_only"}
    assert ("oom_bump", Reason.OOM_BUMP_BLOCKED) in reasons


@pytest.mark.parametrize(
    ("changes", "by"),
    [
        (
            {
                "settings": dataclasses.replace(
                    SETTINGS, bounds=Bounds(maximum={"memory": Decimal(4.5 * GI)})
                )
            },
            "max_memory",
        ),
        ({"job": RunnerJob(overwrites={"KUBERNETES_MEMORY_LIMIT": "4Gi"})}, "explicit_overwrite"),
        (
            {
                "rules": NamespaceRules(
                    limits=(LimitItem("Container", maximum={"memory": Decimal(4 * GI)}),)
                )
            },
            "limit_range",
        ),
        (
            {"recommendation": Recommendation({"memory": Decimal(GI)}, {}, Decimal(5 * GI))},
            "answer",
        ),
    ],
)
def test_each_bound_that_holds_the_limit_down_is_named(changes: dict[str, Any], by: str) -> None:
    _, status, reasons = admit(**changes)
    assert status["oomBump"] == "skipped:oom_bump_blocked" and status["oomBumpBlocked"]["by"] == by
    assert ("oom_bump", Reason.OOM_BUMP_BLOCKED) in reasons


def test_a_floor_under_the_limit_or_no_limit_at_all_is_not_blocked() -> None:
    requests_only = dataclasses.replace(SETTINGS, sizing_mode=SizingMode.REQUESTS_ONLY)
    low = dataclasses.replace(BUMPED, memory_floor=Decimal(3 * GI))
    assert admit(settings=requests_only, recommendation=low)[1]["oomBump"] == "applied"


def test_without_a_floor_there_is_no_oom_status() -> None:
    _, status, _ = admit(recommendation=dataclasses.replace(BUMPED, memory_floor=None))
    assert "oomBump" not in status


def test_the_floor_is_read_tolerantly() -> None:
    body = {"requests": {"memory": "1Gi"}, "oom": {"memory_floor": "2Gi", "killed_at": "x"}}
    assert parse_recommendation(body) == Recommendation(
        {"memory": Decimal(GI)}, {}, memory_floor=Decimal(2 * GI)
    )
    for oom in ("2Gi", {"memory_floor": "lots"}, {"memory_floor": -1}, {}, None):
        parsed = parse_recommendation({"requests": {"memory": "1Gi"}, "oom": oom})
        assert parsed == Recommendation({"memory": Decimal(GI)})
    assert parse_recommendation({"oom": {"memory_floor": "2Gi"}}) is None
