"""The servers' gunicorn worker (runner_sizer.serving) in a real gunicorn process."""

from __future__ import annotations

import email.utils
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_sizer.devcluster.cluster import free_port
from runner_sizer.serving import WORKER_CLASS
from tests.support.busy_wsgi import BODY

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
REQUEST = b"GET /answer HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    port = free_port()
    process = subprocess.Popen(
        [
            GUNICORN,
            f"--worker-class={WORKER_CLASS}",
            "--keep-alive=1",
            f"--bind=127.0.0.1:{port}",
            "tests.support.busy_wsgi:app",
        ],
        stderr=subprocess.DEVNULL,
    )
    address = ("127.0.0.1", port)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(address, timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.1)
    yield address
    process.terminate()
    process.wait(timeout=10)


def read_answer(conn: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes]:
    """One whole response (it has a Content-Length), and what was read past it."""
    data = buffered
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += conn.recv(65536)
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def test_an_answer_is_headers_and_body_in_one_send(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as conn:
        for _ in range(20):
            conn.sendall(REQUEST)
            first = conn.recv(65536)  # one send on loopback arrives as one segment
            assert first.startswith(b"HTTP/1.1 200")
            assert first.endswith(BODY)


def test_head_answers_without_a_body(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as conn:
        conn.sendall(b"HEAD /answer HTTP/1.1\r\nHost: test\r\n\r\n")
        head = conn.recv(65536)
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
        conn.sendall(REQUEST)  # the connection is still usable
        answer, _ = read_answer(conn)
        assert answer.endswith(BODY)


def test_a_client_sending_its_next_request_at_once_does_not_starve_others(
    server: tuple[str, int],
) -> None:
    """200 pipelined requests on one connection (~0.2 s of work) are all readable at once;
    without a yield between them, a request on a second connection would wait for all."""
    with (
        socket.create_connection(server, timeout=10) as busy,
        socket.create_connection(server, timeout=10) as other,
    ):
        busy.sendall(REQUEST * 200)
        time.sleep(0.02)
        other.sendall(REQUEST)
        read_answer(other)
        busy.settimeout(0)
        answered, pending = 0, b""
        try:
            while True:
                pending += busy.recv(1 << 20)
        except BlockingIOError:
            pass
        answered = pending.count(b"HTTP/1.1 200")
        assert answered < 150, f"{answered} of the busy connection's 200 answers came first"


def test_an_idle_keepalive_connection_is_closed_after_keepalive_seconds(
    server: tuple[str, int],
) -> None:
    with socket.create_connection(server, timeout=10) as conn:
        conn.sendall(REQUEST)
        read_answer(conn)
        started = time.monotonic()
        assert conn.recv(1) == b""  # closed by the server
        assert 0.5 < time.monotonic() - started < 5


def exchange(server: tuple[str, int], request: bytes) -> tuple[bytes, bytes]:
    """The status line and the body of the answer to one request."""
    with socket.create_connection(server, timeout=5) as conn:
        conn.sendall(request)
        answer, _ = read_answer(conn)
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_header_fields_reach_the_environ_as_pywsgi_puts_them(server: tuple[str, int]) -> None:
    status, body = exchange(
        server,
        b"POST /environ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"X-Twice: 1\r\nx-twice: 2\r\nX_Spoof: no\r\nX-Folded: a\r\n b\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    assert status == b"HTTP/1.1 200 OK"
    echoed = json.loads(body)
    assert echoed["body"] == "abcde"
    assert echoed["headers"] == {
        "HTTP_HOST": "test",
        "CONTENT_TYPE": "application/json",
        "HTTP_X_TWICE": "1,2",
        "HTTP_X_FOLDED": "a b",
        "HTTP_TRANSFER_ENCODING": "chunked",
    }


def test_a_body_is_read_by_its_content_length(server: tuple[str, int]) -> None:
    _, body = exchange(server, b"POST /environ HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz")
    assert json.loads(body) == {"headers": {"CONTENT_LENGTH": "3"}, "body": "xyz"}


@pytest.mark.parametrize(
    "fields",
    [
        b"".join(b"X-%d: v\r\n" % n for n in range(101)),
        b"X-Long: " + b"v" * 70000 + b"\r\n",
        b"no colon\r\n",
    ],
    ids=["101 fields", "a 70 KB line", "no field"],
)
def test_headers_past_the_limits_are_a_400(server: tuple[str, int], fields: bytes) -> None:
    with socket.create_connection(server, timeout=5) as conn:
        conn.sendall(b"GET /environ HTTP/1.1\r\n" + fields + b"\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 400")


def test_answers_carry_the_current_date(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as conn:
        conn.sendall(REQUEST)
        answer, _ = read_answer(conn)
    dates = [line[6:] for line in answer.split(b"\r\n") if line.startswith(b"Date: ")]
    assert len(dates) == 1
    sent = email.utils.parsedate_to_datetime(dates[0].decode()).timestamp()
    assert abs(sent - time.time()) < 5
