"""`make bench` (recommender part): refreshes, sizing latency and memory on a real Prometheus.

A real Prometheus holds 14 days of 2,000 job identities x 30 runs (60,000 build
containers): cAdvisor usage every 10 s and the recorder's job info series every
30 s, backfilled with promtool. The TSDB blocks are cached under
.cache/bench-recommender, keyed by the generator's parameters and a 6-hour time
anchor (the runs end before it and start after `anchor + 6 h - 14 d`, so all of
them stay inside the window while the cache is reused). The real
runner-sizer-recommender then:

- builds its first table (refresh time and queries, from its own /metrics);
- RSS of gunicorn's master and worker after it;
- answers 1,000 sizing requests/s open loop from vegeta over keep-alive HTTP;
- after new runs land (pods scraped live from a stand-in kubelet endpoint, then
  gone), refreshes incrementally (time, queries, runs added).

Prints one JSON line per figure, with the machine's core count.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.proc import process_tree
from bench.webhook import vegeta
from runner_sizer.devcluster.binaries import REPO_ROOT, Binaries, ensure_binaries
from runner_sizer.devcluster.cluster import free_port
from runner_sizer.devcluster.job_history import GIB, PastRun, history
from runner_sizer.devcluster.prometheus import (
    Family,
    PrometheusServer,
    Series,
    openmetrics_lines,
    scrape_config,
)
from runner_sizer.devcluster.recommender_process import (
    READ_TOKEN,
    RecommenderProcess,
    sizing_path,
)
from runner_sizer.recommender.promql import Identity

PROJECTS, REFS, JOBS = 500, ("main", "feature/x"), ("build", "test")  # 2,000 identities
RUNS_EACH = 30
DAY = 86400.0
WINDOW = 14 * DAY
CACHE_FOR = 6 * 3600.0
CADVISOR_EVERY = 10.0
SEED = 9
GENERATOR_VERSION = 1
CACHE = REPO_ROOT / ".cache" / "bench-recommender"
# New runs: this many pods, live (scraped every SCRAPE_EVERY) for LIVE_SECONDS, then gone.
NEW_RUNS = 200
LIVE_SECONDS = 60.0
SCRAPE_EVERY = "10s"
# The recommender calls a pod finished 300 s after its last sample: the second refresh
# starts this long after the first ends, late enough to count the new runs.
REFRESH_INTERVAL = 400.0


def identities() -> list[Identity]:
    return [
        Identity(str(100_000 + p), f"group-{p % 50}", f"project-{p}", ref, job)
        for p in range(PROJECTS)
        for ref in REFS
        for job in JOBS
    ]


def past_runs(anchor: float) -> list[PastRun]:
    """RUNS_EACH runs of every identity between `anchor - WINDOW + CACHE_FOR` and `anchor`."""
    rng = random.Random(SEED)  # noqa: S311 - reproducible data, not secrets
    begin, end = anchor - WINDOW + CACHE_FOR, anchor - 1800.0
    spacing = (end - begin) / RUNS_EACH
    runs = []
    for n, who in enumerate(identities()):
        cores, peak = rng.uniform(0.2, 4.0), rng.uniform(0.3, 8.0) * GIB
        for i in range(RUNS_EACH):
            start = float(int(begin + (i + rng.random() * 0.9) * spacing) // 10 * 10)
            seconds = float(rng.randrange(300, 1500, 10))
            runs.append(
                PastRun(
                    who,
                    f"runner-{n:04x}{i:02x}-project-{who.project_id}-concurrent-{i % 4}",
                    start,
                    seconds,
                    cores * rng.uniform(0.8, 1.2),
                    peak * rng.uniform(0.7, 1.0),
                )
            )
    return runs


def cache_key(binaries: Binaries, anchor: float) -> str:
    parameters = {
        "projects": PROJECTS,
        "refs": REFS,
        "jobs": JOBS,
        "runs": RUNS_EACH,
        "window": WINDOW,
        "cache_for": CACHE_FOR,
        "cadvisor_every": CADVISOR_EVERY,
        "seed": SEED,
        "version": GENERATOR_VERSION,
        "promtool": binaries.promtool.parent.name,
        "anchor": anchor,
    }
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]


def with_history(prometheus: PrometheusServer, binaries: Binaries) -> dict[str, Any]:
    """Backfill 60,000 runs into `prometheus` (not started), from the cache when it can."""
    anchor = time.time() // CACHE_FOR * CACHE_FOR
    cached = CACHE / cache_key(binaries, anchor)
    began = time.monotonic()
    if not (cached / "complete").exists():
        shutil.rmtree(CACHE, ignore_errors=True)  # older anchors: never reused
        runs = past_runs(anchor)
        families = [f for f in history(runs, CADVISOR_EVERY) if not f.name.startswith("kube_")]
        prometheus.backfill(families)
        del runs, families
        partial = cached.with_suffix(".partial")
        shutil.copytree(prometheus.data_dir, partial)
        (partial / "complete").touch()
        partial.rename(cached)
        source = "backfilled"
    else:
        shutil.copytree(cached, prometheus.data_dir, dirs_exist_ok=True)
        (prometheus.data_dir / "complete").unlink()
        source = "cache"
    return {
        "history_from": source,
        "history_seconds": round(time.monotonic() - began, 1),
        "tsdb_mb": round(
            sum(f.stat().st_size for f in prometheus.data_dir.rglob("*") if f.is_file()) / 2**20
        ),
    }


@dataclass
class LiveRuns:
    """A stand-in kubelet /metrics/cadvisor (and recorder) for pods running now."""

    runs: list[PastRun] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    def land(self, count: int, seconds: float) -> None:
        """`count` new pods of existing identities, running from now for `seconds`."""
        now = time.time()
        self.runs = [
            PastRun(who, f"runner-new{n:04x}-project-{who.project_id}", now, seconds, 1.5, GIB)
            for n, who in enumerate(identities()[:count])
        ]

    def families(self, at: float) -> list[Family]:
        """One sample per series at `at`: the last of what `history` makes of each run so far."""
        live = [
            PastRun(r.identity, r.pod, r.start, at - r.start, r.cores, r.peak)
            for r in self.runs
            if r.start < at <= r.start + r.seconds
        ]
        if not live:
            return []
        return [
            Family(f.name, f.kind, [Series(s.labels, [(at, s.samples[-1][1])]) for s in f.series])
            for f in history(live, cadvisor_every=at - live[0].start)
            if not f.name.startswith("kube_")
        ]

    def serve(self) -> ThreadingHTTPServer:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                at = round(time.time(), 3)
                body = "".join(openmetrics_lines(standin.families(at), not_after=at)).encode()
                self.send_response(200)
                self.send_header(
                    "Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8"
                )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def metrics(recommender: RecommenderProcess) -> dict[str, float]:
    """The recommender's unlabelled samples, by name."""
    values = {}
    for line in recommender.get("/metrics").text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_for_refresh(recommender: RecommenderProcess, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    name = "runner_sizer_recommender_refresh_duration_seconds_count"
    while metrics(recommender).get(name, 0) < count:
        if time.monotonic() > deadline or not recommender.process.running:
            raise RuntimeError(f"no refresh #{count}: {recommender.process.log_tail()}")
        time.sleep(0.5)


def refresh_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    prefix = "runner_sizer_recommender_"
    delta = after[f"{prefix}refresh_duration_seconds_sum"] - before.get(
        f"{prefix}refresh_duration_seconds_sum", 0.0
    )
    return {
        "seconds": round(delta, 2),
        "queries": int(after[f"{prefix}queries_last_refresh"]),
        "runs": int(after[f"{prefix}runs"]),
        "runs_added": int(after[f"{prefix}runs"] - before.get(f"{prefix}runs", 0.0)),
        "identities": int(after[f"{prefix}identities"]),
        "refresh_errors": int(after[f"{prefix}refresh_errors_total"]),
    }


def memory_mb(recommender: RecommenderProcess) -> dict[str, float]:
    """VmRSS and VmHWM (peak) summed over gunicorn's master and worker."""
    assert recommender.process.popen is not None
    totals = {"VmRSS": 0, "VmHWM": 0}
    for pid in process_tree(recommender.process.popen.pid):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in totals:
                totals[key] += int(line.split()[1])
    return {
        "rss_mb": round(totals["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(totals["VmHWM"] / 1024, 1),
    }


def worker_pid(recommender: RecommenderProcess) -> int:
    assert recommender.process.popen is not None
    return next(
        p for p in process_tree(recommender.process.popen.pid) if p != recommender.process.popen.pid
    )


def measured_attack(
    recommender: RecommenderProcess,
    tool: Path,
    name: str,
    *,
    rate: int,
    seconds: int,
    workers: int = 16,
    **extra: Any,
) -> dict[str, Any]:
    """An attack's figures, with the worker's CPU per request and its time waiting for a CPU.

    /proc/<pid>/schedstat: nanoseconds on a CPU, then nanoseconds runnable but waiting.
    """
    schedstat = Path(f"/proc/{worker_pid(recommender)}/schedstat")
    on_cpu, waiting, _ = map(int, schedstat.read_text().split())
    load_before = os.getloadavg()[0]
    report = attack(tool, recommender.url, rate=rate, seconds=seconds, workers=workers)
    on_cpu_after, waiting_after, _ = map(int, schedstat.read_text().split())
    requests = max(report["requests"], 1)
    return summarize(
        name,
        report,
        worker_cpu_us_per_request=round((on_cpu_after - on_cpu) / 1000 / requests),
        worker_runqueue_wait_us_per_request=round((waiting_after - waiting) / 1000 / requests),
        load_average_1m=[round(load_before, 1), round(os.getloadavg()[0], 1)],
        **extra,
    )


def summarize(name: str, report: dict[str, Any], **extra: Any) -> dict[str, Any]:
    latencies = report["latencies"]
    return {
        "scenario": name,
        "requests": report["requests"],
        "throughput_per_s": round(report["throughput"], 1),
        "errors": report["requests"] - report["status_codes"].get("200", 0),
        "p50_ms": round(latencies["50th"] / 1e6, 2),
        "p99_ms": round(latencies["99th"] / 1e6, 2),
        "max_ms": round(latencies["max"] / 1e6, 2),
        **extra,
    }


def attack(tool: Path, url: str, *, rate: int, seconds: int, workers: int = 16) -> dict[str, Any]:
    """vegeta over keep-alive HTTP/1.1; rate 0 means closed loop with `workers` connections."""
    header = {"Authorization": [f"Bearer {READ_TOKEN}"]}
    targets = "".join(
        json.dumps(
            {
                "method": "GET",
                "url": f"{url}{sizing_path(who)}?project_id={who.project_id}",
                "header": header,
            }
        )
        + "\n"
        for who in identities()
    )
    flags = ["-format=json", f"-duration={seconds}s", f"-rate={rate}", f"-workers={workers}"]
    flags += ["-http2=false", "-keepalive=true", "-timeout=5s"]
    if rate == 0:
        flags.append(f"-max-workers={workers}")
    with tempfile.TemporaryDirectory(prefix="bench-recommender-") as scratch:
        results = Path(scratch) / "results.bin"
        command = [str(tool), "attack", *flags, f"-output={results}"]
        subprocess.run(command, input=targets.encode(), capture_output=True, check=True)
        report = subprocess.run(
            [str(tool), "report", "-type=json", str(results)],
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, Any] = json.loads(report.stdout)
    return result


def emit(figure: dict[str, Any]) -> None:
    print(json.dumps({**figure, "cores": os.cpu_count()}), flush=True)


def main(argv: list[str]) -> int:
    seconds = int(argv[0]) if argv else 60
    tool = vegeta()
    binaries = ensure_binaries()
    live = LiveRuns()
    standin = live.serve()
    prometheus = PrometheusServer(
        binaries,
        scrape_configs=[scrape_config("cadvisor", f"127.0.0.1:{live.port}", honor_labels=True)],
        interval=SCRAPE_EVERY,
        # Backfilled 1-day blocks stay as they are: no compaction competing with refreshes.
        extra_args=["--storage.tsdb.max-block-duration=1d"],
    )
    recommender = RecommenderProcess(
        prometheus.url, [f"--refresh-interval={int(REFRESH_INTERVAL)}s", "--log-level=warning"]
    )
    try:
        loaded = with_history(prometheus, binaries)
        prometheus.start(timeout=120)
        recommender.start(ready=False)
        wait_for_refresh(recommender, 1, timeout=600)
        first = metrics(recommender)
        emit(
            {
                "scenario": "recommender_first_refresh",
                **refresh_figures({}, first),
                **loaded,
                "goal_seconds": 60,
            }
        )
        emit(
            {
                "scenario": "recommender_memory_after_first_refresh",
                **memory_mb(recommender),
                "goal_mb": 200,
            }
        )
        name = "recommender_open_loop_1000rps"
        emit(measured_attack(recommender, tool, name, rate=1000, seconds=seconds, goal_p99_ms=2))
        name = "recommender_closed_loop_c1"
        emit(measured_attack(recommender, tool, name, rate=0, seconds=min(seconds, 10), workers=1))
        # After the attacks: each scrape of the live runs is generated here, in Python,
        # a burst of CPU every SCRAPE_EVERY on the cores the attacks measure. They end
        # long before the next refresh (REFRESH_INTERVAL after the first).
        live.land(NEW_RUNS, LIVE_SECONDS)
        wait_for_refresh(recommender, 2, timeout=REFRESH_INTERVAL + 300)
        emit(
            {
                "scenario": "recommender_incremental_refresh",
                **refresh_figures(first, metrics(recommender)),
                "new_pods": NEW_RUNS,
                "goal_seconds": 5,
            }
        )
        emit({"scenario": "recommender_memory_after_incremental_refresh", **memory_mb(recommender)})
    finally:
        recommender.stop()
        prometheus.stop()
        standin.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
