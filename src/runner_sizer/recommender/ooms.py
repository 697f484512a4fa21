"""OOM records (the recorder's) as the strategy's kills, keyed as the table keys runs. Pure.

A kill's bump is relative to the memory limit the killed run had. A run without a
limit was killed by the node's OOM killer, not its own: its request stands in for
the limit, so the next request is bumped from it. A run with neither was not sized
by anyone and gives nothing to bump from: it is left out (and counted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from runner_sizer.history.ooms import OomRecord
from runner_sizer.recommender.strategy import Kill

Exact = tuple[str, str, str]  # project id, ref, job
AnyRef = tuple[str, str]  # project id, job


class OomSourceError(RuntimeError):
    """The records could not be read; the message is safe to log."""


def as_kill(record: OomRecord) -> Kill | None:
    """The kill of one record; None when the run had neither memory limit nor request."""
    bound = record.memory_limit if record.memory_limit is not None else record.memory_request
    if bound is None or bound <= 0:
        return None
    return Kill(at=record.at, limit=bound, suspected=not record.certain)


@dataclass
class Kills:
    exact: dict[Exact, list[Kill]] = field(default_factory=dict)
    any_ref: dict[AnyRef, list[Kill]] = field(default_factory=dict)
    projects: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (org, repo) → ids
    unusable: int = 0  # records with nothing to bump from


def group_kills(records: Iterable[OomRecord]) -> Kills:
    kills = Kills()
    for record in records:
        kill = as_kill(record)
        if kill is None:
            kills.unusable += 1
            continue
        project = record.project_id
        kills.exact.setdefault((project, record.ref, record.job), []).append(kill)
        kills.any_ref.setdefault((project, record.job), []).append(kill)
        kills.projects.setdefault((record.org, record.repo), set()).add(project)
    return kills
