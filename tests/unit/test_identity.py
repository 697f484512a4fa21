"""The one identity function: what the runner set beats what the job claims."""

from __future__ import annotations

from typing import Any

import pytest

from runner_sizer.devcluster.runnerpods import RunnerJob, ci_variables, runner_pod
from runner_sizer.history.keys import HistoryKey, history_key
from runner_sizer.identity import (
    IdentityGap,
    JobIdentity,
    job_identity,
    job_timeout_seconds,
)


def _identity(job: RunnerJob, **env_overrides: str) -> JobIdentity | IdentityGap:
    pod = runner_pod(job)
    return job_identity(pod["metadata"], ci_variables(job) | env_overrides)


def test_protected_labels_beat_what_the_job_claims() -> None:
    found = _identity(
        RunnerJob(project_id=7, project_path="acme/api"),
        CI_PROJECT_PATH="victim/secrets",
        CI_PROJECT_ROOT_NAMESPACE="victim",
        CI_PROJECT_NAME="secrets",
        CI_PROJECT_ID="99",
    )
    assert isinstance(found, JobIdentity)
    assert (found.org, found.repo, found.project_id) == ("acme", "api", "7")


def test_old_runners_trust_env_only_when_the_pod_name_agrees() -> None:
    job = RunnerJob(project_id=7, project_path="acme/api", runner_version=(17, 5))
    found = _identity(job)
    assert isinstance(found, JobIdentity) and found.project_id == "7"
    assert _identity(job, CI_PROJECT_ID="8") is IdentityGap.UNVERIFIED_IDENTITY


def test_the_pod_name_is_read_from_generate_name_when_there_is_no_name() -> None:
    job = RunnerJob(project_id=7, runner_version=(17, 5))
    pod = runner_pod(job)
    assert "name" not in pod["metadata"]
    named = dict(pod["metadata"], name=f"{job.pod_label}-abcdefgh")
    for metadata in (pod["metadata"], named):
        assert isinstance(job_identity(metadata, ci_variables(job)), JobIdentity)
    stranger: dict[str, Any] = dict(pod["metadata"], generateName="my-own-pod-")
    assert job_identity(stranger, ci_variables(job)) is IdentityGap.UNVERIFIED_IDENTITY


def test_no_identity_without_the_four_parts() -> None:
    job = RunnerJob(runner_version=(17, 5))
    pod = runner_pod(job)
    assert job_identity(pod["metadata"], {}) is IdentityGap.NO_IDENTITY


def test_dot_segments_are_encoded_for_the_receiver() -> None:
    identity = JobIdentity("o", "r", "..", ".", "1", "7")
    assert identity.receiver_path() == "o/r/%2E%2E/%2E"
    assert identity.cache_key() == "7:o/r/%2E%2E/%2E"


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("1h0m0s", 3600.0), ("2h3m0.5s", 7380.5), ("90m", 5400.0), ("", None), ("1 day", None)],
)
def test_job_timeout_is_read_from_the_runner_annotation(raw: str, seconds: float | None) -> None:
    metadata = {"annotations": {"job.runner.gitlab.com/timeout": raw}}
    assert job_timeout_seconds(metadata) == seconds


def test_history_key_prefers_the_protected_pod_label() -> None:
    metadata = runner_pod(RunnerJob(project_id=7, runner_short="abc"))["metadata"]
    metadata["labels"]["pod"] = "runner-evil-project-1-concurrent-0"
    assert history_key(HistoryKey.RUNNER_PROJECT, metadata) == "runner-abc-project-7"
    metadata["annotations"]["project.runner.gitlab.com/id"] = "1"
    assert history_key(HistoryKey.PROJECT, metadata) == "project-7"
