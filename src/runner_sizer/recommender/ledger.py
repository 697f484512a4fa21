"""What the recommender knows between refreshes: runs, and pods still running. Pure.

Usage facts of one pod can arrive over several chunks and refreshes; they merge
(earliest first pair, latest last pair, highest peak) until the pod's last sample
is older than `FINISHED_AFTER`, when it becomes a finished run of its identity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from runner_sizer.recommender.promql import Fact, Identity, PodKey
from runner_sizer.recommender.strategy import Run

# A live container is scraped every 10-30 s; one silent this long has ended. At least
# the 5 min lookback, so a subquery that still sees a finished run's last sample
# meets it in `runs`, not as a new pod.
FINISHED_AFTER = 300.0
CPU_KINDS = {Fact.FIRST_CPU: "cpu", Fact.LAST_CPU: "cpu", Fact.PEAK_MEMORY: "memory"}


@dataclass(frozen=True, slots=True)
class IdentifiedRun:
    identity: Identity
    run: Run


@dataclass(frozen=True)
class Settled:
    finished: int
    unidentified: int


def merge(old: Mapping[Fact, float], new: Mapping[Fact, float]) -> dict[Fact, float]:
    merged = dict(old)
    first, last = Fact.FIRST_TIME, Fact.LAST_TIME
    if first in new and (first not in old or new[first] < old[first]):
        merged.update({k: new[k] for k in (first, Fact.FIRST_CPU) if k in new})
    if last in new and (last not in old or new[last] > old[last]):
        merged.update({k: new[k] for k in (last, Fact.LAST_CPU) if k in new})
    if Fact.PEAK_MEMORY in new:
        merged[Fact.PEAK_MEMORY] = max(new[Fact.PEAK_MEMORY], old.get(Fact.PEAK_MEMORY, 0.0))
    return merged


def to_run(facts: Mapping[Fact, float]) -> Run | None:
    """A run needs its last sample's time; mean cores needs two samples."""
    end = facts.get(Fact.LAST_TIME)
    if end is None:
        return None
    cores = None
    keys = (Fact.FIRST_TIME, Fact.FIRST_CPU, Fact.LAST_CPU)
    if all(k in facts for k in keys) and end > facts[Fact.FIRST_TIME]:
        used = facts[Fact.LAST_CPU] - facts[Fact.FIRST_CPU]
        cores = max(used, 0.0) / (end - facts[Fact.FIRST_TIME])
    return Run(
        end=end,
        mean_cores=cores,
        peak_memory=facts.get(Fact.PEAK_MEMORY),
        start=facts.get(Fact.FIRST_TIME),
    )


@dataclass
class Ledger:
    covered_until: float | None = None
    runs: dict[PodKey, IdentifiedRun] = field(default_factory=dict)
    pending: dict[PodKey, dict[Fact, float]] = field(default_factory=dict)
    identities: dict[PodKey, tuple[Identity, float]] = field(default_factory=dict)
    # Newest query time at which each kind of series (cpu, memory, identity) answered.
    last_seen: dict[str, float] = field(default_factory=dict)
    _interned: dict[Identity, Identity] = field(default_factory=dict)

    def absorb(
        self,
        usage: Mapping[PodKey, Mapping[Fact, float]],
        identities: Mapping[PodKey, Identity],
        at: float,
    ) -> None:
        """One chunk's answers, queried at `at`; facts of runs already finished are old news."""
        for pod, facts in usage.items():
            if pod not in self.runs:
                self.pending[pod] = merge(self.pending.get(pod, {}), facts)
            for fact in facts:
                if fact in CPU_KINDS:
                    self.last_seen[CPU_KINDS[fact]] = at
        for pod, identity in identities.items():
            if pod in self.runs:
                continue
            self.identities[pod] = (self._interned.setdefault(identity, identity), at)
        if identities:
            self.last_seen["identity"] = at
        self.covered_until = at

    def settle(self, now: float, window: float) -> Settled:
        """Finish pods silent for FINISHED_AFTER; forget what is older than the window."""
        finished = unidentified = 0
        for pod, facts in list(self.pending.items()):
            end = facts.get(Fact.LAST_TIME)
            if end is not None and end > now - FINISHED_AFTER:
                continue
            del self.pending[pod]
            run, known = to_run(facts), self.identities.pop(pod, None)
            if run is None:  # memory without cpu: no time to place it by
                continue
            if known is None:
                unidentified += 1
                continue
            self.runs[pod] = IdentifiedRun(known[0], run)
            finished += 1
        oldest = now - window
        self.runs = {p: r for p, r in self.runs.items() if r.run.end >= oldest}
        self.identities = {p: i for p, i in self.identities.items() if i[1] >= oldest}
        self._interned = {r.identity: r.identity for r in self.runs.values()}
        self._interned |= {i[0]: i[0] for i in self.identities.values()}
        return Settled(finished, unidentified)

    def missing(self, now: float, window: float) -> list[str]:
        """Kinds of series not seen within the window."""
        kinds = ("cpu", "memory", "identity")
        return [k for k in kinds if self.last_seen.get(k, -math.inf) < now - window]
