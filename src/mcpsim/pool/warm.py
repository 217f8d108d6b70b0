"""Instances started before their sessions arrive, so a session finds its instance already initialized.

An instance is bound to its seed from its first moment (the seed is on its command line), so warming needs
the seeds ahead of time: clients announce them (`POST /api/instances {"seeds": [...], "config": {...}}`, which
`mcpsim.make` does for a dataset), and the pool starts them in the background. A session whose seed and config
match an announced instance claims it; if it is still starting, the session waits for it rather than starting
a second one. `--warm N` bounds how many unclaimed instances are kept ahead (announced seeds first; with none
queued, N instances with random seeds serve sessions that ask for no seed). Unclaimed instances end by the idle
timeout like any other, and are the first to go when `--max-instances` is reached, so nothing is ever leaked
and warming never refuses a real session. Announced seeds wait in a bounded `SeedQueue` (per announcement and
in total; beyond, the announcement is refused with 413 or 429), from which a session takes its own in O(1).

Spares (`--warm N`, seedless, default config) serve both eras. They are opened for the era of the latest client
that asked for one (`spare_version`; at first the handshake era): a 2026-07-28 spare opens as a cold 2026 start
does (`server/discover` first, initialized if the server speaks only the handshake era), so its episode is the
one a cold start would give. A claim also takes a spare of the other era where translation allows it: a 2026
client any spare (a handshake-era connection is translated, as for a handshake-only server), a handshake client
a spare whose connection was initialized (a 2026 spare of a handshake-only server), never one that speaks
2026-07-28 (a stdio process is locked to that era). So a workload of one era gets spares of its era after its
first claim, and a mixed one still hits wherever the connection can serve it.
"""

import json
import logging
from typing import Any, Protocol

import anyio
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from mcpsim.errors import PoolError
from mcpsim.pool.eras import MODERN
from mcpsim.pool.instance import Instance
from mcpsim.pool.seed_queue import SeedQueue, WarmKey
from mcpsim.pool.spec import State
from mcpsim.wire import random_seed

logger = logging.getLogger(__name__)


def warm_key(seed: int | None, config: dict[str, Any], version: str = LATEST_HANDSHAKE_VERSION) -> WarmKey:
    """(seed, config and era): a 2026-07-28 instance is claimed only by a 2026 episode, and a handshake one only by
    a handshake session. The handshake era's keys are the bare canonical config; a 2026 key appends `@<version>`
    (canonical JSON of an object ends with `}`, so the suffix cannot be confused with it)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return seed, canonical if version == LATEST_HANDSHAKE_VERSION else f"{canonical}@{version}"


def spare_key(version: str) -> WarmKey:
    return warm_key(None, {}, version)


def serves(instance: Instance, version: str) -> bool:
    """Whether a ready spare's connection can serve a client of `version` (see the module docstring)."""
    return version == MODERN or instance.era != MODERN


def version_of(config_key: str) -> str:
    """The era a warm key names (see `warm_key`)."""
    return LATEST_HANDSHAKE_VERSION if config_key.endswith("}") else config_key.rsplit("@", 1)[1]


class WarmHooks(Protocol):
    """What the warm pool needs of the pool that owns it (the narrow view, as `InstanceHooks` is for instances)."""

    @property
    def closing(self) -> bool: ...

    @property
    def live_count(self) -> int:
        """Instances whose process may run, admitted ones included: what `--max-instances` counts."""
        ...

    async def start_warm(self, seed: int, config: dict[str, Any], version: str = LATEST_HANDSHAKE_VERSION) -> Instance:
        """Start an unclaimed instance in the background, opened for a client of `version` (its failure or
        readiness is recorded when it comes); raises `PoolError` when none can start now."""
        ...


class WarmPool:
    """The announced seeds and the unclaimed instances started for them (or for `--warm N` random seeds)."""

    def __init__(self, hooks: WarmHooks, depth: int | None, max_instances: int) -> None:
        self.hooks = hooks
        self.depth = depth
        self.max_instances = max_instances
        self.queue = SeedQueue()
        self.unclaimed: dict[WarmKey, list[Instance]] = {}
        self.hits = 0
        self.misses = 0
        self.spare_version = LATEST_HANDSHAKE_VERSION
        """The era new spares are opened for: that of the latest client that asked for one."""
        self._wake = anyio.Event()

    @property
    def unclaimed_count(self) -> int:
        return sum(len(instances) for instances in self.unclaimed.values())

    def announce(self, seeds: list[int], config: dict[str, Any], version: str = LATEST_HANDSHAKE_VERSION) -> int:
        """Queue seeds to start ahead of their sessions (of clients speaking `version`); returns how many are
        queued now.

        Raises `TooManySeeds` (413) or `QueueFull` (429) past the queue's limits, queueing none of them.
        """
        self.queue.extend(seeds, warm_key(None, config, version)[1], config)
        self._wake.set()
        return len(self.queue)

    async def claim(
        self, seed: int | None, config: dict[str, Any], version: str = LATEST_HANDSHAKE_VERSION
    ) -> Instance | None:
        """The warm instance for this seed/config/era, waiting for it if it is still starting; None if none."""
        if seed is None and not config:
            return await self._claim_spare(version)
        key = warm_key(seed, config, version)
        candidates = self.unclaimed.get(key, [])
        while candidates:
            instance = candidates.pop(0)
            if not candidates:
                self.unclaimed.pop(key, None)
            try:
                await instance.ready.wait()
            except BaseException:  # the session gave up waiting: the instance it took is nobody's now
                instance.stop()
                raise
            if instance.state == State.READY:
                self.hits += 1
                self._wake.set()
                return instance
        if seed is not None:  # it may be queued but not started: this session starts it now instead
            self.queue.remove(key)
        self.misses += 1
        return None

    async def _claim_spare(self, version: str) -> Instance | None:
        """A spare that can serve a client of `version`, its own era's first (waiting for one still starting)."""
        if version != self.spare_version:  # refills follow the latest client's era
            self.spare_version = version
            self._wake.set()
        for key in (spare_key(version), spare_key(MODERN if version != MODERN else LATEST_HANDSHAKE_VERSION)):
            for instance in list(self.unclaimed.get(key, [])):
                self.forget(instance)  # taken before waiting: a concurrent claim cannot take it too
                try:
                    await instance.ready.wait()
                except BaseException:
                    instance.stop()
                    raise
                if instance.state != State.READY:
                    continue
                if serves(instance, version):
                    self.hits += 1
                    self._wake.set()
                    return instance
                self.unclaimed.setdefault(key, []).append(instance)  # another era's: left for its clients
        self.misses += 1
        return None

    def evict_one(self) -> bool:
        """Make room for a session at `--max-instances`: end the oldest unclaimed ready instance."""
        ready = [i for instances in self.unclaimed.values() for i in instances if i.state == State.READY]
        if not ready:
            return False
        oldest = min(ready, key=lambda instance: instance.started_at)
        self.forget(oldest)
        oldest.log.info("unclaimed warm instance ended to make room", extra={"event": "warm.evicted"})
        oldest.stop()
        return True

    def _evict_spare(self) -> None:
        spares = self.unclaimed.get(spare_key(LATEST_HANDSHAKE_VERSION)) or self.unclaimed.get(spare_key(MODERN), [])
        if spares:
            spare = spares[0]
            self.forget(spare)
            spare.stop()

    def forget(self, instance: Instance) -> None:
        for key, instances in list(self.unclaimed.items()):
            if instance in instances:
                instances.remove(instance)
                if not instances:
                    del self.unclaimed[key]

    def _next(self) -> tuple[int | None, str, dict[str, Any]] | None:
        """What to start next, if there is room: an announced seed, else a seedless spare under `--warm N`."""
        if self.hooks.closing:
            return None
        limit = self.depth if self.depth is not None else self.max_instances
        if self.queue and self.unclaimed_count >= limit:
            self._evict_spare()  # announced seeds are real demand; a seedless spare is a guess
        if self.unclaimed_count >= limit or self.hooks.live_count >= self.max_instances:
            return None
        if self.queue:
            return self.queue.popleft_entry()
        spares = len(self.unclaimed.get(spare_key(LATEST_HANDSHAKE_VERSION), [])) + len(
            self.unclaimed.get(spare_key(MODERN), [])
        )
        if self.depth and spares < self.depth:
            return None, spare_key(self.spare_version)[1], {}
        return None

    async def run(self) -> None:
        """Keep starting instances ahead of sessions while there is something to start and room for it."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while (item := self._next()) is not None:
                seed, config_key, config = item
                key = (seed, config_key)
                try:
                    instance = await self.hooks.start_warm(
                        random_seed() if seed is None else seed, config, version_of(config_key)
                    )
                except PoolError as exc:  # e.g. no free port: try again when something changes
                    logger.warning("cannot start a warm instance: %s", exc, extra={"event": "warm.failed"})
                    break
                self.unclaimed.setdefault(key, []).append(instance)

    def wake(self) -> None:
        """Something changed (an instance ended, a port was freed): look again for room."""
        self._wake.set()
