"""A keyed record set (key → one-line entry) stored across ConfigMaps; pure layout logic.

One object can hold 1 MiB, and every write of it sends all of it to every
watcher. So the records live in a head and shards:

- the head `<name>` holds the layout and the *delta*: the records that differ
  from the shards (an empty entry deletes). A flush rewrites only the head;
- shard `<name>-<bank><i>` holds the records whose key hashes to `i`. When the
  delta outgrows its bound, a compaction rewrites the shards that differ and
  empties the delta.

A change of shard count (or the move from a single ConfigMap, whose data items
are the records themselves) compacts into the other bank of names, then points
the head at it, then deletes the old bank: at every moment the head names a
complete layout, so a crash anywhere loses nothing. The bank names are fixed
(2 x MAX_SHARDS), so RBAC can list every name the layout can ever use.

Keys are ConfigMap-key-safe (no whitespace); entries hold no newline.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_SHARDS = 32
DEFAULT_SHARDS = 16
# The delta's bound, chosen by bench/history.py: a larger delta is sent at every
# flush, a smaller one compacts (rewrites every shard random keys touch) sooner.
DEFAULT_COMPACT_AFTER = 512 * 1024
COMPACT_FRACTION = 8
# What one shard may hold on average: the 1 MiB object limit less room for
# metadata and for keys hashing unevenly.
SHARD_BYTES = 768 * 1024
BANKS = ("a", "b")
LAYOUT_KEY = "layout"
DELTA_KEY = "delta"
RECORDS_KEY = "records"

Records = dict[str, str]


@dataclass(frozen=True)
class Layout:
    shards: int
    bank: str
    generation: int = 0  # bumped by every compaction: a writer that missed one re-reads

    def names(self, base: str) -> list[str]:
        return [shard_name(base, self.bank, index) for index in range(self.shards)]

    def format(self) -> str:
        return f"shards={self.shards} bank={self.bank} generation={self.generation}"


def shard_name(base: str, bank: str, index: int) -> str:
    return f"{base}-{bank}{index}"


def every_name(base: str) -> list[str]:
    """The head and every shard name any layout can use (for RBAC resourceNames)."""
    return [base, *(shard_name(base, bank, i) for bank in BANKS for i in range(MAX_SHARDS))]


def parse_layout(text: str) -> Layout | None:
    """The layout a head names; None when unreadable."""
    fields = dict(part.partition("=")[::2] for part in text.split())
    try:
        layout = Layout(int(fields["shards"]), fields["bank"], int(fields.get("generation", 0)))
    except (KeyError, ValueError):
        return None
    return layout if 0 < layout.shards <= MAX_SHARDS and layout.bank in BANKS else None


def shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode()) % shards


def encode(records: Mapping[str, str]) -> str:
    return "".join(f"{key} {entry}\n" for key, entry in sorted(records.items()))


def decode(text: str) -> Records:
    """Records of an object's text; lines without a key are skipped."""
    records: Records = {}
    for line in text.split("\n"):
        key, _, entry = line.partition(" ")
        if key:
            records[key] = entry
    return records


def records_bytes(records: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) + 2 for k, v in records.items())


def apply_edits(records: Records, edits: Mapping[str, str]) -> None:
    """Change `records` in place: each edit sets its entry, an empty one deletes it."""
    for key, entry in edits.items():
        if entry:
            records[key] = entry
        else:
            records.pop(key, None)


def overlay(base: Mapping[str, str], delta: Mapping[str, str]) -> Records:
    """The records a reader sees: the shards with the delta applied."""
    merged = dict(base)
    apply_edits(merged, delta)
    return merged


def difference(base: Mapping[str, str], desired: Mapping[str, str]) -> Records:
    """The delta that turns `base` into `desired` (deletions as empty entries)."""
    delta = {key: entry for key, entry in desired.items() if base.get(key) != entry}
    delta.update((key, "") for key in base if key not in desired)
    return delta


def partition(records: Mapping[str, str], shards: int) -> list[Records]:
    parts: list[Records] = [{} for _ in range(shards)]
    for key, entry in records.items():
        parts[shard_of(key, shards)][key] = entry
    return parts


@dataclass
class Stored:
    """What is stored: the head's layout and delta, and each shard's records.

    `layout` None is the single-ConfigMap layout: its records are all in `delta`.
    `base` (the shards' records together) and `base_bytes` are kept with it: a
    flush that writes only the head reuses them (`with_head`).
    """

    layout: Layout | None = None
    delta: Records = field(default_factory=dict)
    shards: dict[str, Records] = field(default_factory=dict)  # by object name

    def __post_init__(self) -> None:
        self.base: Records = {}
        for records in self.shards.values():
            self.base.update(records)
        self.base_bytes = records_bytes(self.base)

    def records(self) -> Records:
        return overlay(self.base, self.delta)

    def with_head(self, layout: Layout, delta: Records) -> Stored:
        """The same shards under another head."""
        after = copy.copy(self)
        after.layout, after.delta = layout, delta
        return after


def head_data(layout: Layout, delta: Mapping[str, str]) -> dict[str, str]:
    return {LAYOUT_KEY: layout.format(), DELTA_KEY: encode(delta)}


def read_head(data: Mapping[str, str]) -> tuple[Layout | None, Records]:
    """A head's layout and delta; a head without a layout is a single-ConfigMap record set."""
    if LAYOUT_KEY not in data:
        return None, {key: entry for key, entry in data.items() if entry}
    return parse_layout(data[LAYOUT_KEY]), decode(data.get(DELTA_KEY, ""))


@dataclass(frozen=True)
class Plan:
    """The writes that store `desired`, in order: shards, then the head, then deletions."""

    layout: Layout
    delta: Records
    shards: dict[str, Records]  # object name → its records, only those to write
    deletions: list[str]

    def objects(self) -> int:
        return len(self.shards) + 1 + len(self.deletions)


def stored_after(stored: Stored, step: Plan, base: str) -> Stored:
    """What is stored once every write of `step` is done: each shard of its layout as
    written now, or as it was."""
    if not step.shards and stored.layout is not None and step.layout.bank == stored.layout.bank:
        return stored.with_head(step.layout, step.delta)
    shards = {n: step.shards.get(n, stored.shards.get(n, {})) for n in step.layout.names(base)}
    return Stored(step.layout, step.delta, shards)


def edited_delta(stored: Stored, edits: Mapping[str, str]) -> Records:
    """The head's delta once `edits` (empty entries delete) apply: an entry the shards
    already hold drops out of it."""
    delta = dict(stored.delta)
    for key, entry in edits.items():
        if stored.base.get(key, "") == entry:
            delta.pop(key, None)
        else:
            delta[key] = entry
    return delta


def plan(
    base: str, stored: Stored, edits: Mapping[str, str], shards: int, compact_after: int
) -> Plan:
    """How to apply `edits` (key → entry, empty deletes) over `stored` with `shards`
    shards, for head `base`.

    The head alone while the delta stays within `compact_after` bytes and an
    eighth of the shards' bytes, at a cost in the edits and the delta, not in
    the records; past either a compaction, in place for the same shard count (a
    shard written before a crash only holds newer entries than the head's
    delta, which still wins), or into the other bank for another count or from
    a single ConfigMap.
    """
    layout = stored.layout
    if layout is not None and layout.shards == shards:
        delta = edited_delta(stored, edits)
        # Past an eighth of the shards, the delta sent at every flush costs more
        # than compacting sooner (bench/history.py, layout_model: 63 -> 18 % of one
        # object at 5,000 keys; 5.5 % at 50,000 either way).
        bound = min(compact_after, stored.base_bytes // COMPACT_FRACTION)
        if records_bytes(delta) <= bound:
            return Plan(layout, delta, {}, [])
        target = Layout(shards, layout.bank, layout.generation + 1)
        desired = overlay(stored.base, delta)
        parts = dict(zip(target.names(base), partition(desired, shards), strict=True))
        changed = {name: part for name, part in parts.items() if stored.shards.get(name) != part}
        return Plan(target, {}, changed, [])
    bank = BANKS[1] if layout is not None and layout.bank == BANKS[0] else BANKS[0]
    target = Layout(shards, bank, layout.generation + 1 if layout else 1)
    # Every shard of the new bank is written: one left from an interrupted move is stale.
    desired = overlay(stored.records(), edits)
    parts = dict(zip(target.names(base), partition(desired, shards), strict=True))
    return Plan(target, {}, parts, layout.names(base) if layout else [])
