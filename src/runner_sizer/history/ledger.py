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


def drop_nodes(history: History, nodes: set[str], keys: Iterable[str] | None = None) -> int:
    """Forget deleted nodes (in `keys` only, if given); returns how many placements went.

    An entry without them keeps its list, so what is remembered per list (sizes,
    encodings) still holds: a flush passes every tombstoned node, every time.
    """
    dropped = 0
    if not nodes:
        return dropped
    for key in list(history if keys is None else keys):
        placements = history[key]
        kept = [p for p in placements if p.node not in nodes]
        if len(kept) == len(placements):
            continue
        dropped += len(placements) - len(kept)
        if kept:
            history[key] = kept
        else:
            del history[key]
    return dropped


def merge(
    ours: Mapping[str, list[Placement]], theirs: Mapping[str, list[Placement]], max_nodes: int
) -> History:
    """The union of two writers' histories: no entry of either is lost.

    Lists are never changed in place (`record` and `drop_nodes` replace them),
    so an entry only one side has, or the same list on both, is shared as it is:
    a flush over 50,000 keys merges only the few that differ.
    """
    merged = dict(theirs)
    for key, placements in ours.items():
        other = merged.get(key)
        if other is None or other is placements:
            merged[key] = placements
        elif other != placements:
            merged[key] = _merged_placements([*placements, *other], max_nodes)
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


def evict_surplus(history: History, max_keys: int) -> list[str]:
    """Drop the least recently used keys beyond `max_keys`; cheap (no sizes)."""
    surplus = len(history) - max_keys
    if surplus <= 0:
        return []
    oldest = heapq.nsmallest(surplus, history, key=lambda k: history[k][0].at)
    for key in oldest:
        del history[key]
    return oldest


def entry_bytes(key: str, placements: list[Placement]) -> int:
    """The bytes of a key and its value as stored (node names are ASCII)."""
    value = sum(len(p.node) + len(str(p.at)) + 2 for p in placements) - 1
    return len(to_configmap_key(key)) + value


class EntrySizes:
    """`entry_bytes` of a whole history, remembered per entry list between calls.

    Lists are replaced, never changed in place, so the same list has the same
    size: a bound checked every flush over 50,000 keys measures only new ones.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[list[Placement], int]] = {}

    def of(self, history: Mapping[str, list[Placement]]) -> dict[str, int]:
        known, fresh = self._known, {}
        for key, placements in history.items():
            entry = known.get(key)
            if entry is None or entry[0] is not placements:
                entry = (placements, entry_bytes(key, placements))
            fresh[key] = entry
        self._known = fresh
        return {key: size for key, (_, size) in fresh.items()}


def evict(
    history: History,
    max_keys: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
    sizes: EntrySizes | None = None,
) -> list[str]:
    """Drop least-recently-used keys until both bounds hold; returns them."""
    evicted = evict_surplus(history, max_keys)
    sizes_now = (sizes or EntrySizes()).of(history)
    total = sum(sizes_now.values())
    if total <= max_bytes:
        return evicted
    for key in sorted(history, key=lambda k: history[k][0].at):
        if total <= max_bytes:
            break
        total -= sizes_now[key]
        del history[key]
        evicted.append(key)
    return evicted
