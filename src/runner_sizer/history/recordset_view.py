"""A reader's copy of a record set, fed object by object (pure; the watches are elsewhere).

Each update says which records changed, so a reader re-parses only those; None
means "everything", after a move to another layout. A head's delta (up to ~5,000
lines, sent at every flush) is compared line by line with the last one, and only
the lines that differ are parsed. A move is followed only
once every shard of the new layout has been seen: until then the old copy
stays in service, so readers never see a half-moved set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runner_sizer.history.recordset import (
    DELTA_KEY,
    LAYOUT_KEY,
    RECORDS_KEY,
    Layout,
    Records,
    decode,
    encode,
    overlay,
    parse_layout,
    read_head,
    shard_name,
    shard_of,
)

Changed = set[str] | None  # None: every record may have changed


def _lines(text: str) -> set[str]:
    return set(text.split("\n")) - {""}


def _differing(old: Mapping[str, str], new: Mapping[str, str]) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


@dataclass
class _Pending:
    layout: Layout | None
    delta: Records
    shards: dict[str, Records | None]  # None: not seen yet


class RecordSetCopy:
    def __init__(self, base: str) -> None:
        self._base = base
        self._layout: Layout | None = None
        self._delta: Records = {}
        self._delta_lines: set[str] | None = set()  # the delta's text lines; None: not known
        self._shards: dict[str, Records] = {}
        self._pending: _Pending | None = None

    def complete(self) -> bool:
        """Every object the head names has been seen."""
        return self._pending is None

    def wanted(self) -> list[str]:
        """The shard objects to follow: the new layout's during a move."""
        layout = self._pending.layout if self._pending else self._layout
        return layout.names(self._base) if layout else []

    def head(self, data: Mapping[str, str] | None) -> Changed:
        """The head as it is now (None: deleted)."""
        data = data or {}
        if LAYOUT_KEY in data and self._pending is None:
            layout = parse_layout(data[LAYOUT_KEY])
            if layout is not None and layout.names(self._base) == list(self._shards):
                self._layout = layout
                return self._take_delta(data.get(DELTA_KEY, ""))
        layout, delta = read_head(data)
        names = layout.names(self._base) if layout else []
        if self._pending is None and names == list(self._shards):
            changed = _differing(self._delta, delta)
            self._layout, self._delta, self._delta_lines = layout, delta, None
            return changed
        seen = self._pending.shards if self._pending else {}
        self._pending = _Pending(layout, delta, {name: seen.get(name) for name in names})
        return self._move()

    def _take_delta(self, text: str) -> set[str]:
        """The delta of a head of the same layout, from its text; the keys that changed."""
        lines = _lines(text)
        known = self._delta_lines
        if known is None:
            known = _lines(encode(self._delta))
        changed = set()
        for line in known - lines:
            key, _, entry = line.partition(" ")
            if self._delta.get(key) == entry:
                del self._delta[key]
                changed.add(key)
        for line in lines - known:
            key, _, entry = line.partition(" ")
            if key:
                self._delta[key] = entry
                changed.add(key)
        self._delta_lines = lines
        return changed

    def shard(self, name: str, data: Mapping[str, str] | None) -> Changed:
        """Shard `name` as it is now (None: deleted)."""
        records = decode((data or {}).get(RECORDS_KEY, ""))
        if self._pending is not None:
            if name in self._pending.shards:
                self._pending.shards[name] = records
            return self._move()
        if name not in self._shards:
            return set()  # a shard of a layout left behind
        old, self._shards[name] = self._shards[name], records
        return {k for k in _differing(old, records) if k not in self._delta}

    def _move(self) -> Changed:
        pending = self._pending
        if pending is None or any(r is None for r in pending.shards.values()):
            return set()
        self._layout, self._delta, self._delta_lines = pending.layout, pending.delta, None
        self._shards = {name: records or {} for name, records in pending.shards.items()}
        self._pending = None
        return None

    def entry(self, key: str) -> str | None:
        """A record's entry (None when there is none)."""
        if key in self._delta:
            return self._delta[key] or None
        if self._layout is None:
            return None
        name = shard_name(self._base, self._layout.bank, shard_of(key, self._layout.shards))
        return self._shards.get(name, {}).get(key)

    def records(self) -> Records:
        base: Records = {}
        for records in self._shards.values():
            base.update(records)
        return overlay(base, self._delta)
