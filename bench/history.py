"""`make bench` (history part): what recorder flushes cost the apiserver and each webhook pod.

A local control plane, a history preloaded to KEYS keys (synthetic entries of
realistic size), the real recorder at its default 1 s flush interval, and pods
created already bound to nodes at 100/s by vegeta (cheaper on the shared cores
than a Python client), each another run of a random stored key (random keys: the
worst case for shards; the history keeps its size). The window measured starts
LEAD_SECONDS after the pods' creation does. A namespace-wide watch on the
history's ConfigMaps counts, over the window:

- written: the JSON of each stored object version (what the recorder PUT or
  POSTed: the object without the server's managedFields);
- received: the JSON of each watch event, as a webhook pod receives it (it
  watches exactly these objects).

The baseline is today's single-object design: every flush rewrites the whole
history (`--history-shards=1 --compact-after-bytes=1`: the one shard at every
flush, beside a head of a few bytes). At 50,000 keys a single object cannot
exist (1 MiB), so its figure is the history's size once per flush interval.
The large scenario also runs the real webhook (affinity on, watching the live
history) under vegeta at 500 admissions/s; then, where Go and the anchor are
present, the Go anchor the same way: what this machine's load alone does to a
webhook's latency. Prints one JSON line per scenario.

    python -m bench.history [SECONDS]
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import requests
from prometheus_client import CollectorRegistry

from bench import anchor
from bench.pod_create import post_pods
from bench.proc import cores_while, cpu_ns
from bench.webhook import (
    RECOMMENDED,
    WARMUP_SECONDS,
    Target,
    admissions,
    attack,
    receiver_key,
    sample_reviews,
    summarize,
    vegeta,
    warm,
)
from runner_sizer.devcluster.binaries import ensure_binaries
from runner_sizer.devcluster.cluster import LocalCluster
from runner_sizer.devcluster.receiver_standin import StandinServer, StandinState
from runner_sizer.devcluster.recorder_process import RecorderProcess
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.devcluster.webhook_process import WebhookProcess, running_webhook
from runner_sizer.history.keys import HistoryKey, history_key
from runner_sizer.history.ledger import History, data_bytes, record, to_data
from runner_sizer.history.placements import Placement
from runner_sizer.history.recordset import (
    DEFAULT_COMPACT_AFTER,
    DEFAULT_SHARDS,
    LAYOUT_KEY,
    RECORDS_KEY,
    Stored,
    difference,
    encode,
    head_data,
    plan,
    stored_after,
)
from runner_sizer.history.recordset_store import RecordSet
from runner_sizer.kube.client import JSON, KubeClient
from runner_sizer.kube.informer import ListWatch
from runner_sizer.webhook.history_view import HistoryView
from runner_sizer.webhook.metrics import build_metrics

NAME = "runner-sizer-history"
RATE = 100.0
ADMISSIONS_PER_S = 500
LEAD_SECONDS = 5  # pods are created for this long before the window measured
COMPACT = {"separators": (",", ":")}
SINGLE_OBJECT = ("--history-shards=1", "--compact-after-bytes=1")
LARGE = ("--max-keys=50000", "--max-bytes=9000000")


def synthetic_history(keys: int, now_ms: int) -> History:
    """`keys` entries of three placements, ~160 bytes each stored (the issue's 5,000 ≈ 800 KB)."""
    rng = random.Random(7)  # noqa: S311 - synthetic data
    return {
        f"runner-{rng.getrandbits(32):08x}-project-{rng.randrange(10**6, 10**7)}": [
            Placement(
                f"ip-10-{rng.randrange(256)}-{rng.randrange(256)}-{rng.randrange(256)}.ec2.internal",
                now_ms - rng.randrange(10**9) - slot * 10**8,
            )
            for slot in range(3)
        ]
        for _ in range(keys)
    }


@dataclass
class Traffic:
    """Bytes seen on the history objects' watch while `counting` is set."""

    written: int = 0
    received: int = 0
    events: int = 0
    shard_bytes: int = 0  # written to shards (compactions; the whole object for one shard)
    compactions: int = 0  # head versions naming a new layout generation
    generation: str = ""
    counting: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, kube: KubeClient, namespace: str, prefix: str) -> None:
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        version = kube.get(path)["metadata"]["resourceVersion"]
        while not self.stop.is_set():
            events = kube.watch(path, {"resourceVersion": version}, read_timeout=60)
            with contextlib.suppress(requests.RequestException):  # a quiet watch times out
                for event in events:
                    obj: JSON = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    self._count(event, prefix)
                    if self.stop.is_set():
                        return

    def _count(self, event: JSON, prefix: str) -> None:
        obj: JSON = event.get("object") or {}
        metadata = obj.get("metadata") or {}
        if not self.counting.is_set() or not str(metadata.get("name", "")).startswith(prefix):
            return
        self.events += 1
        self.received += len(json.dumps(event, **COMPACT))  # type: ignore[arg-type]
        if event.get("type") == "DELETED":
            return
        stored = {k: v for k, v in metadata.items() if k != "managedFields"}
        size = len(json.dumps({**obj, "metadata": stored}, **COMPACT))  # type: ignore[arg-type]
        self.written += size
        if metadata["name"] != prefix:
            self.shard_bytes += size
        layout = (obj.get("data") or {}).get(LAYOUT_KEY, "")
        if metadata["name"] == prefix and layout != self.generation:
            self.compactions += bool(self.generation)
            self.generation = layout


def bound_pods(cluster: LocalCluster, keys: list[str], count: int) -> list[dict[str, Any]]:
    """`count` runner pods bound to nodes, each another run of a random stored key
    (`runner-<short>-project-<id>`), so the history keeps its size, and a run changes its
    key's entry."""
    rng = random.Random(11)  # noqa: S311 - synthetic load
    pods = []
    for index in range(count):
        _, short, _, project = rng.choice(keys).split("-")
        job = RunnerJob(runner_short=short, project_id=int(project), services=())
        manifest = runner_pod(job)
        manifest["spec"]["nodeName"] = cluster.node_names[index % len(cluster.node_names)]
        pods.append(manifest)
    return pods


def preload_single(kube: KubeClient, namespace: str, history: History) -> None:
    body = {"metadata": {"name": NAME}, "data": to_data(history)}
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", body)


def preload_sharded(kube: KubeClient, namespace: str, history: History) -> None:
    RecordSet(kube, namespace, NAME).update(lambda _: (to_data(history), None))


@dataclass(frozen=True)
class Scenario:
    name: str
    keys: int
    preload: Callable[[KubeClient, str, History], None]
    recorder_args: tuple[str, ...] = ()
    webhook: bool = False  # the real webhook at ADMISSIONS_PER_S meanwhile
    go_anchor: bool = False  # the Go anchor instead, where it is available


@dataclass
class Admissions:
    """vegeta at ADMISSIONS_PER_S against a webhook, on a thread of its own."""

    target: Target
    seconds: float
    webhook: WebhookProcess | None = None  # runner-sizer, for what it shed
    result: dict[str, Any] = field(default_factory=dict)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """The warm-up (WARMUP_SECONDS), then `seconds` measured."""
        run = partial(
            attack,
            vegeta(),
            self.target,
            sample_reviews(),
            rate=ADMISSIONS_PER_S,
            seconds=int(self.seconds),
            workers=16,
            warmup=WARMUP_SECONDS,
        )
        self._thread = threading.Thread(target=lambda: self.result.update(run()), daemon=True)
        self._thread.start()

    def finish(self, name: str) -> dict[str, Any]:
        """The attack's summary, with what runner-sizer shed."""
        assert self._thread is not None
        self._thread.join()
        summary = summarize(name, self.result)
        if self.webhook is None:
            return summary
        return summary | {"shed": admissions(self.webhook).get("shed", 0.0)}


@contextlib.contextmanager
def webhook_on(cluster: LocalCluster, namespace: str, seconds: float) -> Iterator[Admissions]:
    """The real webhook on the live history, ready and its receiver caches warm."""
    reviews = sample_reviews()
    state = StandinState(recommendations={receiver_key(r): RECOMMENDED for r in reviews})
    standin = StandinServer(state).start()
    try:
        with running_webhook(
            standin.url,
            "--log-level=warning",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--history-namespace={namespace}",
            f"--history-configmap={NAME}",
        ) as webhook:
            webhook.wait_ready(timeout=120)  # the 50,000-key history's first sync
            warm(webhook, reviews)
            yield Admissions(webhook, seconds, webhook)
    finally:
        standin.stop()


@contextlib.contextmanager
def anchor_on(seconds: float) -> Iterator[Admissions]:
    """The Go anchor (no history: its lookups are in-memory maps), for what the machine
    itself does to a webhook's latency in the same scenario."""
    with anchor.running_anchor(sample_reviews(), RECOMMENDED) as endpoint:
        yield Admissions(endpoint, seconds)


def measure(cluster: LocalCluster, scenario: Scenario, seconds: float) -> dict[str, object]:
    # Each scenario has a namespace of its own. Its pods, bound to kubelet-less nodes,
    # would never finish a graceful deletion: they go at once (grace period 0) at the
    # end, so the next scenario's control plane does not carry them.
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    # Deleting thousands of pods on busy cores outlasts the default 10 s.
    kube = replace(KubeClient.from_kubeconfig(str(cluster.kubeconfig)), timeout=120.0)
    kube.post("/api/v1/namespaces", {"metadata": {"name": namespace}})
    history = synthetic_history(scenario.keys, int(time.time() * 1000))
    for review in sample_reviews():  # the webhook finds the samples' keys
        key = history_key(HistoryKey.RUNNER_PROJECT, review["request"]["object"]["metadata"])
        history[str(key)] = [Placement(cluster.node_names[1], int(time.time() * 1000))]
    scenario.preload(kube, namespace, history)
    recorder = RecorderProcess(
        cluster.kubeconfig,
        namespace,
        extra_args=[
            f"--namespaces={namespace}",
            f"--configmap-name={NAME}",
            "--log-level=warning",
            *scenario.recorder_args,
        ],
    ).start(timeout=120)
    assert recorder.process.popen is not None
    traffic = Traffic()
    watcher = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    threading.Thread(target=traffic.watch, args=(watcher, namespace, NAME), daemon=True).start()
    synthetic = [key for key in history if key.count("-") == 3]
    pods = bound_pods(cluster, synthetic, int(RATE * (LEAD_SECONDS + seconds)))
    load = (
        webhook_on(cluster, namespace, seconds)
        if scenario.webhook
        else anchor_on(seconds)
        if scenario.go_anchor
        else None
    )
    creation: dict[str, Any] = {}
    creating = threading.Thread(
        target=lambda: creation.update(
            post_pods(
                cluster,
                f"/api/v1/namespaces/{namespace}/pods",
                pods,
                rate=int(RATE),
                seconds=LEAD_SECONDS + seconds,
            )
        )
    )
    try:
        with load or contextlib.nullcontext() as attacker:
            creating.start()
            # The recorder's first flush after its load (a move, if any); vegeta's start.
            time.sleep(LEAD_SECONDS - WARMUP_SECONDS)
            if attacker:
                attacker.start()
            time.sleep(WARMUP_SECONDS)
            traffic.counting.set()
            cpu_before = cpu_ns(recorder.process.popen.pid)
            recorded_before = recorder.metric("runner_sizer_recorder_bindings_recorded_total")
            began = time.monotonic()
            _, cores = cores_while(os.getpid(), lambda: time.sleep(seconds))
            elapsed = time.monotonic() - began
            traffic.counting.clear()
            cpu = (cpu_ns(recorder.process.popen.pid) - cpu_before) / 1e9
            recorded = recorder.metric("runner_sizer_recorder_bindings_recorded_total")
            recorded -= recorded_before
            creating.join()
            name = f"open_loop_{ADMISSIONS_PER_S}rps_live_history"
            webhook = attacker.finish(name) if attacker else None
        result: dict[str, object] = {
            "scenario": scenario.name,
            "keys": scenario.keys,
            "history_bytes": data_bytes(to_data(history)),
            "bindings_created_per_s": round(creation["throughput"], 1),
            "bindings_recorded_per_s": round(recorded / elapsed, 1),
            "seconds": round(elapsed, 1),
            "written_bytes_per_s": round(traffic.written / elapsed),
            "received_bytes_per_webhook_pod_per_s": round(traffic.received / elapsed),
            "object_versions_per_s": round(traffic.events / elapsed, 2),
            "shard_written_bytes_per_s": round(traffic.shard_bytes / elapsed),
            "compactions": traffic.compactions,
            "stored_keys": int(recorder.metric("runner_sizer_recorder_history_keys")),
            "recorder_cpu_percent": round(100 * cpu / elapsed, 1),
            # Every process of the run (control plane, recorder, webhook, vegeta, this one).
            "cores_by_command": cores,
        }
        if webhook:
            result["go_anchor" if scenario.go_anchor else "webhook"] = webhook
        return result
    finally:
        traffic.stop.set()
        recorder.stop()
        kube.delete(f"/api/v1/namespaces/{namespace}/pods", params={"gracePeriodSeconds": 0})


def webhook_event_cpu(keys: int, flushes: int, *, single: bool = False) -> dict[str, object]:
    """CPU a webhook worker spends per history watch event, in-process (no load beside it).

    The real HistoryView is fed the objects the recorder's plans write, as watch
    event lines: 100 random keys changed per flush, compactions as they fall.
    `single`: the whole history as one object at every flush (today's design).
    """
    history = synthetic_history(keys, int(time.time() * 1000))
    first = plan(NAME, Stored(), to_data(history), DEFAULT_SHARDS, DEFAULT_COMPACT_AFTER)
    stored = Stored(first.layout, {}, first.shards)

    def unreachable() -> KubeClient:
        raise OSError("in-process: no apiserver")

    logging.getLogger("runner_sizer.kube.informer").setLevel(logging.ERROR)  # those retries

    view = HistoryView(unreachable, "bench", NAME, build_metrics(CollectorRegistry()))

    def fed(watch: ListWatch, data: dict[str, str]) -> float:
        line = json.dumps({"type": "MODIFIED", "object": {"data": data}})
        began = time.thread_time()  # the line's decoding is the worker's too
        event = json.loads(line)
        watch.on_event(event["type"], event["object"])
        return (time.thread_time() - began) * 1000

    began = time.thread_time()
    if single:
        view._head.on_list([{"data": to_data(history)}])
    else:
        view._head.on_list([{"data": head_data(first.layout, {})}])
        for name, part in first.shards.items():
            view._shard_watches[name].on_list([{"data": {RECORDS_KEY: encode(part)}}])
    sync_ms = (time.thread_time() - began) * 1000
    rng = random.Random(5)  # noqa: S311 - synthetic load
    names, at = list(history), int(time.time() * 1000)
    heads: list[float] = []
    shards: list[float] = []
    for _ in range(flushes):
        for _ in range(100):
            at += 10
            record(history, rng.choice(names), "node-a", at, 3)
        if single:
            heads.append(fed(view._head, to_data(history)))
            continue
        step = plan(
            NAME,
            stored,
            difference(stored.records(), to_data(history)),
            DEFAULT_SHARDS,
            DEFAULT_COMPACT_AFTER,
        )
        for name, part in step.shards.items():
            shards.append(fed(view._shard_watches[name], {RECORDS_KEY: encode(part)}))
        heads.append(fed(view._head, head_data(step.layout, step.delta)))
        stored = stored_after(stored, step, NAME)
    view.stop()
    assert all(view.nodes(k) == tuple(p.node for p in history[k]) for k in names)
    return {
        "scenario": f"webhook_history_event_cpu_{keys}_keys_{'single' if single else 'sharded'}",
        "first_sync_ms": round(sync_ms),
        "flushes": flushes,
        "compactions": len(shards) // DEFAULT_SHARDS,
        "head_event_cpu_ms_median": round(statistics.median(heads), 2),
        "head_event_cpu_ms_max": round(max(heads), 2),
        "shard_event_cpu_ms_median": round(statistics.median(shards), 2) if shards else None,
        "shard_event_cpu_ms_max": round(max(shards), 2) if shards else None,
    }


def layout_model(keys: int, flushes: int) -> dict[str, object]:
    """Bytes per flush at exactly 1 flush/s and RATE bindings/s, by the recorder's own plans.

    No apiserver: the objects each plan writes, as JSON, for random keys; beside
    the whole history as one object at every flush. What the loaded machine's
    apiserver did to the flush cadence drops out.
    """
    history = synthetic_history(keys, int(time.time() * 1000))
    stored = Stored()
    rng = random.Random(13)  # noqa: S311 - synthetic load
    names, at = list(history), int(time.time() * 1000)
    sharded = single = compactions = 0

    def size(data: dict[str, str]) -> int:
        return len(json.dumps({"data": data}, **COMPACT))  # type: ignore[arg-type]

    for flush in range(flushes + 1):
        for _ in range(int(RATE) if flush else 0):
            at += 10
            record(history, rng.choice(names), rng.choice(("node-a", "node-b", "node-c")), at, 3)
        data = to_data(history)
        step = plan(
            NAME, stored, difference(stored.records(), data), DEFAULT_SHARDS, DEFAULT_COMPACT_AFTER
        )
        if flush:  # the first plan is the move into shards
            written = sum(size({RECORDS_KEY: encode(part)}) for part in step.shards.values())
            sharded += written + size(head_data(step.layout, step.delta))
            single += size(data)
            compactions += bool(step.shards)
        stored = stored_after(stored, step, NAME)
    return {
        "scenario": f"layout_model_{keys}_keys_{int(RATE)}_bindings_per_s",
        "flushes": flushes,
        "compactions": compactions,
        "single_object_bytes_per_s": round(single / flushes),
        "sharded_bytes_per_s": round(sharded / flushes),
        "sharded_percent_of_single": round(100 * sharded / single, 1),
    }


def main(argv: list[str]) -> int:
    seconds = float(argv[0]) if argv else 30.0
    scenarios = [
        Scenario("single_object_5000_keys", 5000, preload_single, SINGLE_OBJECT),
        Scenario("sharded_5000_keys", 5000, preload_single),
        Scenario("sharded_50000_keys", 50000, preload_sharded, LARGE, webhook=True),
        Scenario("sharded_50000_keys_go_anchor", 50000, preload_sharded, LARGE, go_anchor=True),
    ]
    only = set(argv[1:])
    if not only or "layout_model" in only:
        for keys in (5000, 50000):
            print(json.dumps(layout_model(keys, 300)), flush=True)
    if not only or "webhook_history_event_cpu" in only:
        for single in (True, False):
            print(json.dumps(webhook_event_cpu(50000, 120, single=single)), flush=True)
    # Pods are created bound to their nodes: no scheduler, no controllers, whose watches
    # of every pod would take ~0.14 of these 2 cores from what is measured.
    with LocalCluster(
        ensure_binaries(), with_controller_manager=False, with_scheduler=False
    ) as cluster:
        for scenario in scenarios:
            wanted = not only or scenario.name in only
            if wanted and (anchor.available() or not scenario.go_anchor):
                print(json.dumps(measure(cluster, scenario, seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
