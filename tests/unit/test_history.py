"""History ledger, bindings and recorder settings: pure logic."""

from __future__ import annotations

import datetime
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from runner_sizer.history.keys import HistoryKey, history_key, to_configmap_key
from runner_sizer.history.ledger import (
    EntrySizes,
    History,
    data_bytes,
    drop_nodes,
    evict,
    evict_surplus,
    from_data,
    merge,
    record,
    timestamp,
    to_data,
)
from runner_sizer.history.placements import Placement
from runner_sizer.history.recordset import overlay
from runner_sizer.kube.configmap import Change, Update
from runner_sizer.options import OptionError
from runner_sizer.recorder.bindings import Binding, binding_of
from runner_sizer.recorder.settings import load_settings
from runner_sizer.recorder.store import ConfigMapStore
from runner_sizer.recorder.tombstones import Tombstones
from runner_sizer.webhook.history_view import HistoryView
from runner_sizer.webhook.metrics import build_metrics

NOW = datetime.datetime(2026, 11, 24, 1, 2, 3, 456000, tzinfo=datetime.UTC)


def at(second: int) -> int:
    return timestamp(NOW + datetime.timedelta(seconds=second))


def test_timestamps_are_unix_milliseconds() -> None:
    assert timestamp("2026-11-24T01:02:03Z") == 1_795_482_123_000
    assert timestamp(NOW) == 1_795_482_123_456
    assert timestamp("yesterday") == 0


def test_record_keeps_distinct_nodes_most_recent_first() -> None:
    history: dict[str, list[Placement]] = {}
    assert record(history, "k", "a", at(1), 3)
    assert record(history, "k", "b", at(2), 3)
    assert record(history, "k", "a", at(3), 3)
    assert not record(history, "k", "a", at(3), 3), "same binding twice changes nothing"
    assert record(history, "k", "c", at(4), 3)
    assert record(history, "k", "d", at(5), 3)
    assert [p.node for p in history["k"]] == ["d", "c", "a"]
    assert not record(history, "k", "b", at(0), 3), "older than everything kept"


def test_merge_loses_nothing_from_either_writer() -> None:
    ours = {"x": [Placement("a", at(5))], "y": [Placement("b", at(1))]}
    theirs = {"x": [Placement("c", at(6)), Placement("a", at(2))], "z": [Placement("d", at(3))]}
    merged = merge(ours, theirs, 3)
    assert merged == {
        "x": [Placement("c", at(6)), Placement("a", at(5))],
        "y": [Placement("b", at(1))],
        "z": [Placement("d", at(3))],
    }


def test_drop_nodes_removes_empty_keys() -> None:
    history = {"x": [Placement("a", at(2)), Placement("b", at(1))], "y": [Placement("a", at(1))]}
    assert drop_nodes(history, {"a"}) == ["x", "y"]
    assert history == {"x": [Placement("b", at(1))]}


def test_drop_nodes_keeps_the_list_of_an_entry_without_them() -> None:
    """The store remembers sizes and encodings per list: a new list is a new encoding."""
    untouched = [Placement("b", at(1))]
    history = {"x": [Placement("a", at(2))], "y": untouched}
    assert drop_nodes(history, {"a"}) == ["x"]
    assert history["y"] is untouched


def test_five_thousand_keys_fit_in_a_configmap() -> None:
    history = {
        f"runner-{i:08x}-project-{100000 + i}": [
            Placement(f"ip-10-0-{i % 250}-{n}.ec2.internal", at(i - n)) for n in range(3)
        ]
        for i in range(5000)
    }
    assert evict(history, max_keys=5000) == []
    size = data_bytes(to_data(history))
    assert size < 1024 * 1024, size


def test_eviction_drops_least_recently_used_first() -> None:
    history = {f"k{i}": [Placement("n", at(i))] for i in range(10)}
    history["k0"] = [Placement("n", at(100))]  # used most recently
    evicted = evict(history, max_keys=7)
    assert evicted == ["k1", "k2", "k3"]
    assert "k0" in history and len(history) == 7
    by_bytes = evict(history, max_keys=100, max_bytes=data_bytes(to_data(history)) - 1)
    assert by_bytes == ["k4"]


def test_eviction_by_count_alone_matches_eviction_by_both_bounds() -> None:
    history = {f"k{i}": [Placement("n", at(i))] for i in range(10)}
    copy = {k: list(v) for k, v in history.items()}
    assert evict_surplus(history, 7) == evict(copy, 7) == ["k0", "k1", "k2"]
    assert evict_surplus(history, 7) == []


def project_job(job: str) -> dict[str, object]:
    return {
        "labels": {"project.runner.gitlab.com/id": "42"},
        "annotations": {"job.runner.gitlab.com/name": job},
    }


@pytest.mark.parametrize("job", ["j" * 170, "ü" * 120, "x" * 5000, "sha256." + "0" * 64])
def test_every_history_key_has_a_valid_configmap_key(job: str) -> None:
    key = history_key(HistoryKey.PROJECT_JOB, project_job(job))
    assert key is not None
    stored = to_configmap_key(key)
    assert 0 < len(stored) <= 253 and all(c.isalnum() or c in "-._" for c in stored), stored
    assert to_configmap_key(key) == stored, "the stored form is stable"
    assert from_data(to_data({key: [Placement("n1", at(1))]})) == {key: [Placement("n1", at(1))]}


def test_long_keys_are_hashed_and_distinct() -> None:
    short = history_key(HistoryKey.PROJECT_JOB, project_job("build"))
    assert short == "project-42/build", "keys that fit keep their readable form"
    a = history_key(HistoryKey.PROJECT_JOB, project_job("a" * 300))
    b = history_key(HistoryKey.PROJECT_JOB, project_job("a" * 299 + "b"))
    assert a is not None and b is not None and a != b
    assert a.startswith("sha256.") and a == to_configmap_key(a)


def test_configmap_data_round_trip() -> None:
    history = {
        "project-7/unit tests": [Placement("a", at(1))],
        "plain-key": [Placement("b", at(2))],
    }
    assert from_data(to_data(history)) == history


def pod(
    labels: dict[str, str], node: str | None, scheduled: str | None = None
) -> dict[str, object]:
    conditions = (
        [{"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}]
        if scheduled
        else []
    )
    return {
        "metadata": {"labels": labels, "creationTimestamp": "2026-11-24T00:00:00Z"},
        "spec": {"nodeName": node} if node else {},
        "status": {"conditions": conditions},
    }


def test_binding_of_only_runner_pods_in_the_watched_namespaces() -> None:
    runner = {"pod": "runner-abc-project-7-concurrent-2"}
    impostor = {"pod": "my-app"}
    assert binding_of(pod(impostor, "n1"), HistoryKey.RUNNER_PROJECT, NOW) is None
    in_ci = pod(runner, "n1")
    in_ci["metadata"]["namespace"] = "ci"  # type: ignore[index]
    assert binding_of(in_ci, HistoryKey.RUNNER_PROJECT, NOW, ("ci",)) is not None
    assert binding_of(in_ci, HistoryKey.RUNNER_PROJECT, NOW, ("other",)) is None
    assert binding_of(in_ci, HistoryKey.RUNNER_PROJECT, NOW) is not None, "all namespaces"
    in_ci["spec"] = {"nodeName": ["not", "a", "name"]}
    assert binding_of(in_ci, HistoryKey.RUNNER_PROJECT, NOW) is None


def test_tombstones_are_bounded_and_revivable() -> None:
    tombstones = Tombstones(limit=3)
    tombstones.bury(["a", "b", "c"])
    tombstones.bury(["a", "d"])  # "a" again: now the most recent
    assert tombstones.nodes() == {"c", "a", "d"}
    tombstones.revive({"c", "unknown"})
    assert "c" not in tombstones and "a" in tombstones


def test_binding_of_a_scheduled_runner_pod() -> None:
    labels = {"pod": "runner-abc-project-7-concurrent-2"}
    assert binding_of(pod(labels, None), HistoryKey.RUNNER_PROJECT, NOW) is None
    assert binding_of(pod({}, "n1"), HistoryKey.RUNNER_PROJECT, NOW) is None
    assert binding_of(
        pod(labels, "n1", "2026-11-24T01:00:00Z"), HistoryKey.RUNNER_PROJECT, NOW
    ) == Binding("runner-abc-project-7", "n1", 1_795_482_000_000)
    assert binding_of(pod(labels, "n1"), HistoryKey.RUNNER_PROJECT, NOW) == Binding(
        "runner-abc-project-7", "n1", 1_795_478_400_000
    )


def test_recorder_settings() -> None:
    settings = load_settings(
        ["--namespaces", "b, a,,a", "--flush-interval", "0.5"], {"POD_NAME": "rec-1"}
    )
    assert settings.namespaces == ("a", "b")
    assert settings.identity == "rec-1"
    assert settings.flush_interval == 0.5
    for argv, named in (
        (["--flush-interval", "0"], "--flush-interval"),
        (["--renew-deadline", "20"], "--renew-deadline"),
        (["--max-keys", "x"], "--max-keys"),
        (["--leader-elect", "perhaps"], "--leader-elect"),
    ):
        with pytest.raises(OptionError, match=f"^{named}"):
            load_settings(argv, {})


def test_history_view_follows_configmap_updates() -> None:
    view = HistoryView(lambda: None, "ns", "cm", build_metrics(CollectorRegistry()))  # type: ignore[arg-type, return-value]
    history = {
        "a": [Placement("n1", at(1))],
        "b/c": [Placement("n2", at(2)), Placement("n3", at(1))],
    }
    view._head.on_event("ADDED", {"data": to_data(history)})
    assert (view.nodes("a"), view.nodes("b/c"), view.nodes("x")) == (("n1",), ("n2", "n3"), ())
    history["a"] = [Placement("n4", at(3)), Placement("n1", at(1))]
    del history["b/c"]
    view._head.on_event("MODIFIED", {"data": to_data(history)})
    assert (view.nodes("a"), view.nodes("b/c")) == (("n4", "n1"), ())
    view._head.on_event("DELETED", {})
    assert view.nodes("a") == ()


def test_history_view_finds_hashed_keys() -> None:
    view = HistoryView(lambda: None, "ns", "cm", build_metrics(CollectorRegistry()))  # type: ignore[arg-type, return-value]
    key = history_key(HistoryKey.PROJECT_JOB, project_job("long " * 60))
    assert key is not None
    view._head.on_event("ADDED", {"data": to_data({key: [Placement("n1", at(1))]})})
    assert view.nodes(key) == ("n1",)


def test_entry_sizes_are_the_stored_bytes_kept_as_entries_change() -> None:
    history = {
        "k": [Placement("node-a", at(1)), Placement("node-b", at(2))],
        "b/c": [Placement("n", at(3))],
    }
    sizes = EntrySizes(history)
    assert {k: sizes.of(k) for k in history} == {
        k: data_bytes(to_data({k: v})) for k, v in history.items()
    }
    history["b/c"] = [Placement("longer-node", at(4))]
    sizes.set("b/c", history["b/c"])
    assert sizes.total == data_bytes(to_data(history))
    del history["k"]
    sizes.set("k", None)
    assert sizes.total == data_bytes(to_data(history)) == sizes.of("b/c")


def test_merge_shares_entries_only_one_side_changed() -> None:
    shared = [Placement("a", at(1))]
    ours = {"same": shared, "mine": [Placement("b", at(2))]}
    theirs = {"same": shared, "theirs": [Placement("c", at(3))]}
    merged = merge(ours, theirs, 3)
    assert merged["same"] is shared
    assert merged == {**ours, **theirs}


T = TypeVar("T")


class StoredRecords:
    """RecordSet's update contract over a dict: the change sees what is stored and names
    its edits; `reads` counts what was read again, as after another writer's change."""

    def __init__(self, data: dict[str, str]) -> None:
        self.data = data
        self.reads = 0

    def read(self) -> dict[str, str]:
        self.reads += 1
        return self.data

    def update(self, change: Change[T]) -> Update[T]:
        edits, result = change(self.data)
        self.data = overlay(self.data, edits)
        return Update(result, 1, 0)

    def written_by_another(self, data: dict[str, str]) -> None:
        """Another writer stored `data`: the next update reads it (after its 409)."""
        self.data = data
        self.reads += 1


def test_a_flush_drops_buried_nodes_from_what_another_writer_stored() -> None:
    ours = {"x": [Placement("live", at(3))]}
    theirs = {"x": [Placement("dead", at(2))], "y": [Placement("dead", at(1))]}
    records = StoredRecords(to_data(theirs))
    store = ConfigMapStore(records)  # type: ignore[arg-type]
    result = store.flush(ours, None, {"dead"}, max_nodes=3, max_keys=10, max_bytes=10**6)
    assert result.adopted == {}, "what is stored is what we flushed"
    assert from_data(records.data) == ours


def reference_flush(
    ours: History, theirs: History, forgotten: set[str], max_keys: int, max_bytes: int
) -> History:
    """What a flush stores, merging every key (the design before flushes were incremental)."""
    merged = merge(ours, theirs, 3)
    drop_nodes(merged, forgotten, [k for k, v in merged.items() if ours.get(k) is not v])
    evict(merged, max_keys, max_bytes)
    return merged


NODES = st.sampled_from(["n1", "n2", "n3", "gone"])
STEP = st.one_of(
    st.tuples(st.just("record"), st.integers(0, 12), NODES),
    st.tuples(st.just("flush")),
    st.tuples(st.just("another writer"), st.integers(0, 12), NODES),
    st.tuples(st.just("bury")),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(STEP, max_size=40), max_keys=st.integers(4, 14))
def test_a_flush_of_the_keys_changed_stores_what_merging_every_key_stores(
    steps: list[tuple[Any, ...]], max_keys: int
) -> None:
    """The recorder's way (record, note the key, flush the keys noted, adopt what comes
    back) against a merge of every key at every flush."""
    records = StoredRecords({})
    store = ConfigMapStore(records)  # type: ignore[arg-type]
    ours = store.load()
    changed: set[str] | None = set()
    forgotten: set[str] = set()
    max_bytes = 40 * max_keys
    for clock, step in enumerate(steps):
        if step[0] == "record" and step[2] not in forgotten:
            if record(ours, f"k{step[1]}", step[2], at(clock), 3) and changed is not None:
                changed.add(f"k{step[1]}")
        elif step[0] == "another writer":
            theirs = from_data(records.data)
            record(theirs, f"k{step[1]}", step[2], at(clock), 3)
            records.written_by_another(to_data(theirs))
        elif step[0] == "bury":
            forgotten.add("gone")
            drop_nodes(ours, {"gone"})
            changed = None
        else:
            expected = reference_flush(
                ours, from_data(records.data), forgotten, max_keys, max_bytes
            )
            result = store.flush(
                dict(ours), changed, forgotten, max_nodes=3, max_keys=max_keys, max_bytes=max_bytes
            )
            assert from_data(records.data) == expected
            assert result.data_bytes == data_bytes(records.data)
            for key, entry in result.adopted.items():
                if entry:
                    ours[key] = entry
                else:
                    ours.pop(key, None)
            assert ours == expected
            changed = set()
            evict(ours, max_keys, max_bytes)
