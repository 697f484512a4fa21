"""Request header fields read without the email package (runner_sizer.request_headers)."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from runner_sizer.request_headers import MAX_FIELDS, environ_items, read_headers


def headers_of(raw: bytes) -> tuple[list[tuple[str, str]], str]:
    stream = io.BytesIO(raw)
    headers = read_headers(stream)
    return headers.fields, headers.status


def test_fields_in_order_up_to_the_empty_line() -> None:
    stream = io.BytesIO(b"Host: a\r\nContent-Length:  12 \r\nX-A: 1\r\nX-A: 2\r\n\r\nbody")
    headers = read_headers(stream)
    assert headers.fields == [("Host", "a"), ("Content-Length", "12"), ("X-A", "1"), ("X-A", "2")]
    assert headers.status == ""
    assert stream.read() == b"body"  # the body is left to read


def test_get_is_the_first_field_of_a_name_in_any_case() -> None:
    headers = read_headers(io.BytesIO(b"content-TYPE: a/b\r\nX-A: 1\r\nx-a: 2\r\n\r\n"))
    assert headers.get("Content-Type") == headers.typeheader == "a/b"
    assert headers.get("X-A") == "1"
    assert headers.get("missing", "default") == "default"


def test_delete_removes_every_field_of_the_name() -> None:
    headers = read_headers(io.BytesIO(b"Content-Length: 3\r\nA: 1\r\ncontent-length: 4\r\n\r\n"))
    del headers["content-length"]
    assert headers.fields == [("A", "1")]
    assert headers.get("Content-Length") is None


def test_a_folded_line_continues_its_field() -> None:
    assert headers_of(b"X-Long: one\r\n  two\r\n\tthree\r\n\r\n")[0] == [
        ("X-Long", "one two three")
    ]


def test_bare_newlines_and_the_end_of_the_stream_end_the_fields() -> None:
    assert headers_of(b"A: 1\nB: 2\n\n") == ([("A", "1"), ("B", "2")], "")
    assert headers_of(b"A: 1\r\n") == ([("A", "1")], "")


def test_limits_and_lines_that_are_no_field_are_problems() -> None:
    too_many = b"".join(b"X-%d: v\r\n" % n for n in range(MAX_FIELDS + 1)) + b"\r\n"
    assert "more than 100" in headers_of(too_many)[1]
    assert headers_of(b"".join(b"X-%d: v\r\n" % n for n in range(MAX_FIELDS)) + b"\r\n")[1] == ""
    assert "too long" in headers_of(b"X: " + b"v" * 70000 + b"\r\n\r\n")[1]
    assert "not a header field" in headers_of(b"no colon here\r\n\r\n")[1]
    assert "not a header field" in headers_of(b"Host : a\r\n\r\n")[1]
    assert "not a header field" in headers_of(b": a\r\n\r\n")[1]


def test_environ_items_as_pywsgi_makes_them() -> None:
    headers = read_headers(
        io.BytesIO(b"Content-Type: a/b\r\nContent-Length: 2\r\nX_Spoof: 1\r\nX-Real: 2\r\n\r\n")
    )
    assert environ_items(headers) == [("HTTP_X_REAL", "2")]


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True),
            st.from_regex(r"[!-~]([ -~]{0,40}[!-~])?", fullmatch=True),
        ),
        max_size=MAX_FIELDS,
    )
)
def test_any_valid_fields_read_back_as_written(fields: list[tuple[str, str]]) -> None:
    raw = b"".join(f"{name}: {value}\r\n".encode() for name, value in fields) + b"\r\n"
    assert headers_of(raw) == (fields, "")
