"""The recommendation table: built once per refresh, looked up per request. Pure.

Lookups fall back from (project, ref, job) to (project, any ref, job), then to
nothing (404: cold start). Without a project id, root namespace + project name
must map to exactly one project in the window, since that pair is not unique.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from runner_sizer.recommender.ledger import IdentifiedRun
from runner_sizer.recommender.strategy import Run, Sizing, StrategyParams, recommend
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
    """A `Recommendation` of docs/receiver-openapi.yaml."""
    requests: dict[str, str] = {}
    if sizing.cpu is not None:
        requests["cpu"] = format_cpu(sizing.cpu)
    if sizing.memory is not None:
        requests["memory"] = format_memory(sizing.memory)
    body: dict[str, object] = {"requests": requests}
    if sizing.memory_limit is not None:
        body["limits"] = {"memory": format_memory(sizing.memory_limit)}
    return json.dumps(body, separators=(",", ":")).encode()


def _answers(groups: Mapping[K, list[Run]], params: StrategyParams) -> dict[K, bytes]:
    answers: dict[K, bytes] = {}
    for key, runs in groups.items():
        sizing = recommend(runs, params)
        if sizing is not None:
            answers[key] = answer_body(sizing)
    return answers


def build_table(runs: Iterable[IdentifiedRun], params: StrategyParams, now: float) -> Table:
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
    return Table(
        built_at=now,
        exact=_answers(exact, params),
        any_ref=_answers(any_ref, params),
        projects={k: frozenset(v) for k, v in projects.items()},
        identities=len(exact),
        runs=count,
    )
