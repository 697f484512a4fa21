"""OOM kills of build containers, as kept facts: codec, bounds, merge. Pure.

One record per kill: the key is the pod's uid (a build container ends once: a
runner pod runs it with `restartPolicy: Never`), the entry one line of JSON.
Readers skip what they cannot read, so a newer writer's fields or a hand-edited
entry never stop anyone.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# ConfigMaps are limited to 1 MiB in total; leave room for metadata.
DEFAULT_MAX_BYTES = 900 * 1024
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_TEXT_FIELDS = {"project_id": "p", "org": "o", "repo": "r", "ref": "ref", "job": "j"}


@dataclass(frozen=True)
class OomRecord:
    project_id: str
    org: str
    repo: str
    ref: str
    job: str
    pod_uid: str
    at: float  # unix seconds the build container ended
    memory_limit: float | None  # bytes; None when the container had none
    memory_request: float | None
    certain: bool  # False: exit 137 without `OOMKilled` (suspected)


@dataclass(frozen=True)
class Bounded:
    kept: list[OomRecord]  # oldest first
    evicted: list[OomRecord]


def _number(value: float) -> int | float:
    """Whole numbers without `.0` (an int is a float to the type checker, too)."""
    return int(value) if float(value).is_integer() else value


# Every flush sizes and writes all records; each is encoded once.
@functools.lru_cache(maxsize=16384)
def encode(record: OomRecord) -> str:
    fields: dict[str, Any] = {short: getattr(record, name) for name, short in _TEXT_FIELDS.items()}
    fields["at"] = _number(record.at)
    if record.memory_limit is not None:
        fields["lim"] = _number(record.memory_limit)
    if record.memory_request is not None:
        fields["req"] = _number(record.memory_request)
    fields["c"] = record.certain
    # ASCII only: a record set stores one record a line, and a raw U+2028 is a line break.
    return json.dumps(fields, separators=(",", ":"))


def _amount(value: object) -> float | None:
    """A non-negative finite number (None if absent); ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(value)
    return float(value)


def decode(key: str, value: str) -> OomRecord | None:
    """One data item → a record; None when it is not one."""
    if not _DATA_KEY.match(key):
        return None
    try:
        fields = json.loads(value)
        texts = {name: fields[short] for name, short in _TEXT_FIELDS.items()}
        at, certain = fields["at"], fields["c"]
        if not all(isinstance(t, str) for t in texts.values()) or not isinstance(certain, bool):
            return None
        when = _amount(at)
        limit, request = _amount(fields.get("lim")), _amount(fields.get("req"))
    except (ValueError, TypeError, KeyError):
        return None
    if when is None:
        return None
    return OomRecord(
        pod_uid=key,
        at=when,
        memory_limit=limit,
        memory_request=request,
        certain=certain,
        **texts,
    )


def to_data(records: Iterable[OomRecord]) -> dict[str, str]:
    return {record.pod_uid: encode(record) for record in records}


def from_data(data: Mapping[str, str]) -> list[OomRecord]:
    """The readable records, oldest first; malformed entries are skipped."""
    records = (decode(k, v) for k, v in data.items() if isinstance(v, str))
    return sorted((r for r in records if r is not None), key=lambda r: (r.at, r.pod_uid))


def merge(ours: Iterable[OomRecord], theirs: Iterable[OomRecord]) -> list[OomRecord]:
    """The union of two writers' records by pod uid (ours win a tie), oldest first."""
    union = {r.pod_uid: r for r in theirs} | {r.pod_uid: r for r in ours}
    return sorted(union.values(), key=lambda r: (r.at, r.pod_uid))


def _item_bytes(record: OomRecord) -> int:
    return len(record.pod_uid.encode()) + len(encode(record).encode())


def bound(
    records: Iterable[OomRecord],
    now: float,
    window: float,
    max_records: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Bounded:
    """Drop records older than `window`, then the oldest until both caps hold."""
    ordered = sorted(records, key=lambda r: (r.at, r.pod_uid))
    cutoff = now - window
    evicted = [r for r in ordered if r.at < cutoff]
    kept = ordered[len(evicted) :]
    surplus = max(0, len(kept) - max_records)
    evicted += kept[:surplus]
    kept = kept[surplus:]
    total = sum(_item_bytes(r) for r in kept)
    dropped = 0
    while dropped < len(kept) and total > max_bytes:
        total -= _item_bytes(kept[dropped])
        dropped += 1
    return Bounded(kept[dropped:], evicted + kept[:dropped])
