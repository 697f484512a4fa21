"""OOM kills as kept facts: detection on pod objects, the codec, bounds and merge."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.history import recordset
from runner_sizer.history.ooms import (
    DEFAULT_MAX_BYTES,
    OomRecord,
    bound,
    from_data,
    merge,
    to_data,
)
from runner_sizer.options import OptionError
from runner_sizer.recorder import settings as recorder
from runner_sizer.recorder.ooms import oom_of
from tests.support.ended_pods import FAILED, OOM_KILLED, SUSPECTED, build_ended

GIB = 2**30
FINISHED = "2026-11-26T10:05:00Z"
FINISHED_UNIX = 1795687500.0
NOW = 1795690000.0


def ended_pod(ending: dict[str, Any], job: RunnerJob | None = None) -> dict[str, Any]:
    pod = runner_pod(job or RunnerJob())
    pod["metadata"] |= {"namespace": "ci", "name": "runner-x", "uid": "0b1c-uid"}
    pod["status"] = build_ended(ending, FINISHED)
    return pod


def record(uid: str, at: float, certain: bool = True) -> OomRecord:
    return OomRecord(
        "1000", "acme", "ml-pipeline", "main", "build", uid, at, 4 * GIB, None, certain
    )


# -- detection ------------------------------------------------------------------


def test_an_oom_killed_build_container_is_a_certain_record() -> None:
    assert oom_of(ended_pod(OOM_KILLED), (), NOW) == OomRecord(
        project_id="1000",
        org="acme",
        repo="ml-pipeline",
        ref="main",
        job="build",
        pod_uid="0b1c-uid",
        at=FINISHED_UNIX,
        memory_limit=4 * GIB,
        memory_request=2 * GIB,
        certain=True,
    )


def test_exit_137_without_oom_killed_is_suspected() -> None:
    found = oom_of(ended_pod(SUSPECTED), (), NOW)
    assert found is not None and not found.certain


@pytest.mark.parametrize(
    "status",
    [
        build_ended(FAILED, FINISHED),
        {"containerStatuses": [{"name": "build", "state": {"running": {}}}]},
        {"containerStatuses": [{"name": "helper", "state": {"terminated": OOM_KILLED}}]},
        {"containerStatuses": "garbage"},
        {},
    ],
)
def test_anything_else_is_no_record(status: dict[str, Any]) -> None:
    pod = ended_pod(OOM_KILLED)
    pod["status"] = status
    assert oom_of(pod, (), NOW) is None


def test_only_watched_runner_pods_with_an_identity_and_a_uid() -> None:
    assert oom_of(ended_pod(OOM_KILLED), ("other",), NOW) is None
    impostor = ended_pod(OOM_KILLED)
    impostor["metadata"]["labels"] = {"pod": "web"}
    impostor["metadata"]["annotations"] = {}
    assert oom_of(impostor, (), NOW) is None
    no_uid = ended_pod(OOM_KILLED)
    del no_uid["metadata"]["uid"]
    assert oom_of(no_uid, (), NOW) is None


def test_missing_or_unreadable_memory_is_none_and_a_missing_finish_is_now() -> None:
    pod = ended_pod(OOM_KILLED)
    build = pod["spec"]["containers"][0]
    build["resources"] = {"requests": {"memory": "lots"}}
    del pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    found = oom_of(pod, (), NOW)
    assert found is not None
    assert (found.memory_limit, found.memory_request, found.at) == (None, None, NOW)


def test_a_restarted_container_shows_its_kill_in_last_state() -> None:
    pod = ended_pod(OOM_KILLED)
    status = pod["status"]["containerStatuses"][0]
    status["lastState"], status["state"] = status["state"], {"running": {}}
    assert oom_of(pod, (), NOW) is not None


# -- codec ----------------------------------------------------------------------


def test_records_round_trip() -> None:
    records = [
        record("a", 100.0),
        replace(record("b", 50.5, certain=False), memory_limit=None, memory_request=1.5),
        replace(record("c", 70.0), job="tést / ünïcode\nline\u2028sep", ref="feature/x y"),
    ]
    data = to_data(records)
    assert from_data(data) == sorted(records, key=lambda r: r.at)
    # As the record set stores them: one record a line.
    assert from_data(recordset.decode(recordset.encode(data))) == from_data(data)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (
            "bad key!",
            json.dumps({"p": "1", "o": "a", "r": "b", "ref": "m", "j": "j", "at": 1, "c": True}),
        ),
        ("k", "not json"),
        ("k", "[1, 2]"),
        ("k", json.dumps({"p": "1", "o": "a", "r": "b", "ref": "m", "j": "j", "c": True})),
        ("k", json.dumps({"p": 1, "o": "a", "r": "b", "ref": "m", "j": "j", "at": 1, "c": True})),
        (
            "k",
            json.dumps({"p": "1", "o": "a", "r": "b", "ref": "m", "j": "j", "at": 1, "c": "yes"}),
        ),
        (
            "k",
            json.dumps({"p": "1", "o": "a", "r": "b", "ref": "m", "j": "j", "at": -1, "c": True}),
        ),
        (
            "k",
            json.dumps(
                {
                    "p": "1",
                    "o": "a",
                    "r": "b",
                    "ref": "m",
                    "j": "j",
                    "at": 1,
                    "lim": "4Gi",
                    "c": True,
                }
            ),
        ),
        ("k", '{"p":"1","o":"a","r":"b","ref":"m","j":"j","at":1,"lim":NaN,"c":true}'),
    ],
)
def test_malformed_entries_are_skipped(key: str, value: str) -> None:
    good = to_data([record("good", 1.0)])
    assert from_data({**good, key: value}) == [record("good", 1.0)]


def test_unknown_fields_are_ignored() -> None:
    data = to_data([record("a", 1.0)])
    data["a"] = data["a"][:-1] + ',"new":1}'
    assert from_data(data) == [record("a", 1.0)]


# -- bounds and merge -------------------------------------------------------------


def test_the_window_then_the_cap_evict_the_oldest_first() -> None:
    records = [record(f"u{i}", float(i)) for i in range(10)]
    kept = bound(reversed(records), now=12.0, window=10.0, max_records=5)
    assert [r.pod_uid for r in kept.evicted] == ["u0", "u1", "u2", "u3", "u4"]
    assert [r.pod_uid for r in kept.kept] == ["u5", "u6", "u7", "u8", "u9"]


def test_the_byte_bound_holds() -> None:
    records = [record(f"u{i:05}", float(i)) for i in range(20000)]
    kept = bound(records, now=20000.0, window=1e9, max_records=10**6)
    data = to_data(kept.kept)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    assert size <= DEFAULT_MAX_BYTES < size + 200
    assert kept.evicted == records[: len(kept.evicted)], "the oldest went"


def test_merge_is_the_union_by_pod_uid() -> None:
    ours = [record("a", 1.0), record("b", 2.0, certain=False)]
    theirs = [record("b", 2.0), record("c", 3.0)]
    assert [(r.pod_uid, r.certain) for r in merge(ours, theirs)] == [
        ("a", True),
        ("b", False),
        ("c", True),
    ]


# -- settings ---------------------------------------------------------------------


def test_oom_settings_defaults_flags_and_env() -> None:
    defaults = recorder.load_settings([], {})
    assert (defaults.oom_configmap, defaults.oom_window, defaults.oom_max_records) == (
        "runner-sizer-ooms",
        14 * 86400,
        5000,
    )
    env = {"RECORDER_OOM_WINDOW": "36h", "RECORDER_OOM_CONFIGMAP": "rs-ooms"}
    chosen = recorder.load_settings(["--oom-max-records=10"], env)
    assert (chosen.oom_configmap, chosen.oom_window, chosen.oom_max_records) == (
        "rs-ooms",
        36 * 3600,
        10,
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--oom-window=soon"], "--oom-window (RECORDER_OOM_WINDOW): 'soon' is not a duration"),
        (["--oom-max-records=0"], "--oom-max-records (RECORDER_OOM_MAX_RECORDS)"),
        (["--oom-configmap=h", "--configmap-name=h"], "--oom-configmap (RECORDER_OOM_CONFIGMAP)"),
    ],
)
def test_bad_oom_settings_are_named(argv: list[str], named: str) -> None:
    with pytest.raises(OptionError) as caught:
        recorder.load_settings(argv, {})
    assert str(caught.value).startswith(named)
