"""The webhook over HTTP/2 (ALPN h2), from a client at the protocol's level."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from runner_sizer.devcluster.receiver_standin import StandinServer
from runner_sizer.devcluster.runnerpods import RunnerJob
from runner_sizer.devcluster.webhook_process import WebhookProcess
from runner_sizer.http2 import MAX_STREAMS
from tests.integration.conftest import metric_value, start_webhook
from tests.support.h2_client import H2Client
from tests.support.reviews import runner_review

MAX_BODY = 2_000_000


@pytest.fixture(scope="module")
def h2_webhook(standin: StandinServer) -> Iterator[WebhookProcess]:
    process = start_webhook(standin, f"--max-body-bytes={MAX_BODY}")
    yield process
    process.stop()


def review_bytes(padding: int = 0, job: RunnerJob | None = None) -> tuple[str, bytes]:
    review = runner_review(job or RunnerJob())
    if padding:
        review["request"]["object"]["metadata"]["annotations"]["padding"] = "x" * padding
    return review["request"]["uid"], json.dumps(review).encode()


def patch_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(answer["response"]["patch"]))
    return patch


def test_h2_is_chosen_and_answers_as_http11_does(h2_webhook: WebhookProcess) -> None:
    before = metric_value(h2_webhook, "runner_sizer_http_connections_total", protocol="h2")
    job = RunnerJob()
    uid, body = review_bytes(job=job)
    with H2Client(h2_webhook.url, h2_webhook.ca_file, ("h2", "http/1.1")) as client:
        assert client.protocol == "h2"
        (answer,) = client.wait(client.request("POST", "/mutate", body))
    over_h1 = requests.post(
        f"{h2_webhook.url}/mutate", data=body, verify=str(h2_webhook.ca_file), timeout=10
    ).json()
    assert answer.status == 200
    assert answer.headers[b"content-type"] == b"application/json"
    over_h2 = json.loads(answer.body)
    assert over_h2["response"]["uid"] == uid
    assert patch_of(over_h2) == patch_of(over_h1)
    after = metric_value(h2_webhook, "runner_sizer_http_connections_total", protocol="h2")
    assert after == before + 1


def test_as_many_streams_as_allowed_at_once(h2_webhook: WebhookProcess) -> None:
    with H2Client(h2_webhook.url, h2_webhook.ca_file) as client:
        uids = {}
        for _ in range(MAX_STREAMS):
            uid, body = review_bytes()
            uids[client.request("POST", "/mutate", body)] = uid
        answers = client.wait(*uids)
        probe = client.wait(client.request("GET", "/healthz"))[0]
    assert [a.status for a in answers] == [200] * MAX_STREAMS
    assert [json.loads(a.body)["response"]["uid"] for a in answers] == list(uids.values())
    assert json.loads(probe.body) == {"status": "ok"}


def test_a_review_past_every_window_is_read_whole(h2_webhook: WebhookProcess) -> None:
    """1.5 MB: past a stream's 64 KiB window and the connection's 1 MiB, both handed
    back as the application reads."""
    with H2Client(h2_webhook.url, h2_webhook.ca_file) as client:
        uid, body = review_bytes(padding=1_500_000)
        first = client.request("POST", "/mutate", body)
        uid_next, body_next = review_bytes()
        second = client.request("POST", "/mutate", body_next)
        answers = client.wait(first, second)
    assert [a.status for a in answers] == [200, 200]
    assert [json.loads(a.body)["response"]["uid"] for a in answers] == [uid, uid_next]
    assert patch_of(json.loads(answers[0].body))


def test_an_answer_waits_for_a_small_client_window(h2_webhook: WebhookProcess) -> None:
    with H2Client(h2_webhook.url, h2_webhook.ca_file, window=100) as client:
        uid, body = review_bytes()
        (answer,) = client.wait(client.request("POST", "/mutate", body))
    assert len(answer.body) > 1000
    assert json.loads(answer.body)["response"]["uid"] == uid


def test_a_review_past_the_limit_is_refused_and_the_connection_lives_on(
    h2_webhook: WebhookProcess,
) -> None:
    with H2Client(h2_webhook.url, h2_webhook.ca_file) as client:
        stream_id = client.open("POST", "/mutate", length=MAX_BODY + 1)
        client.send(stream_id, b"{" * 50_000, end=False)
        (refused,) = client.wait(stream_id)
        uid, body = review_bytes()
        (next_answer,) = client.wait(client.request("POST", "/mutate", body))
    assert refused.status == 413
    assert b"--max-body-bytes" in refused.body
    assert json.loads(next_answer.body)["response"]["uid"] == uid


def test_a_review_without_a_length_past_the_limit_is_refused(h2_webhook: WebhookProcess) -> None:
    with H2Client(h2_webhook.url, h2_webhook.ca_file) as client:
        stream_id = client.open("POST", "/mutate")
        client.send(stream_id, b" " * (MAX_BODY + 100_000))
        (refused,) = client.wait(stream_id)
    assert refused.status == 413


def test_a_stream_reset_mid_upload_leaves_the_others(h2_webhook: WebhookProcess) -> None:
    with H2Client(h2_webhook.url, h2_webhook.ca_file) as client:
        abandoned = client.open("POST", "/mutate", length=300_000)
        client.send(abandoned, b" " * 30_000, end=False)
        client.reset(abandoned)
        uid, body = review_bytes()
        (answer,) = client.wait(client.request("POST", "/mutate", body))
    assert json.loads(answer.body)["response"]["uid"] == uid


def test_a_malformed_review_gets_a_400(h2_webhook: WebhookProcess) -> None:
    with H2Client(h2_webhook.url, h2_webhook.ca_file) as client:
        (answer,) = client.wait(client.request("POST", "/mutate", b'{"kind": "Pod"}'))
    assert answer.status == 400


def test_bytes_that_break_the_protocol_end_only_that_connection(
    h2_webhook: WebhookProcess,
) -> None:
    with H2Client(h2_webhook.url, h2_webhook.ca_file) as broken:
        # A DATA frame on stream 0, which only frames about the connection use.
        broken.sock.sendall(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00X")
        broken.read_until_closed()
        assert broken.terminated is not None
    with H2Client(h2_webhook.url, h2_webhook.ca_file) as client:
        uid, body = review_bytes()
        (answer,) = client.wait(client.request("POST", "/mutate", body))
    assert json.loads(answer.body)["response"]["uid"] == uid


def test_http2_off_offers_http11_only(standin: StandinServer) -> None:
    process = start_webhook(standin, "--http2=false")
    try:
        with H2Client(process.url, process.ca_file, ("h2", "http/1.1")) as client:
            assert client.protocol == "http/1.1"
    finally:
        process.stop()
