"""`make bench`: the webhook under load from vegeta, over keep-alive TLS.

Prints one JSON line per scenario. Realistic ~11 KB runner pod reviews
(tests/data), receiver answers cached (warm) unless the scenario says otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from runner_sizer.devcluster.binaries import BUILD_SCRIPT
from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.receiver_standin import StandinServer, StandinState
from runner_sizer.devcluster.webhook_process import WebhookProcess
from runner_sizer.webhook.identity import container_env, job_identity
from tests.support.reviews import SAMPLES

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
    assert identity is not None
    return "/".join((identity.org, identity.repo, identity.workflow, identity.job))


@contextlib.contextmanager
def webhook_under_test(standin: StandinServer, *args: str) -> Iterator[WebhookProcess]:
    process = WebhookProcess(
        CertificateAuthority("bench-ca"),
        extra_args=[
            f"--sizer-url={standin.url}",
            "--sizer-sidecar-image=registry.example/collector:1",
            "--enable-affinity=false",
            "--log-level=warning",
            *args,
        ],
        env={"WEBHOOK_SIZER_READ_TOKEN": "read-token", "WEBHOOK_SIZER_PUSH_TOKEN": "push-token"},
    ).start()
    try:
        yield process
    finally:
        process.stop()


def attack(
    tool: Path,
    webhook: WebhookProcess,
    reviews: list[dict[str, Any]],
    *,
    rate: int,
    seconds: int,
    workers: int,
) -> dict[str, Any]:
    """Run vegeta; rate 0 means closed loop with `workers` connections."""
    targets = "".join(
        json.dumps(
            {
                "method": "POST",
                "url": f"{webhook.url}/mutate",
                "body": base64.b64encode(json.dumps(review).encode()).decode(),
                "header": {"Content-Type": ["application/json"]},
            }
        )
        + "\n"
        for review in reviews
    )
    args = [
        str(tool),
        "attack",
        "-format=json",
        f"-duration={seconds}s",
        f"-rate={rate}",
        f"-root-certs={webhook.ca_file}",
        "-http2=false",
        "-keepalive=true",
        "-timeout=5s",
    ]
    if rate == 0:
        args += [f"-workers={workers}", f"-max-workers={workers}"]
    else:
        args += [f"-workers={workers}"]
    attack_run = subprocess.run(args, input=targets.encode(), capture_output=True, check=True)
    report = subprocess.run(
        [str(tool), "report", "-type=json"],
        input=attack_run.stdout,
        capture_output=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(report.stdout)
    return result


def summarize(name: str, report: dict[str, Any], **extra: Any) -> dict[str, Any]:
    latencies = report["latencies"]
    ms = 1e-6
    errors = report["requests"] - report["status_codes"].get("200", 0)
    return {
        "scenario": name,
        "requests": report["requests"],
        "throughput_per_s": round(report["throughput"], 1),
        "errors": errors,
        "p50_ms": round(latencies["50th"] * ms, 2),
        "p99_ms": round(latencies["99th"] * ms, 2),
        "max_ms": round(latencies["max"] * ms, 2),
        "over_100ms": "none" if latencies["max"] * ms <= 100 else "some",
        **extra,
    }


def main(argv: list[str]) -> int:
    seconds = int(argv[0]) if argv else 60
    tool = vegeta()
    reviews = sample_reviews()
    state = StandinState(recommendations={receiver_key(r): RECOMMENDED for r in reviews})
    standin = StandinServer(state).start()
    try:
        with webhook_under_test(standin) as webhook:
            for review in reviews:  # warm the caches of both workers
                for _ in range(4):
                    requests.post(
                        f"{webhook.url}/mutate", json=review, verify=str(webhook.ca_file), timeout=5
                    )
            closed = attack(tool, webhook, reviews, rate=0, seconds=min(seconds, 20), workers=8)
            print(json.dumps(summarize("closed_loop_c8_warm", closed)), flush=True)
            calls_before = sum(state.calls.values())
            opened = attack(tool, webhook, reviews, rate=1000, seconds=seconds, workers=16)
            calls = sum(state.calls.values()) - calls_before
            print(
                json.dumps(
                    summarize(
                        "open_loop_1000rps_warm",
                        opened,
                        receiver_calls_per_admission=round(calls / max(opened["requests"], 1), 4),
                    )
                ),
                flush=True,
            )
        state.set_mode("slow", delay=0.005)
        with webhook_under_test(
            standin, "--cache-ttl=0.001", "--negative-cache-ttl=0.001"
        ) as webhook:
            calls_before = sum(state.calls.values())
            slow = attack(tool, webhook, reviews, rate=200, seconds=min(seconds, 20), workers=16)
            calls = sum(state.calls.values()) - calls_before
            print(
                json.dumps(
                    summarize(
                        "open_loop_200rps_receiver_5ms_uncached",
                        slow,
                        receiver_calls_per_admission=round(calls / max(slow["requests"], 1), 4),
                    )
                ),
                flush=True,
            )
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
