"""The keyed record set's layout: head, delta, shards, compaction and moves between layouts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner_sizer.history.recordset import (
    MAX_SHARDS,
    RECORDS_KEY,
    Layout,
    Stored,
    decode,
    difference,
    encode,
    every_name,
    head_data,
    overlay,
    parse_layout,
    partition,
    plan,
    read_head,
    records_bytes,
    shard_of,
)
from runner_sizer.history.recordset_view import RecordSetCopy

BASE = "h"


def records(count: int, tag: str = "v") -> dict[str, str]:
    return {f"runner-{i:05d}-project-{i}": f"node-{i % 7}@{tag}{i}" for i in range(count)}


def apply(stored: Stored, desired: dict[str, str], shards: int, compact_after: int) -> Stored:
    """What a reader sees after every write of the plan (in its order)."""
    step = plan(BASE, stored, difference(stored.records(), desired), shards, compact_after)
    written = {**stored.shards, **step.shards}
    kept = {n: r for n, r in written.items() if n not in step.deletions}
    return Stored(step.layout, step.delta, {n: kept.get(n, {}) for n in step.layout.names(BASE)})


def test_records_round_trip_through_text() -> None:
    data = {"b64.a2V5": "node-a@1,node-b@2", "plain-key": "x y z"}
    assert decode(encode(data)) == data
    assert decode("no-entry\n\n good\n") == {"no-entry": ""}, "an empty key is skipped"
    assert decode(encode({"k": "a\u2028b\x85c"})) == {"k": "a\u2028b\x85c"}, "only \\n ends a line"
    assert records_bytes({"k": "v"}) == len("k v\n") + 0


def test_layout_round_trips_and_bad_layouts_read_as_none() -> None:
    layout = Layout(16, "b", 7)
    assert parse_layout(layout.format()) == layout
    for text in ("", "shards=0 bank=a", f"shards={MAX_SHARDS + 1} bank=a", "shards=2 bank=z"):
        assert parse_layout(text) is None, text
    assert layout.names(BASE)[:2] == ["h-b0", "h-b1"]
    assert len(every_name(BASE)) == 1 + 2 * MAX_SHARDS


def test_a_head_without_a_layout_is_a_single_configmap_of_records() -> None:
    assert read_head({"k1": "node-a@1", "k2": ""}) == (None, {"k1": "node-a@1"})
    layout, delta = read_head(head_data(Layout(2, "a"), {"k": "v", "gone": ""}))
    assert layout == Layout(2, "a")
    assert delta == {"k": "v", "gone": ""}


def test_the_delta_overrides_the_shards_and_empty_entries_delete() -> None:
    base = {"a": "1", "b": "2"}
    assert overlay(base, {"a": "3", "b": "", "c": "4"}) == {"a": "3", "c": "4"}
    assert difference(base, {"a": "3", "c": "4"}) == {"a": "3", "b": "", "c": "4"}
    assert overlay(base, difference(base, {"c": "4"})) == {"c": "4"}


def test_partition_is_stable_and_complete() -> None:
    data = records(500)
    parts = partition(data, 8)
    assert sum(len(p) for p in parts) == 500
    assert all(shard_of(k, 8) == i for i, part in enumerate(parts) for k in part)
    assert min(len(p) for p in parts) > 30, "keys spread over every shard"


def test_small_changes_rewrite_only_the_head() -> None:
    stored = apply(Stored(), records(100), 4, 10_000)
    changed = {**records(100), "runner-00001-project-1": "node-x@9", "new": "node-y@1"}
    step = plan(BASE, stored, difference(stored.records(), changed), 4, 10_000)
    assert step.shards == {}
    assert step.deletions == []
    assert step.delta == {"runner-00001-project-1": "node-x@9", "new": "node-y@1"}
    assert step.layout == stored.layout


def test_a_full_delta_compacts_only_the_shards_that_differ() -> None:
    stored = apply(Stored(), records(100), 4, 10_000)
    assert stored.layout == Layout(4, "a", 1)
    key = "runner-00001-project-1"
    step = plan(BASE, stored, difference(stored.records(), {**records(100), key: "node-x@9"}), 4, 0)
    assert list(step.shards) == [f"h-a{shard_of(key, 4)}"]
    assert step.delta == {}
    assert step.layout == Layout(4, "a", 2), "a compaction bumps the generation"


def test_a_delta_past_an_eighth_of_the_shards_compacts() -> None:
    stored = apply(Stored(), records(80), 4, 10_000)
    eighth = records_bytes(records(80)) // 8

    def changed(count: int) -> dict[str, str]:
        return {**records(80), **{f"runner-{i:05d}-project-{i}": "node-x@9" for i in range(count)}}

    fits = max(n for n in range(80) if records_bytes(difference(records(80), changed(n))) <= eighth)
    assert not plan(BASE, stored, difference(stored.records(), changed(fits)), 4, 10_000).shards
    assert plan(BASE, stored, difference(stored.records(), changed(fits + 1)), 4, 10_000).shards, (
        "far below compact_after"
    )


def test_moves_between_layouts_go_to_the_other_bank_and_delete_the_old_one() -> None:
    single = Stored(None, records(50))
    step = plan(BASE, single, difference(single.records(), records(50)), 4, 10_000)
    assert step.layout == Layout(4, "a", 1)
    assert set(step.shards) == set(Layout(4, "a").names(BASE)), "every shard, even empty ones"
    assert step.deletions == []
    sharded = apply(single, records(50), 4, 10_000)
    step = plan(BASE, sharded, difference(sharded.records(), records(50)), 8, 10_000)
    assert step.layout == Layout(8, "b", 2)
    assert step.deletions == Layout(4, "a").names(BASE)


@pytest.mark.parametrize(
    "shard_counts", [(1, 4), (4, 1), (4, 4), (3, 32, 2)], ids=lambda c: "->".join(map(str, c))
)
def test_no_record_is_lost_at_any_step_of_any_move(shard_counts: tuple[int, ...]) -> None:
    """After each write of each plan, a reader (or a restarted writer) sees every stored record."""
    desired = records(300)
    stored = Stored(None, dict(desired))
    for shards in shard_counts:
        before = stored.records()
        desired = {**desired, "runner-00001-project-1": f"newer@{shards}", f"new-{shards}": "n@1"}
        step = plan(BASE, stored, difference(stored.records(), desired), shards, compact_after=0)
        shards_now = dict(stored.shards)
        for name, part in step.shards.items():  # a crash after any of these writes
            shards_now[name] = part
            seen = Stored(stored.layout, stored.delta, _named(stored, shards_now)).records()
            assert all(seen.get(k) in (v, desired[k]) for k, v in before.items())
        stored = apply(stored, desired, shards, compact_after=0)
        assert stored.records() == desired


def _named(stored: Stored, shards: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The shards a reader of `stored`'s head reads."""
    names = stored.layout.names(BASE) if stored.layout else []
    return {name: shards.get(name, {}) for name in names}


def test_a_reader_follows_head_and_shards_and_moves_only_when_complete() -> None:
    copy = RecordSetCopy(BASE)
    assert copy.head({"k1": "node-a@1"}) == {"k1"}, "a single ConfigMap: its items are records"
    assert copy.entry("k1") == "node-a@1"
    desired = {"k1": "node-b@2", "k2": "node-c@3"}
    moved = apply(Stored(None, {"k1": "node-a@1"}), desired, 2, 10_000)
    assert moved.layout is not None
    assert copy.head(head_data(moved.layout, {})) == set()
    assert copy.wanted() == moved.layout.names(BASE)
    assert not copy.complete()
    assert copy.entry("k1") == "node-a@1", "the old copy serves until every shard is seen"
    first, second = moved.layout.names(BASE)
    assert copy.shard(first, {RECORDS_KEY: encode(moved.shards[first])}) == set()
    assert copy.shard(second, {RECORDS_KEY: encode(moved.shards[second])}) is None
    assert copy.complete()
    assert copy.records() == desired
    assert copy.head(head_data(moved.layout, {"k2": "", "k3": "node-d@4"})) == {"k2", "k3"}
    assert (copy.entry("k2"), copy.entry("k3")) == (None, "node-d@4")
    shard = f"{BASE}-a{shard_of('k1', 2)}"
    assert copy.shard(shard, {RECORDS_KEY: encode({"k1": "node-e@5"})}) == {"k1"}
    assert copy.shard("h-b0", {RECORDS_KEY: "x y\n"}) == set(), "a bank no head names"
    assert copy.head(None) is None, "a deleted head: no records"
    assert copy.records() == {}


DELTAS = st.lists(
    st.dictionaries(
        st.sampled_from([f"k{i}" for i in range(8)]),
        st.sampled_from(["", "node-a@1", "node-b@2", "node-a@1,node-b@2"]),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(deltas=DELTAS)
def test_a_reader_parses_only_the_delta_lines_that_changed_and_sees_what_a_full_read_sees(
    deltas: list[dict[str, str]],
) -> None:
    layout = Layout(1, "a", 1)
    base = {"k0": "node-c@3", "k1": "node-c@3"}
    copy = RecordSetCopy(BASE)
    copy.head(head_data(layout, {}))
    copy.shard(layout.names(BASE)[0], {RECORDS_KEY: encode(base)})
    previous: dict[str, str] = {}
    for delta in deltas:
        changed = copy.head(head_data(layout, delta))
        assert changed == difference(previous, delta).keys() | difference(delta, previous).keys()
        assert copy.records() == overlay(base, delta)
        assert all(copy.entry(k) == overlay(base, delta).get(k) for k in [*base, *delta])
        previous = delta
