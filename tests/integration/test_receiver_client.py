"""The receiver client against the real HTTP(S) stand-in: what goes over the wire."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.receiver_standin import SizingRequest, StandinServer, StandinState
from runner_sizer.identity import JobIdentity
from runner_sizer.webhook.metrics import build_metrics
from runner_sizer.webhook.mutation import Reason
from runner_sizer.webhook.receiver import Deadline, ReceiverClient
from runner_sizer.webhook.settings import WebhookSettings
from tests.integration.conftest import RECOMMENDED
from tests.integration.test_receiver_contract import validate

SMALL = {"requests": {"cpu": "250m", "memory": "512Mi"}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receiver() -> Iterator[StandinServer]:
    server = StandinServer(StandinState()).start()
    yield server
    server.stop()


def client_for(
    url: str, clock: FakeClock | None = None, **settings: float | int | Path
) -> ReceiverClient:
    configured = WebhookSettings(
        sizer_url=url,
        sizer_read_token="read-token",
        sizer_push_token="push-token",
        **settings,  # type: ignore[arg-type]
    )
    metrics = build_metrics(CollectorRegistry())
    return ReceiverClient(configured, metrics, clock or time.monotonic)


def identity(project_id: str = "1000", workflow: str = "main") -> JobIdentity:
    return JobIdentity("acme", "app", workflow, "build", "1", project_id)


def deadline() -> Deadline:
    return Deadline(2.0)


def test_same_name_in_two_projects_gets_two_answers(receiver: StandinServer) -> None:
    receiver.state.recommendations |= {"1:acme/app/main/build": RECOMMENDED}
    receiver.state.recommendations |= {"2:acme/app/main/build": SMALL}
    client = client_for(receiver.url)
    first = client.sizing(identity("1"), deadline())
    second = client.sizing(identity("2"), deadline())
    assert first.recommendation is not None and second.recommendation is not None
    assert first.recommendation != second.recommendation
    assert [r.project_id for r in receiver.state.sizing_requests] == ["1", "2"]
    # Each project has its own cache entry: the first answer is served again, not the second.
    assert client.sizing(identity("1"), deadline()) == first
    assert receiver.state.calls["sizing"] == 2


def test_negative_and_last_good_entries_are_per_project(receiver: StandinServer) -> None:
    receiver.state.recommendations |= {"2:acme/app/main/build": SMALL}
    clock = FakeClock()
    client = client_for(receiver.url, clock)
    assert client.sizing(identity("1"), deadline()).reason is Reason.COLD_START
    assert client.sizing(identity("2"), deadline()).recommendation is not None
    clock.now += 3600  # every fresh and negative entry has expired
    receiver.state.set_mode("500")
    assert client.sizing(identity("2"), deadline()).recommendation is not None, "last good"
    assert client.sizing(identity("1"), deadline()).reason is Reason.RECEIVER_ERROR


def test_unknown_project_id_is_not_sent(receiver: StandinServer) -> None:
    receiver.state.recommendations |= {"acme/app/main/build": SMALL}
    client = client_for(receiver.url)
    assert client.sizing(identity(""), deadline()).recommendation is not None
    assert client.push_token(identity(""), deadline(), 600).token
    assert receiver.state.sizing_requests == [SizingRequest(("acme", "app", "main", "build"), None)]
    assert receiver.state.token_scopes == [
        {"org": "acme", "repo": "app", "workflow": "main", "job": "build"}
    ]


def test_token_scope_carries_the_project_and_tokens_are_cached_per_project(
    receiver: StandinServer,
) -> None:
    client = client_for(receiver.url)
    one = client.push_token(identity("1"), deadline(), 600).token
    two = client.push_token(identity("2"), deadline(), 600).token
    assert one and two and one != two
    assert client.push_token(identity("1"), deadline(), 600).token == one
    assert receiver.state.calls["token"] == 2
    for scope in receiver.state.token_scopes:
        validate("TokenScope", scope)
    assert [s["project_id"] for s in receiver.state.token_scopes] == ["1", "2"]


@pytest.mark.parametrize("dots", ["..", "."])
def test_dot_segments_reach_the_receiver_intact(receiver: StandinServer, dots: str) -> None:
    receiver.state.recommendations |= {f"acme/app/{dots}/build": SMALL}
    answer = client_for(receiver.url).sizing(identity(workflow=dots), deadline())
    assert receiver.state.sizing_requests == [SizingRequest(("acme", "app", dots, "build"), "1000")]
    assert answer.recommendation is not None


def test_a_token_is_reused_only_while_it_outlives_the_job(receiver: StandinServer) -> None:
    receiver.state.token_lifetime = 600
    clock = FakeClock()
    client = client_for(receiver.url, clock)
    first = client.push_token(identity(), deadline(), 300).token
    clock.now += 200  # 400 s left: covers a 300 s job and the 60 s margin
    assert client.push_token(identity(), deadline(), 300).token == first
    clock.now += 100  # 300 s left: a job admitted now would outlive the token
    late = client.push_token(identity(), deadline(), 300).token
    assert late and late != first
    assert receiver.state.calls["token"] == 2


def test_a_token_shorter_than_the_job_is_given_but_not_cached(receiver: StandinServer) -> None:
    receiver.state.token_lifetime = 600
    client = client_for(receiver.url, FakeClock())
    tokens = {client.push_token(identity(), deadline(), 3600).token for _ in range(2)}
    assert None not in tokens and len(tokens) == 2
    assert receiver.state.calls["token"] == 2


def test_breaker_recovers_from_a_ca_file_removed_then_restored(tmp_path: Path) -> None:
    """A missing CA file raises OSError in requests: a failure, never an escape."""
    private = CertificateAuthority("receiver-private-ca")
    cert, key = private.serving("receiver").write(tmp_path, "receiver")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    state = StandinState(recommendations={"acme/app/main/build": SMALL})
    server = StandinServer(state, tls=context).start()
    ca_file = tmp_path / "receiver-ca.crt"
    ca_file.write_bytes(private.cert_pem)
    cooldown = 0.3
    client = client_for(
        server.url, sizer_ca_file=ca_file, breaker_failures=1, breaker_cooldown_seconds=cooldown
    )
    try:
        assert client.push_token(identity(), deadline(), 60).token
        ca_file.unlink()
        assert client.sizing(identity(), deadline()).reason is Reason.RECEIVER_ERROR
        assert client.sizing(identity(), deadline()).reason is Reason.BREAKER_OPEN
        time.sleep(cooldown + 0.05)
        # The half-open trial fails the same way, and opens the breaker again.
        assert client.sizing(identity(), deadline()).reason is Reason.RECEIVER_ERROR
        assert client.sizing(identity(), deadline()).reason is Reason.BREAKER_OPEN
        ca_file.write_bytes(private.cert_pem)
        time.sleep(cooldown + 0.05)
        assert client.sizing(identity(), deadline()).recommendation is not None
        assert state.calls["sizing"] == 1
    finally:
        server.stop()
