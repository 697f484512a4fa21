"""Pure operations on the whole history: record, forget nodes, merge writers, evict.

A history maps key → placements (distinct nodes, most recent first). A key's
recency is its newest placement; eviction drops the least recent keys.
"""

from __future__ import annotations

import datetime
import heapq
from collections.abc import Iterable, Mapping

from runner_sizer.history.keys import from_configmap_key, to_configmap_key
from runner_sizer.history.placements import Placement, parse_placements, serialize_placements

History = dict[str, list[Placement]]
# ConfigMaps are limited to 1 MiB in total; leave room for metadata.
DEFAULT_MAX_BYTES = 900 * 1024


def timestamp(moment: datetime.datetime | str) -> int:
    """Unix milliseconds of a datetime or an RFC 3339 text (0 if unreadable)."""
    if isinstance(moment, str):
        try:
            moment = datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return 0
    return int(moment.timestamp() * 1000)


def _merged_placements(placements: Iterable[Placement], max_nodes: int) -> list[Placement]:
    newest: dict[str, Placement] = {}
    for placement in placements:
        current = newest.get(placement.node)
        if current is None or placement.at > current.at:
            newest[placement.node] = placement
    return sorted(newest.values(), key=lambda p: p.at, reverse=True)[:max_nodes]


def record(history: History, key: str, node: str, at: int, max_nodes: int) -> bool:
    """Note that `key` ran on `node` at `at`; True if the history changed."""
    before = history.get(key, [])
    after = _merged_placements([Placement(node, at), *before], max_nodes)
    if after == before:
        return False
    history[key] = after
    return True


def drop_nodes(history: History, nodes: set[str], keys: Iterable[str] | None = None) -> list[str]:
    """Forget deleted nodes (in `keys` only, if given); returns the keys whose entry changed.

    An entry without them keeps its list, so what is remembered per list (sizes,
    encodings) still holds.
    """
    changed: list[str] = []
    if not nodes:
        return changed
    for key in list(history if keys is None else keys):
        placements = history[key]
        kept = [p for p in placements if p.node not in nodes]
        if len(kept) == len(placements):
            continue
        changed.append(key)
        if kept:
            history[key] = kept
        else:
            del history[key]
    return changed


def merged_entry(
    ours: list[Placement] | None, theirs: list[Placement] | None, max_nodes: int
) -> list[Placement] | None:
    """One key's entry in the union of two writers' histories; a side's own list when
    the other has none or the same (lists are never changed in place)."""
    if theirs is None or theirs is ours:
        return ours
    if ours is None or ours == theirs:
        return theirs
    return _merged_placements([*ours, *theirs], max_nodes)


def merge(
    ours: Mapping[str, list[Placement]], theirs: Mapping[str, list[Placement]], max_nodes: int
) -> History:
    """The union of two writers' histories: no entry of either is lost.

    An entry only one side has, or the same list on both, is shared as it is:
    a merge over 50,000 keys builds only the few that differ.
    """
    merged = dict(theirs)
    for key, placements in ours.items():
        merged[key] = merged_entry(placements, merged.get(key), max_nodes) or placements
    return merged


def to_data(history: Mapping[str, list[Placement]]) -> dict[str, str]:
    return {to_configmap_key(k): serialize_placements(v) for k, v in history.items() if v}


def decode_entry(stored_key: str, value: str) -> tuple[str, list[Placement]] | None:
    """One ConfigMap data item → (history key, placements); None if unusable."""
    try:
        key = from_configmap_key(stored_key)
    except ValueError:
        return None
    placements = parse_placements(value)
    return (key, placements) if placements else None


def from_data(data: Mapping[str, str]) -> History:
    return dict(entry for entry in (decode_entry(k, v) for k, v in data.items()) if entry)


def data_bytes(data: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())


def entry_bytes(key: str, placements: list[Placement]) -> int:
    """The bytes of a key and its value as stored (node names are ASCII)."""
    value = sum(len(p.node) + len(str(p.at)) + 2 for p in placements) - 1
    return len(to_configmap_key(key)) + value


class EntrySizes:
    """`entry_bytes` of each entry of a history and their total, told of every change.

    The owner of the history calls `set` for each key it changes, so a bound
    checked at every flush over 50,000 keys costs nothing while it holds.
    """

    def __init__(self, history: Mapping[str, list[Placement]] | None = None) -> None:
        self._sizes: dict[str, int] = {}
        self.total = 0
        for key, placements in (history or {}).items():
            self.set(key, placements)

    def set(self, key: str, placements: list[Placement] | None) -> None:
        """`key` now holds `placements` (None or empty: no entry)."""
        self.total -= self._sizes.pop(key, 0)
        if placements:
            size = entry_bytes(key, placements)
            self._sizes[key] = size
            self.total += size

    def of(self, key: str) -> int:
        return self._sizes.get(key, 0)


def evict_surplus(history: History, max_keys: int, sizes: EntrySizes | None = None) -> list[str]:
    """Drop the least recently used keys beyond `max_keys`; free while within it."""
    surplus = len(history) - max_keys
    if surplus <= 0:
        return []
    oldest = heapq.nsmallest(surplus, history, key=lambda k: history[k][0].at)
    for key in oldest:
        del history[key]
        if sizes is not None:
            sizes.set(key, None)
    return oldest


def evict(
    history: History,
    max_keys: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
    sizes: EntrySizes | None = None,
) -> list[str]:
    """Drop least-recently-used keys until both bounds hold; returns them.

    `sizes` must know every entry of `history`; without it they are measured now.
    """
    sizes = EntrySizes(history) if sizes is None else sizes
    evicted = evict_surplus(history, max_keys, sizes)
    if sizes.total <= max_bytes:
        return evicted
    for key in sorted(history, key=lambda k: history[k][0].at):
        if sizes.total <= max_bytes:
            break
        sizes.set(key, None)
        del history[key]
        evicted.append(key)
    return evicted
