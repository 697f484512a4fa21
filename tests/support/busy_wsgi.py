"""A WSGI app for server tests: each answer costs about a millisecond of CPU."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"answer":"' + b"x" * 1500 + b'"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    until = time.perf_counter() + 0.001
    while time.perf_counter() < until:
        pass
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    )
    return () if environ["REQUEST_METHOD"] == "HEAD" else (BODY,)
