"""A WSGI app for server tests: each answer costs about a millisecond of CPU; `/environ`
answers with the request's CGI header variables and body instead."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"answer":"' + b"x" * 1500 + b'"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/environ":
        body = json.dumps(
            {
                "headers": {
                    key: value
                    for key, value in environ.items()
                    if key.startswith(("HTTP_", "CONTENT_"))
                },
                "body": environ["wsgi.input"].read().decode(),
            }
        ).encode()
    else:
        body = BODY
        until = time.perf_counter() + 0.001
        while time.perf_counter() < until:
            pass
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return () if environ["REQUEST_METHOD"] == "HEAD" else (body,)
