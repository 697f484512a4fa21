"""`make bench`: the webhook under load from vegeta, over keep-alive TLS.

Prints one JSON line per scenario. Realistic ~11 KB runner pod reviews
(tests/data), receiver answers cached (warm) unless the scenario says otherwise.
Every answer is checked: an AdmissionReview allowing the review's uid, with a patch
or without one. Where Go and ../shared/bench-anchor are present, the Go anchor runs
the closed loop side by side, with the same vegeta and reviews.

    python -m bench.webhook [SECONDS] [SCENARIO-PREFIX...]
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench import anchor
from bench.proc import cpu_ns
from runner_sizer.devcluster.binaries import BUILD_SCRIPT, ensure_binaries
from runner_sizer.devcluster.cluster import LocalCluster
from runner_sizer.devcluster.receiver_standin import StandinServer, StandinState
from runner_sizer.devcluster.webhook_process import WebhookProcess, running_webhook
from runner_sizer.history.keys import HistoryKey, history_key
from runner_sizer.history.ledger import to_data
from runner_sizer.history.placements import Placement
from runner_sizer.identity import JobIdentity, container_env, job_identity
from runner_sizer.kube.client import KubeClient
from tests.support.reviews import SAMPLES

UPDATE_EVERY = float(os.environ.get("BENCH_HISTORY_UPDATE_EVERY", "1.0"))
RECOMMENDED = {
    "requests": {"cpu": "1500m", "memory": "3Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}


def vegeta() -> Path:
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "bench"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.split()[-1]) / "vegeta"


def sample_reviews() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in SAMPLES]


def receiver_key(review: dict[str, Any]) -> str:
    pod = review["request"]["object"]
    build = next(c for c in pod["spec"]["containers"] if c["name"] == "build")
    identity = job_identity(pod["metadata"], container_env(build))
    assert isinstance(identity, JobIdentity)
    return "/".join((identity.org, identity.repo, identity.workflow, identity.job))


class Target(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def ca_file(self) -> Path: ...


@dataclass
class Answers:
    """What the webhook answered, body by body."""

    valid: int = 0
    patched: int = 0
    invalid: list[str] = field(default_factory=list)

    def check(self, body: bytes, uids: set[str]) -> None:
        try:
            review = json.loads(body)
            response = review["response"]
            ok = (
                review["apiVersion"] == "admission.k8s.io/v1"
                and review["kind"] == "AdmissionReview"
                and response["allowed"] is True
                and response["uid"] in uids
            )
            if ok and "patch" in response:
                ok = response["patchType"] == "JSONPatch" and isinstance(
                    json.loads(base64.b64decode(response["patch"])), list
                )
                self.patched += ok
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            self.valid += 1
        elif len(self.invalid) < 3:
            self.invalid.append(body[:200].decode(errors="replace"))


def check_answers(results: list[dict[str, Any]], uids: set[str]) -> Answers:
    """Every 200 answer in vegeta's results, checked (errors are counted by the report)."""
    answers = Answers()
    for result in results:
        if result["code"] == 200:
            answers.check(base64.b64decode(result["body"]), uids)
    return answers


def decoded(tool: Path, results: Path) -> list[dict[str, Any]]:
    """vegeta's results, one dict each (`seq` numbers them in the order they were sent)."""
    encode = subprocess.run(
        [str(tool), "encode", "-to=json", str(results)], capture_output=True, check=True
    )
    return [json.loads(line) for line in encode.stdout.splitlines()]


def cold_start(results: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The warm-up's figures: the connections vegeta opens, and their TLS handshakes, as the
    first ticks find none idle."""
    latencies = sorted(result["latency"] for result in results)
    return {
        "seconds": seconds,
        "requests": len(results),
        "errors": sum(result["code"] != 200 for result in results),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] / 1e6, 2) if latencies else 0,
        "max_ms": round(latencies[-1] / 1e6, 2) if latencies else 0,
    }


def post_targets(url: str, bodies: Iterable[Any]) -> str:
    """vegeta's JSON targets: a POST of each body to `url`, in turn."""
    return "".join(
        json.dumps(
            {
                "method": "POST",
                "url": url,
                "body": base64.b64encode(json.dumps(body).encode()).decode(),
                "header": {"Content-Type": ["application/json"]},
            }
        )
        + "\n"
        for body in bodies
    )


def attack(
    tool: Path,
    target: Target,
    reviews: list[dict[str, Any]],
    *,
    rate: int,
    seconds: int,
    workers: int,
    max_workers: int = 0,
    warmup: float = 0,
) -> dict[str, Any]:
    """Run vegeta; rate 0 means closed loop with `workers` connections, else an open loop
    that opens more connections as answers lag, up to `max_workers` (0: no limit).

    With `warmup` (open loop only), vegeta first runs that many seconds at the same rate
    over the same connections; those requests are reported apart, as `cold_start`, and
    the figures are the `seconds` after them: the steady state an apiserver's kept-alive
    connections see.
    """
    targets = post_targets(f"{target.url}/mutate", reviews)
    with tempfile.TemporaryDirectory(prefix="runner-sizer-bench-") as scratch:
        results = Path(scratch) / "results.bin"
        args = [
            str(tool),
            "attack",
            "-format=json",
            f"-duration={seconds + warmup}s",
            f"-rate={rate}",
            f"-root-certs={target.ca_file}",
            "-http2=false",
            "-keepalive=true",
            "-timeout=5s",
            f"-workers={workers}",
            f"-output={results}",
        ]
        if rate == 0:
            args.append(f"-max-workers={workers}")
        elif max_workers:
            args.append(f"-max-workers={max_workers}")
        subprocess.run(args, input=targets.encode(), capture_output=True, check=True)
        every = decoded(tool, results)
        first = round(rate * warmup)
        measured = [result for result in every if result["seq"] >= first]
        results.write_text("".join(json.dumps(result) + "\n" for result in measured))
        report = subprocess.run(
            [str(tool), "report", "-type=json", str(results)], capture_output=True, check=True
        )
    result: dict[str, Any] = json.loads(report.stdout)
    result["answers"] = check_answers(measured, {r["request"]["uid"] for r in reviews})
    if warmup:
        result["cold_start"] = cold_start([r for r in every if r["seq"] < first], warmup)
    return result


def summarize(name: str, report: dict[str, Any], **extra: Any) -> dict[str, Any]:
    latencies = report["latencies"]
    ms = 1e-6
    ok = report["status_codes"].get("200", 0)
    answers: Answers | None = report.get("answers")
    checked: dict[str, Any] = {}
    if answers is not None:
        checked = {"invalid_answers": ok - answers.valid, "patched": answers.patched}
        if answers.invalid:
            checked["invalid_examples"] = answers.invalid
    return {
        "scenario": name,
        "requests": report["requests"],
        "throughput_per_s": round(report["throughput"], 1),
        "errors": report["requests"] - ok,
        "p50_ms": round(latencies["50th"] * ms, 2),
        "p99_ms": round(latencies["99th"] * ms, 2),
        "max_ms": round(latencies["max"] * ms, 2),
        "over_100ms": "none" if latencies["max"] * ms <= 100 else "some",
        **(
            {"cpu_us_per_request": report["cpu_us_per_request"]}
            if "cpu_us_per_request" in report
            else {}
        ),
        **checked,
        **({"cold_start": report["cold_start"]} if "cold_start" in report else {}),
        **extra,
    }


def admissions(webhook: WebhookProcess) -> dict[str, float]:
    """The webhook's admissions by outcome, from its /metrics."""
    return {
        sample.labels["outcome"]: sample.value
        for sample in counter_samples(webhook, "runner_sizer_webhook_admissions")
    }


def connections(webhook: WebhookProcess) -> int:
    """The connections the webhook has accepted."""
    return round(sum(s.value for s in counter_samples(webhook, "runner_sizer_http_connections")))


def counter_samples(webhook: WebhookProcess, family_name: str) -> list[Sample]:
    """The `_total` samples of one counter of the webhook's /metrics."""
    text = requests.get(webhook.metrics_url, timeout=5).text
    return [
        sample
        for family in text_string_to_metric_families(text)
        if family.name == family_name
        for sample in family.samples
        if sample.name.endswith("_total")
    ]


def with_cpu(pid: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run`'s report, with the server's CPU time per request (a figure the other load on
    the machine moves less than throughput)."""
    before = cpu_ns(pid)
    report = run()
    report["cpu_us_per_request"] = round((cpu_ns(pid) - before) / 1000 / max(report["requests"], 1))
    return report


def measured(
    name: str,
    state: StandinState,
    run: Callable[[], dict[str, Any]],
    webhook: WebhookProcess | None = None,
    count_calls: bool = True,
) -> dict[str, Any]:
    """Run one scenario and print its JSON line (with receiver calls per admission, and
    the admissions by outcome and CPU per request when `webhook` is given)."""
    calls_before = sum(state.calls.values())
    outcomes_before = admissions(webhook) if webhook else {}
    if webhook:
        assert webhook.process.popen is not None
        run = partial(with_cpu, webhook.process.popen.pid, run)
    report = run()
    extra: dict[str, Any] = {}
    if count_calls:
        calls = sum(state.calls.values()) - calls_before
        extra["receiver_calls_per_admission"] = round(calls / max(report["requests"], 1), 4)
    if webhook:
        after = admissions(webhook)
        outcomes = {k: int(v - outcomes_before.get(k, 0)) for k, v in after.items()}
        extra["outcomes"] = {k: v for k, v in outcomes.items() if v}
        extra["shed_fraction"] = round(outcomes.get("shed", 0) / max(report["requests"], 1), 4)
    line = summarize(name, report, **extra)
    print(json.dumps(line), flush=True)
    return line


def with_live_history(
    cluster: LocalCluster,
    standin: StandinServer,
    tool: Path,
    reviews: list[dict[str, Any]],
    seconds: int,
) -> dict[str, Any]:
    """Affinity on, 5,000 history keys (the samples' among them), one key rewritten every second."""
    kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    kube.post("/api/v1/namespaces", {"metadata": {"name": "ci-sizer"}})
    history = {
        f"runner-{i:08x}-project-{100000 + i}": [
            Placement(f"ip-10-0-{i % 250}-{n}.ec2.internal", i - n) for n in range(3)
        ]
        for i in range(5000)
    }
    for review in reviews:
        key = history_key(HistoryKey.RUNNER_PROJECT, review["request"]["object"]["metadata"])
        assert key is not None
        history[key] = [Placement("node-b", 10**12)]
    path = "/api/v1/namespaces/ci-sizer/configmaps"
    kube.post(path, {"metadata": {"name": "runner-sizer-history"}, "data": to_data(history)})
    stop = threading.Event()

    def recorder_like_writes() -> None:
        for tick in itertools.count():
            if stop.wait(UPDATE_EVERY):
                return
            history[f"runner-{tick % 5000:08x}-project-{100000 + tick % 5000}"] = [
                Placement("node-c", 10**12 + tick)
            ]
            kube.patch(f"{path}/runner-sizer-history", {"data": to_data(history)})

    writer = threading.Thread(target=recorder_like_writes, daemon=True)
    with running_webhook(
        standin.url,
        "--log-level=warning",
        f"--kubeconfig={cluster.kubeconfig}",
        "--history-namespace=ci-sizer",
    ) as webhook:
        warm(webhook, reviews)
        writer.start()
        try:
            return attack(
                tool,
                webhook,
                reviews,
                rate=1000,
                seconds=seconds,
                workers=16,
                warmup=WARMUP_SECONDS,
            )
        finally:
            stop.set()


def warm(webhook: WebhookProcess, reviews: list[dict[str, Any]]) -> None:
    """Fill the receiver caches of both workers."""
    webhook.wait_ready()
    for review in reviews:
        for _ in range(4):
            requests.post(
                f"{webhook.url}/mutate", json=review, verify=str(webhook.ca_file), timeout=5
            )


@contextlib.contextmanager
def warm_webhook(
    standin: StandinServer, reviews: list[dict[str, Any]], *args: str
) -> Iterator[WebhookProcess]:
    with running_webhook(standin.url, *args) as webhook:
        warm(webhook, reviews)
        yield webhook


def side_by_side(
    tool: Path,
    webhook: WebhookProcess,
    state: StandinState,
    reviews: list[dict[str, Any]],
    seconds: int,
) -> float:
    """Closed loop, runner-sizer and the anchor taking turns twice; the throughput ratio
    (the closed-loop capacity of runner-sizer is returned)."""
    closed = partial(attack, tool, rate=0, seconds=seconds, workers=8, reviews=reviews)
    ours: list[float] = []
    theirs: list[float] = []
    with contextlib.ExitStack() as stack:
        go = stack.enter_context(anchor.running_anchor(reviews, RECOMMENDED)) if ANCHOR else None
        for _ in range(2 if go else 1):
            line = measured(
                "closed_loop_c8_warm", state, partial(closed, webhook), webhook, count_calls=False
            )
            ours.append(line["throughput_per_s"])
            if go:
                report = with_cpu(go.pid, partial(closed, go))
                theirs.append(report["throughput"])
                print(json.dumps(summarize("go_anchor_closed_loop_c8", report)), flush=True)
    capacity = sum(ours) / len(ours)
    figures: dict[str, Any] = {"scenario": "closed_loop_summary", "cores": os.cpu_count()}
    figures["runner_sizer_per_s"] = round(capacity, 1)
    if theirs:
        anchor_rate = sum(theirs) / len(theirs)
        figures["go_anchor_per_s"] = round(anchor_rate, 1)
        figures["ratio_to_anchor"] = round(capacity / anchor_rate, 2)
    print(json.dumps(figures), flush=True)
    return capacity


def open_loop(
    tool: Path,
    webhook: WebhookProcess,
    state: StandinState,
    reviews: list[dict[str, Any]],
    seconds: int,
) -> None:
    """1,000/s after a warm-up at the same rate; then the Go anchor, the same way."""
    run = partial(attack, rate=1000, seconds=seconds, workers=16, warmup=WARMUP_SECONDS)
    measured("open_loop_1000rps_warm", state, partial(run, tool, webhook, reviews), webhook)
    if ANCHOR:
        with anchor.running_anchor(reviews, RECOMMENDED) as go:
            report = with_cpu(go.pid, partial(run, tool, go, reviews))
        print(json.dumps(summarize("go_anchor_open_loop_1000rps", report)), flush=True)


ANCHOR = anchor.available()
WARMUP_SECONDS = 2.0


def main(argv: list[str]) -> int:
    """`SECONDS` (60) for the open loops, then scenario name prefixes to run only those."""
    seconds = int(argv[0]) if argv else 60
    only = argv[1:]

    def wanted(name: str) -> bool:
        return not only or any(name.startswith(prefix) for prefix in only)

    tool = vegeta()
    reviews = sample_reviews()
    state = StandinState(recommendations={receiver_key(r): RECOMMENDED for r in reviews})
    standin = StandinServer(state).start()
    short = min(seconds, 20)
    try:
        # Every scenario watches LimitRanges and ResourceQuotas, as in production.
        with LocalCluster(ensure_binaries()) as cluster:
            quiet = (
                "--enable-affinity=false",
                "--log-level=warning",
                f"--kubeconfig={cluster.kubeconfig}",
            )
            capacity = 0.0
            if wanted("closed_loop") or wanted("overload"):
                # Capacity with shedding off: a shed answer costs about half an admission.
                with warm_webhook(standin, reviews, *quiet, "--shed-after=0") as webhook:
                    capacity = side_by_side(tool, webhook, state, reviews, short)
            with warm_webhook(standin, reviews, *quiet) as webhook:
                if wanted("open_loop_1000rps_warm"):
                    open_loop(tool, webhook, state, reviews, seconds)
                if wanted("overload"):
                    # At most 64 connections, as a busy apiserver's webhook client might hold;
                    # unbounded, vegeta's new connections and their handshakes take the cores.
                    measured(
                        "overload_2x_closed_loop_capacity_30s",
                        state,
                        partial(
                            attack,
                            tool,
                            webhook,
                            reviews,
                            rate=round(2 * capacity),
                            seconds=30,
                            workers=16,
                            max_workers=64,
                        ),
                        webhook,
                    )
            if wanted("open_loop_1000rps_affinity"):
                measured(
                    "open_loop_1000rps_affinity_5000_keys_live_history",
                    state,
                    partial(with_live_history, cluster, standin, tool, reviews, seconds),
                )
            if wanted("open_loop_200rps_receiver"):
                state.set_mode("slow", delay=0.005)
                uncached = ("--cache-ttl=0.001", "--negative-cache-ttl=0.001")
                with running_webhook(standin.url, *quiet, *uncached) as webhook:
                    webhook.wait_ready()
                    measured(
                        "open_loop_200rps_receiver_5ms_uncached",
                        state,
                        partial(
                            attack,
                            tool,
                            webhook,
                            reviews,
                            rate=200,
                            seconds=short,
                            workers=16,
                            warmup=WARMUP_SECONDS,
                        ),
                        webhook,
                    )
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
