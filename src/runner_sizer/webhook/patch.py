"""JSON Patch (RFC 6902) helpers."""

from __future__ import annotations


def pointer(*tokens: str | int) -> str:
    """A JSON Pointer (RFC 6901): '~' → '~0', '/' → '~1'."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)
