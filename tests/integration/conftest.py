"""The real webhook server (gunicorn, TLS) against a real HTTP receiver stand-in."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonpatch
import pytest
import requests

from runner_sizer.devcluster.receiver_standin import StandinServer, StandinState
from runner_sizer.devcluster.runnerpods import RunnerJob
from runner_sizer.devcluster.webhook_process import NO_KUBERNETES, WebhookProcess, webhook_for
from runner_sizer.webhook.mutation import STATUS_ANNOTATION
from tests.support.reviews import runner_review

RECOMMENDED = {
    "requests": {"cpu": "1500m", "memory": "3Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}


@dataclass
class Admission:
    status_code: int
    review: dict[str, Any]
    pod: dict[str, Any]
    status: dict[str, Any]
    seconds: float


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    server = StandinServer(StandinState()).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_job(standin: StandinServer) -> RunnerJob:
    """A job no cache has seen, with a recommendation waiting at the receiver."""
    job = RunnerJob(job_name=f"build {uuid.uuid4().hex[:6]}", ref="feature/ünï côde")
    key = f"acme/ml-pipeline/{job.ref}/{job.job_name}"
    standin.state.recommendations[key] = RECOMMENDED
    standin.state.set_mode("ok")
    return job


def start_webhook(standin: StandinServer, *args: str) -> WebhookProcess:
    return webhook_for(standin.url, *NO_KUBERNETES, *args).start()


@pytest.fixture(scope="module")
def webhook(standin: StandinServer) -> Iterator[WebhookProcess]:
    process = start_webhook(
        standin, "--deadline=0.5", "--receiver-timeout=0.4", "--breaker-failures=1000"
    )
    yield process
    process.stop()


def post_review(webhook: WebhookProcess, review: dict[str, Any]) -> Admission:
    response = requests.post(
        f"{webhook.url}/mutate", json=review, verify=str(webhook.ca_file), timeout=10
    )
    answer = response.json()
    pod = review["request"]["object"]
    status: dict[str, Any] = {}
    patch = answer.get("response", {}).get("patch")
    if patch:
        pod = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(patch)))
        status = json.loads(pod["metadata"]["annotations"][STATUS_ANNOTATION])
    return Admission(response.status_code, answer, pod, status, response.elapsed.total_seconds())


@pytest.fixture
def admit(webhook: WebhookProcess) -> Callable[[RunnerJob], Admission]:
    return lambda job: post_review(webhook, runner_review(job))


def metric_value(webhook: WebhookProcess, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    text = requests.get(webhook.metrics_url, timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
    return total
