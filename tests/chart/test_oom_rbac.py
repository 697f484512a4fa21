"""The OOM records' grants: their head and exactly the shards OOM_SHARDS can use, nothing more."""

from __future__ import annotations

from typing import Any

from runner_sizer.history.oom_store import OOM_SHARDS
from runner_sizer.history.recordset import (
    BANKS,
    DEFAULT_COMPACT_AFTER,
    Layout,
    Stored,
    difference,
    plan,
    stored_after,
)
from tests.chart.conftest import one, render

HEAD = "rs-runner-sizer-ooms"
# Their shard count never changes, so they stay in the first bank (checked below).
OOM_SHARD_NAMES = Layout(OOM_SHARDS, BANKS[0]).names(HEAD)


def records(count: int) -> dict[str, str]:
    return {f"uid-{i:05d}": f'{{"at":{i},"job":"build-{i % 13}"}}' for i in range(count)}


def test_the_oom_records_only_ever_use_the_first_banks_shards() -> None:
    """From no head or a single-ConfigMap head (before shards), through flushes and compactions."""
    for start in (Stored(), Stored(None, records(300))):
        stored, used, deleted = start, set[str](), list[str]()
        for count in [*range(0, 3000, 150), 40, 2500]:
            step = plan(
                HEAD,
                stored,
                difference(stored.records(), records(count)),
                OOM_SHARDS,
                DEFAULT_COMPACT_AFTER,
            )
            used |= {*step.layout.names(HEAD), *step.shards}
            deleted += step.deletions
            stored = stored_after(stored, step, HEAD)
        assert stored.layout is not None and stored.layout.generation > 2, "it compacted"
        assert used == set(OOM_SHARD_NAMES)
        assert deleted == []


def oom_names(role: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Each name of the OOM records a Role grants, with the rule's verbs."""
    return [
        (name, rule["verbs"])
        for rule in role["rules"]
        for name in rule.get("resourceNames", [])
        if name.startswith(HEAD)
    ]


def test_the_recorder_and_the_recommender_are_granted_exactly_those_names(values: Any) -> None:
    manifests = render(values("recommender"))
    recorder = oom_names(one(manifests, "Role", "rs-recorder"))
    assert recorder == [(name, ["get", "update"]) for name in [HEAD, *OOM_SHARD_NAMES]]
    recommender = oom_names(one(manifests, "Role", "rs-recommender"))
    assert recommender == [(name, ["get"]) for name in [HEAD, *OOM_SHARD_NAMES]]
