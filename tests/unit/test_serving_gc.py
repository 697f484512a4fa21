"""A ready worker's long-lived objects are left out of full collections."""

from __future__ import annotations

import gc

from runner_sizer.serving import freeze_when_ready


def test_what_is_alive_once_ready_is_frozen_and_not_before() -> None:
    answers = ["history ConfigMap not loaded yet", "waiting for first list", ""]
    asked: list[str] = []

    def problem() -> str:
        asked.append(answers[len(asked)])
        return asked[-1]

    long_lived = [{"key": ("node-a",)} for _ in range(100)]
    try:
        freeze_when_ready(problem, poll_seconds=0.001)
        assert asked == answers, "asked until ready, then no more"
        assert gc.get_freeze_count() >= len(long_lived)
        assert not any(long_lived[0] is o for o in gc.get_objects()), "left out of collections"
    finally:
        gc.unfreeze()
