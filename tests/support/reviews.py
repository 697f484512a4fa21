"""Realistic AdmissionReviews: the shared samples, and variations built from runner pods."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLES = sorted(DATA.glob("review-*.json"))


def sample_review(index: int = 0) -> dict[str, Any]:
    review: dict[str, Any] = json.loads(SAMPLES[index].read_text())
    return review


def review_for(
    pod: dict[str, Any], operation: str = "CREATE", namespace: str = "gitlab-runner"
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": operation,
            "object": copy.deepcopy(pod),
            "dryRun": False,
        },
    }


def runner_review(
    job: RunnerJob | None = None, affinity: dict[str, Any] | None = None
) -> dict[str, Any]:
    return review_for(runner_pod(job or RunnerJob(), affinity))
