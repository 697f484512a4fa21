"""The raw sizing path is split into segments before each is decoded."""

from __future__ import annotations

import pytest

from runner_sizer.identity import JobIdentity
from runner_sizer.recommender.paths import PathError, is_sizing_target, raw_target, sizing_segments

PREFIX = "/api/v1/sizing/repo/"


@pytest.mark.parametrize(
    ("org", "repo", "ref", "job"),
    [
        ("acme", "app", "main", "build"),
        ("acme", "app", "feature/x", "unit tests"),
        ("acme", "app", ".", ".."),
        ("acme", "app", "feature/ünï côde", "a/b?c#d%e"),
        ("acme", "app", "../..", "./x"),
        ("acme", "app", "v1.0+build", "job 1/2"),
    ],
)
def test_what_the_webhook_sends_comes_back_intact(org: str, repo: str, ref: str, job: str) -> None:
    path = JobIdentity(org, repo, ref, job, run_id="1").receiver_path()
    assert sizing_segments(f"{PREFIX}{path}?project_id=7") == (org, repo, ref, job)


def test_absolute_form_targets_are_read_too() -> None:
    assert sizing_segments(f"http://recommender:8080{PREFIX}a/b/c/d") == ("a", "b", "c", "d")


@pytest.mark.parametrize(
    "target",
    [
        f"{PREFIX}a/b/c",
        f"{PREFIX}a/b/c/d/e",
        f"{PREFIX}a/b/c/d/",
        f"{PREFIX}a/b//d",
        f"{PREFIX}a/b/../d",
        f"{PREFIX}a/b/./d",
        f"{PREFIX}a/b/%FF/d",
        f"{PREFIX}a/b/c/\u0100",
        "/api/v1/token",
    ],
)
def test_anything_else_is_refused(target: str) -> None:
    with pytest.raises(PathError):
        sizing_segments(target)


def test_the_raw_target_is_preferred_to_the_decoded_path() -> None:
    assert raw_target({"RAW_URI": "/a%2Fb", "PATH_INFO": "/a/b"}) == "/a%2Fb"
    assert raw_target({"REQUEST_URI": "/a%2Fb", "PATH_INFO": "/a/b"}) == "/a%2Fb"
    assert is_sizing_target(f"{PREFIX}a?x=1") and not is_sizing_target("/api/v1/sizing/repo")
