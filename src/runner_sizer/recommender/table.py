"""The recommendation table: built once per refresh, looked up per request. Pure.

Lookups fall back from (project, ref, job) to (project, any ref, job), then to
nothing (404: cold start). Without a project id, root namespace + project name
must map to exactly one project in the window, since that pair is not unique.

As in the backtest, an exact identity answers only with `min_runs` runs of its
own; before that the job's answer over every ref does, with every ref's OOM
kills. A kill alone (a job with no runs in the window) is an answer too: the bump.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from runner_sizer.history.ooms import OomRecord
from runner_sizer.recommender.ledger import IdentifiedRun
from runner_sizer.recommender.ooms import group_kills
from runner_sizer.recommender.strategy import Kill, Run, Sizing, StrategyParams, recommend
from runner_sizer.recommender.trace import rfc3339
from runner_sizer.webhook.quantity import format_cpu, format_memory

K = TypeVar("K", bound=Hashable)


class Outcome(StrEnum):
    EXACT = "exact"
    ANY_REF = "any_ref"
    COLD = "cold"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Table:
    built_at: float
    exact: Mapping[tuple[str, str, str], bytes] = field(default_factory=dict)
    any_ref: Mapping[tuple[str, str], bytes] = field(default_factory=dict)
    projects: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    identities: int = 0
    runs: int = 0
    oom_bumps: int = 0  # answers (exact and any-ref) an OOM kill raised
    unusable_ooms: int = 0  # OOM records with neither memory limit nor request

    def lookup(
        self, org: str, repo: str, ref: str, job: str, project_id: str | None
    ) -> tuple[bytes | None, Outcome]:
        """The answer body, or None, and how it was found."""
        if project_id is None:
            candidates = self.projects.get((org, repo), frozenset())
            if len(candidates) > 1:
                return None, Outcome.AMBIGUOUS
            if not candidates:
                return None, Outcome.COLD
            (project_id,) = candidates
        body = self.exact.get((project_id, ref, job))
        if body is not None:
            return body, Outcome.EXACT
        body = self.any_ref.get((project_id, job))
        return (body, Outcome.ANY_REF) if body is not None else (None, Outcome.COLD)


def answer_body(sizing: Sizing) -> bytes:
    """A `Recommendation` of docs/receiver-openapi.yaml; `oom` while a kill's bump holds."""
    requests: dict[str, str] = {}
    if sizing.cpu is not None:
        requests["cpu"] = format_cpu(sizing.cpu)
    if sizing.memory is not None:
        requests["memory"] = format_memory(sizing.memory)
    body: dict[str, object] = {"requests": requests}
    if sizing.memory_limit is not None:
        body["limits"] = {"memory": format_memory(sizing.memory_limit)}
    if sizing.oom_floor is not None and sizing.killed_at is not None:
        body["oom"] = {
            "memory_floor": format_memory(sizing.oom_floor),
            "killed_at": rfc3339(sizing.killed_at),
        }
    return json.dumps(body, separators=(",", ":")).encode()


def _answers(
    groups: Mapping[K, list[Run]],
    kills: Mapping[K, list[Kill]],
    params: StrategyParams,
    min_runs: int,
) -> tuple[dict[K, bytes], int]:
    """Answers of identities with at least `min_runs` runs, and how many a kill raised."""
    answers: dict[K, bytes] = {}
    bumped = 0
    for key, runs in groups.items():
        sizing = recommend(runs, params, kills.get(key, ()))
        if sizing is not None and sizing.runs >= min_runs:
            answers[key] = answer_body(sizing)
            bumped += sizing.oom_floor is not None
    return answers, bumped


def build_table(
    runs: Iterable[IdentifiedRun],
    params: StrategyParams,
    now: float,
    ooms: Iterable[OomRecord] = (),
) -> Table:
    exact: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    any_ref: dict[tuple[str, str], list[Run]] = defaultdict(list)
    projects: dict[tuple[str, str], set[str]] = defaultdict(set)
    count = 0
    for item in runs:
        who = item.identity
        exact[(who.project_id, who.ref, who.job)].append(item.run)
        any_ref[(who.project_id, who.job)].append(item.run)
        projects[(who.org, who.repo)].add(who.project_id)
        count += 1
    kills = group_kills(ooms)
    identities = len(exact)
    for key in kills.any_ref:
        any_ref.setdefault(key, [])  # a kill alone is an answer too
    for pair, ids in kills.projects.items():
        projects[pair] |= ids
    exact_answers, exact_bumps = _answers(exact, kills.exact, params, params.min_runs)
    any_ref_answers, any_ref_bumps = _answers(any_ref, kills.any_ref, params, 0)
    return Table(
        built_at=now,
        exact=exact_answers,
        any_ref=any_ref_answers,
        projects={k: frozenset(v) for k, v in projects.items()},
        identities=identities,
        runs=count,
        oom_bumps=exact_bumps + any_ref_bumps,
        unusable_ooms=kills.unusable,
    )
