"""Who a runner job pod is: org/repo/workflow/job, from labels or CI variables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

_RUNNER_POD_LABEL = re.compile(r"^runner-[A-Za-z0-9_.]+-project-\d+-concurrent-\d+$")


@dataclass(frozen=True)
class JobIdentity:
    org: str
    repo: str
    workflow: str
    job: str
    run_id: str

    def receiver_path(self) -> str:
        """`{org}/{repo}/{workflow}/{job}`, each segment percent-encoded ('/' too)."""
        return "/".join(quote(s, safe="") for s in (self.org, self.repo, self.workflow, self.job))


def is_runner_pod(metadata: Mapping[str, Any]) -> bool:
    """GitLab Runner's labels (17.9+ or the legacy `pod` label) or job annotations."""
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return (
        "job.runner.gitlab.com/pod" in labels
        or bool(_RUNNER_POD_LABEL.match(str(labels.get("pod", ""))))
        or "job.runner.gitlab.com/id" in annotations
    )


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """Literal env values of a container (valueFrom entries are skipped)."""
    return {
        e["name"]: e["value"]
        for e in container.get("env") or []
        if isinstance(e, dict) and isinstance(e.get("value"), str) and "name" in e
    }


def job_identity(metadata: Mapping[str, Any], build_env: Mapping[str, str]) -> JobIdentity | None:
    """Labels/annotations first, the build container's CI variables as fallback."""
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    path = build_env.get("CI_PROJECT_PATH", "")
    org = (
        labels.get("project.runner.gitlab.com/root-namespace")
        or build_env.get("CI_PROJECT_ROOT_NAMESPACE")
        or (path.split("/", 1)[0] if "/" in path else "")
    )
    repo = (
        labels.get("project.runner.gitlab.com/name")
        or build_env.get("CI_PROJECT_NAME")
        or (path.rsplit("/", 1)[-1] if "/" in path else "")
    )
    workflow = annotations.get("job.runner.gitlab.com/ref") or build_env.get(
        "CI_COMMIT_REF_NAME", ""
    )
    job = annotations.get("job.runner.gitlab.com/name") or build_env.get("CI_JOB_NAME", "")
    run_id = annotations.get("job.runner.gitlab.com/id") or build_env.get("CI_JOB_ID", "")
    if not (org and repo and workflow and job):
        return None
    return JobIdentity(org, repo, workflow, job, run_id)
