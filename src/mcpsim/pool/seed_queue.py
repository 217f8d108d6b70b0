"""Announced seeds not started yet, oldest first, bounded; taking the next one or one by key is O(1).

A session whose seed was announced but not started yet starts it itself and takes it out of the queue; with
a plain deque that was a scan of the whole queue on every new session (2.7 s with a million queued). Here each
entry has a ticket: `_order` holds the entries by ticket (an ordered dict pops its oldest entry and deletes any
entry in O(1)), `_by_key` the tickets of each (seed, config), oldest first, so the oldest entry of a key is
found without a scan. The config of one announcement is kept once, shared by its seeds (a copy is handed out
when a seed is started). A queued seed costs about 340 bytes, so the total limit keeps the queue under 35 MB.
"""

import itertools
from collections import OrderedDict, deque
from typing import Any

from mcpsim.errors import QueueFull, TooManySeeds

MAX_SEEDS_PER_ANNOUNCE = 10_000
"""Seeds one announcement may carry; more is refused with 413."""
MAX_QUEUED_SEEDS = 100_000
"""Seeds queued at once over all announcements; an announcement that would pass it is refused with 429."""

WarmKey = tuple[int | None, str]
"""(seed, config as canonical JSON): what a session must match to claim a warm instance."""


class SeedQueue:
    def __init__(self, per_announce: int = MAX_SEEDS_PER_ANNOUNCE, total: int = MAX_QUEUED_SEEDS) -> None:
        self.per_announce, self.total = per_announce, total
        self._tickets = itertools.count()
        self._order: OrderedDict[int, tuple[int, str, dict[str, Any]]] = OrderedDict()
        self._by_key: dict[WarmKey, int | deque[int]] = {}
        """The tickets of each key, oldest first: one int, or a deque for a key queued more than once (a deque
        per key would cost 600 bytes even for one ticket)."""

    def __len__(self) -> int:
        return len(self._order)

    def check(self, count: int) -> None:
        """Raise `TooManySeeds` or `QueueFull` if `count` more seeds may not be announced now."""
        if count > self.per_announce:
            raise TooManySeeds(
                f"an announcement may carry at most {self.per_announce} seeds, this one has {count}: split it"
            )
        if len(self._order) + count > self.total:
            raise QueueFull(
                f"at most {self.total} announced seeds may wait to start; {len(self._order)} are queued, so "
                f"{count} more do not fit: retry once sessions have taken some"
            )

    def extend(self, seeds: list[int], config_key: str, config: dict[str, Any]) -> None:
        """Queue `seeds` with one config, all or none (see `check`)."""
        self.check(len(seeds))
        shared = dict(config)
        for seed in seeds:
            ticket = next(self._tickets)
            self._order[ticket] = (seed, config_key, shared)
            self._push((seed, config_key), ticket)

    def popleft(self) -> tuple[int, dict[str, Any]]:
        """The oldest queued seed and (a copy of) its config; IndexError when the queue is empty."""
        if not self._order:
            raise IndexError("pop from an empty seed queue")
        _, (seed, config_key, config) = self._order.popitem(last=False)
        self._take((seed, config_key))  # the oldest entry overall is the oldest of its key
        return seed, dict(config)

    def popleft_entry(self) -> tuple[int, str, dict[str, Any]]:
        """The oldest queued seed, its config key and (a copy of) its config; IndexError when empty."""
        if not self._order:
            raise IndexError("pop from an empty seed queue")
        _, (seed, config_key, config) = self._order.popitem(last=False)
        self._take((seed, config_key))
        return seed, config_key, dict(config)

    def remove(self, key: WarmKey) -> bool:
        """Take the oldest queued entry of `key` out (its session starts it instead); False if none is queued."""
        ticket = self._take(key)
        if ticket is None:
            return False
        del self._order[ticket]
        return True

    def _push(self, key: WarmKey, ticket: int) -> None:
        held = self._by_key.get(key)
        if held is None:
            self._by_key[key] = ticket
        elif isinstance(held, int):
            self._by_key[key] = deque((held, ticket))
        else:
            held.append(ticket)

    def _take(self, key: WarmKey) -> int | None:
        """The oldest ticket of `key`, forgotten; None if the key has none queued."""
        held = self._by_key.get(key)
        if held is None:
            return None
        if isinstance(held, int):
            del self._by_key[key]
            return held
        ticket = held.popleft()
        if len(held) == 1:
            self._by_key[key] = held[0]
        return ticket
