"""The sizing path of the receiver contract, split before it is decoded.

The webhook percent-encodes every segment (`/` as %2F, a `.` or `..` segment as
%2E or %2E%2E), so the raw request target must be split on `/` first and each
segment decoded after; decoding first would move a `/` of a ref into the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

SIZING_PREFIX = "/api/v1/sizing/repo/"


class PathError(ValueError):
    """A sizing path that cannot name one job; the message says why."""


def raw_target(environ: Mapping[str, Any]) -> str:
    """The request target as the client sent it: gunicorn's RAW_URI, werkzeug's REQUEST_URI."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    return str(raw)


def _path(target: str) -> str:
    if not target.startswith("/"):  # absolute form: http://host/path
        return urlsplit(target).path
    return target.split("?", 1)[0].split("#", 1)[0]


def is_sizing_target(target: str) -> bool:
    return _path(target).startswith(SIZING_PREFIX)


def _decode(segment: str) -> str:
    if segment in (".", ".."):
        raise PathError("a '.' or '..' segment must be percent-encoded (%2E)")
    try:
        # WSGI carries the raw bytes as latin-1 text.
        decoded = unquote_to_bytes(segment.encode("latin-1")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise PathError("a segment is not percent-encoded UTF-8") from None
    if not decoded:
        raise PathError("empty segment")
    return decoded


def sizing_segments(target: str) -> tuple[str, str, str, str]:
    """(org, repo, workflow, job) of a raw sizing target; PathError for anything else."""
    path = _path(target)
    if not path.startswith(SIZING_PREFIX):
        raise PathError("not a sizing path")
    raw = path[len(SIZING_PREFIX) :].split("/")
    if len(raw) != 4:
        raise PathError("expected /api/v1/sizing/repo/{org}/{repo}/{workflow}/{job}")
    org, repo, workflow, job = (_decode(segment) for segment in raw)
    return org, repo, workflow, job
