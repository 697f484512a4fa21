"""A request's header fields, read the way pywsgi's handler needs them, without the
email package: `http.client.parse_headers` runs every request's headers through
`email.feedparser`, ~7 % of a webhook worker under load (py-spy, 1,000/s).

The limits are http.client's: at most 100 fields, 64 KiB a line. Past them, or on a
line that is no field, `problem` says why and pywsgi answers 400.
"""

from __future__ import annotations

from typing import BinaryIO

MAX_FIELDS = 100
MAX_LINE = 65536
END = (b"\r\n", b"\n", b"")


class RequestHeaders:
    """What pywsgi reads of `http.client.HTTPMessage`: `get` (the first field of a name,
    any case), `del`, `status` (a problem, or empty), `typeheader`; plus `fields`, every
    (name, value) in order, for the WSGI environ."""

    __slots__ = ("_first", "fields", "status")

    def __init__(self, fields: list[tuple[str, str]], problem: str = "") -> None:
        self.fields = fields
        self.status = problem
        self._first: dict[str, str] = {}
        for name, value in fields:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    getheader = get

    @property
    def typeheader(self) -> str | None:
        return self._first.get("content-type")

    def __delitem__(self, name: str) -> None:
        lowered = name.lower()
        self.fields = [field for field in self.fields if field[0].lower() != lowered]
        self._first.pop(lowered, None)


def read_headers(stream: BinaryIO) -> RequestHeaders:
    """The header fields up to the empty line that ends them. A line that starts with
    a space or a tab continues the field before it (obsolete line folding)."""
    fields: list[tuple[str, str]] = []
    while (line := stream.readline(MAX_LINE + 1)) not in END:
        if len(line) > MAX_LINE:
            return RequestHeaders([], "header line too long")
        text = line.decode("latin-1")
        if text[0] in " \t" and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {text.strip()}")
            continue
        if len(fields) == MAX_FIELDS:
            return RequestHeaders([], f"more than {MAX_FIELDS} header fields")
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            return RequestHeaders([], f"not a header field: {text.strip()[:100]!r}")
        fields.append((name, value.strip()))
    return RequestHeaders(fields)


def environ_items(headers: RequestHeaders) -> list[tuple[str, str]]:
    """The fields as CGI variables (`HTTP_X_NAME`), as pywsgi makes them: names with an
    underscore are dropped (they would pass for the dashed name), and Content-Type and
    Content-Length are the server's to set."""
    items = []
    for name, value in headers.fields:
        if "_" in name:
            continue
        key = name.replace("-", "_").upper()
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            items.append((f"HTTP_{key}", value))
    return items
