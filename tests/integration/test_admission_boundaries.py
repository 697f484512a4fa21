"""The real webhook server (gunicorn, TLS): API dry-run, token lifetime, unloadable bodies."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from runner_sizer.devcluster.receiver_standin import StandinServer
from runner_sizer.devcluster.runnerpods import RunnerJob
from runner_sizer.devcluster.webhook_process import WebhookProcess
from runner_sizer.identity import TIMEOUT_ANNOTATION
from runner_sizer.webhook.app import DRY_RUN_TOKEN
from tests.integration.conftest import Admission, post_review
from tests.support.reviews import runner_review


def push_token(admission: Admission) -> str:
    sidecar = admission.pod["spec"]["initContainers"][-1]
    token: str = next(e["value"] for e in sidecar["env"] if e["name"] == "COLLECTOR_PUSH_TOKEN")
    return token


def with_token(pod: dict[str, Any], token: str) -> dict[str, Any]:
    """`pod` with the sidecar's push token replaced."""
    copied = copy.deepcopy(pod)
    for env in copied["spec"]["initContainers"][-1]["env"]:
        if env["name"] == "COLLECTOR_PUSH_TOKEN":
            env["value"] = token
    return copied


def test_dry_run_gets_the_same_patch_with_a_placeholder_and_mints_nothing(
    webhook: WebhookProcess, fresh_job: RunnerJob, standin: StandinServer
) -> None:
    review = runner_review(fresh_job)
    review["request"]["dryRun"] = True
    minted = standin.state.calls["token"]
    dry = post_review(webhook, review)
    assert dry.status["sizing"] == "applied", "sizing reads have no side effect"
    assert dry.status["sidecar"] == "injected"
    assert push_token(dry) == DRY_RUN_TOKEN
    assert standin.state.calls["token"] == minted, "no token call on dry-run"
    real = post_review(webhook, runner_review(fresh_job))
    assert push_token(real).startswith("push-")
    assert standin.state.calls["token"] == minted + 1
    assert with_token(dry.pod, "t") == with_token(real.pod, "t"), "the same patch otherwise"


@pytest.fixture
def short_tokens(standin: StandinServer) -> Iterator[None]:
    """The receiver mints tokens that live 120 s."""
    lifetime, standin.state.token_lifetime = standin.state.token_lifetime, 120
    yield
    standin.state.token_lifetime = lifetime


@pytest.mark.usefixtures("short_tokens")
@pytest.mark.parametrize(("timeout", "reused"), [("30s", True), ("1h0m0s", False), (None, False)])
def test_a_token_is_reused_only_while_it_outlives_the_job(
    webhook: WebhookProcess,
    fresh_job: RunnerJob,
    standin: StandinServer,
    timeout: str | None,
    reused: bool,
) -> None:
    """30 s + 60 s margin fit in 120 s; an hour does not, nor does --job-timeout's 3600 s."""
    job = dataclasses.replace(
        fresh_job,
        runner_version=(18, 4) if timeout else (17, 9),
        extra_annotations={TIMEOUT_ANNOTATION: timeout} if timeout else {},
    )
    minted = standin.state.calls["token"]
    tokens = [push_token(post_review(webhook, runner_review(job))) for _ in range(6)]
    calls = standin.state.calls["token"] - minted
    if reused:
        assert calls <= 2, "at most one per worker"  # the fixture runs two workers
    else:
        assert calls == 6 and len(set(tokens)) == 6


def test_bodies_json_cannot_load_get_400(webhook: WebhookProcess) -> None:
    url, verify = f"{webhook.url}/mutate", str(webhook.ca_file)
    depth = 100_000
    bodies = [
        b"[" * depth + b"]" * depth,
        b'{"request":' * depth + b"1" + b"}" * depth,
        b"1" * 5000,  # more digits than int() converts
        b'{"request": "\xed\xa0\x80"}',
    ]
    for body in bodies:
        response = requests.post(url, data=body, verify=verify, timeout=10)
        assert response.status_code == 400, (body[:20], response.status_code)
        assert response.json()["error"].startswith("not an AdmissionReview")
    assert requests.get(f"{webhook.url}/healthz", verify=verify, timeout=5).ok
