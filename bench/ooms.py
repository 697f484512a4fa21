"""`make bench` (OOM records part): what keeping OOM kills costs the recorder, in-process.

Per pod event, the kill detection on a pod without a kill (nearly every event)
and on an OOM-killed one. Per flush that stores a new kill, the merge of the
stored records at 5,000 (--oom-max-records' default): cold (every stored record
parsed and encoded, what a writer does after another writer changed them) as
the baseline, and warm (parsed and encoded records reused, the steady state).
Prints one JSON line; timings are the minimum of 5 repeats.
"""

from __future__ import annotations

import json
import os
import sys
import timeit
from collections.abc import Callable

from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.history.ooms import OomRecord, bound, encode, from_data, merge, to_data
from runner_sizer.recorder.ooms import oom_of

RECORDS = 5000
NOW = 1.8e9
WINDOW = 14 * 86400.0


def best_us(action: Callable[[], object], number: int) -> float:
    return round(min(timeit.repeat(action, number=number, repeat=5)) / number * 1e6, 1)


def records() -> list[OomRecord]:
    return [
        OomRecord(
            "1000",
            "acme",
            "ml-pipeline",
            "main",
            f"test-{i % 50}",
            f"0b1c2d3e-4f50-6172-8394-{i:012}",
            NOW - RECORDS + i,
            4.0 * 2**30,
            2.0 * 2**30,
            i % 10 != 0,
        )
        for i in range(RECORDS)
    ]


def main() -> int:
    running = runner_pod(RunnerJob())
    running["metadata"]["uid"] = "uid-running"
    running["status"] = {"containerStatuses": [{"name": "build", "state": {"running": {}}}]}
    killed = runner_pod(RunnerJob())
    killed["metadata"]["uid"] = "uid-killed"
    killed["status"] = {
        "containerStatuses": [
            {
                "name": "build",
                "state": {
                    "terminated": {
                        "reason": "OOMKilled",
                        "exitCode": 137,
                        "finishedAt": "2026-11-26T10:05:00Z",
                    }
                },
            }
        ]
    }
    stored = records()
    data = to_data(stored)
    new = [OomRecord("1000", "acme", "ml-pipeline", "main", "x", "uid-new", NOW, None, None, True)]

    def warm() -> dict[str, str]:
        return to_data(bound(merge(new, stored), NOW, WINDOW, RECORDS).kept)

    def cold() -> dict[str, str]:
        encode.cache_clear()
        theirs = from_data(data)
        return to_data(bound(merge(new, theirs), NOW, WINDOW, RECORDS).kept)

    result = {
        "scenario": "oom_records",
        "cores": os.cpu_count(),
        "detect_no_kill_us": best_us(lambda: oom_of(running, (), NOW), 20000),
        "detect_oom_killed_us": best_us(lambda: oom_of(killed, (), NOW), 5000),
        "records": RECORDS,
        "stored_bytes": sum(len(k) + len(v) for k, v in data.items()),
        "flush_merge_cold_ms": round(best_us(cold, 3) / 1000, 1),
        "flush_merge_warm_ms": round(best_us(warm, 3) / 1000, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
