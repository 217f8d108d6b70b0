"""Branching: k copies of a live instance, each a new instance of its own (tree search, best-of-N from a state).

Two ways to make a copy, chosen per branch request and reported per copy (`method`):
- **fork**: the instance was forked from the fork server's template (`--fork-server`, a Python stdio server), so
  the running process copies itself at a quiet point (`proc/live_fork.py`, `proc/branch_client.py`): the
  instance's client requests are held back and the in-flight ones answered first, then the server forks k times.
  Memory is shared copy-on-write; the copies' MCP session is the source's (already initialized).
- **replay**: anything else (Node, npx, a plain spawn, HTTP backends), or a live fork the server refused: k fresh
  instances with the same seed, config and protocol version, each replaying the source's recorded `tools/call`
  requests in order. That is a copy only for a deterministic server, so the last replayed result is compared with
  the source's last result, and a difference refuses the branch: "server is not deterministic at step N".

Every instance records its state-changing requests (`CallHistory`: each answered `tools/call`'s params, up to
`MAX_RECORDED_CALLS`; reads and lists are not replayed) and keeps a reference to the last result. A copy starts
with its source's history, so a branch of a branch works either way. Copies count against `--max-instances`,
idle out, and end like any instance; `/api/instances` lists their `parent` and `branched_at_step`.
"""

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from mcpsim.errors import BackendError, BranchError, LiveForkRefused, NotDeterministic
from mcpsim.pool.history import MAX_RECORDED_CALLS, CallHistory, error_outcome
from mcpsim.pool.instance import Instance
from mcpsim.pool.spec import State
from mcpsim.proc.branch_client import fork_copies
from mcpsim.proc.fork_client import ForkedProcess

if TYPE_CHECKING:
    from mcpsim.pool.pool import InstancePool
    from mcpsim.proc.tracking import ProcessTracker

logger = logging.getLogger(__name__)

MAX_BRANCHES = 64
"""Copies one branch request may ask for."""
QUIET_TIMEOUT_S = 30.0
"""How long a branch waits for the source's in-flight requests to be answered."""
REPLAY_TIMEOUT_S = 300.0
"""How long replaying a history on the fresh copies may take."""


METHODS = ("auto", "fork", "replay")


async def branch(pool: "InstancePool", source: Instance, count: int, method: str = "auto") -> list[Instance]:
    """`count` ready copies of `source` (see the module); raises a `PoolError` naming why not, leaving none.

    `method` "auto" forks when it can and replays otherwise; "replay" always replays (to check a server's
    determinism, or to measure); "fork" refuses rather than replay."""
    if method not in METHODS:
        raise BranchError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if not 1 <= count <= MAX_BRANCHES:
        raise BranchError(f"count must be an integer from 1 to {MAX_BRANCHES}, not {count!r}")
    if source.state != State.READY or source.mux is None or source.mux.closed_reason is not None:
        raise BranchError(f"instance {source.id} is {source.state}, not ready: only a live instance can be branched")
    pool.check_room(count)  # CapacityError past --max-instances, before anything starts
    forkable = isinstance(source.process, ForkedProcess) and source.process.control is not None
    if method == "fork" and not forkable:
        raise BranchError(f"instance {source.id} cannot be forked live: it was not started from the fork server")
    if forkable and method != "replay":
        try:
            with pool.reserved(count):
                return await _fork(pool, source, count)
        except LiveForkRefused as exc:
            if method == "fork":
                raise BranchError(f"instance {source.id} cannot be forked live now: {exc}") from None
            source.log.info("live fork refused (%s); branching by replay", exc, extra={"event": "branch.replay"})
    return await _replay(pool, source, count)


async def _fork(pool: "InstancePool", source: Instance, count: int) -> list[Instance]:
    assert isinstance(source.process, ForkedProcess)
    copies = [Instance(dataclasses.replace(source.spec), pool) for _ in range(count)]
    began = time.monotonic()
    for copy in copies:
        _inherit(copy, source, "fork")
    async with _held(source):
        with anyio.move_on_after(QUIET_TIMEOUT_S) as waited:
            await _quiet(source)
        if waited.cancelled_caught:
            raise BranchError(f"instance {source.id} still had requests in flight after {QUIET_TIMEOUT_S:g} s")
        for copy in copies:
            copy.history = source.history.copy()
            copy.branched_at_step = source.history.steps
        processes = await fork_copies(
            source.process, [copy.output_log for copy in copies], source.spec.max_message_bytes
        )
    for copy, process in zip(copies, processes, strict=True):
        copy.adopted = process
        await pool.add(copy)
    if source.spec.tracker is not None:
        await pool.run_task(_into_groups, source.spec.tracker, copies)
    await _all_ready(pool, copies)
    source.log.info(
        "forked %d copies in %.1f ms (%s ms of it forking, in the server)",
        count,
        (time.monotonic() - began) * 1000,
        processes.fork_ms,
        extra={"event": "branch.forked", "count": count, "fork_ms": processes.fork_ms},
    )
    return copies


async def _into_groups(
    tracker: "ProcessTracker", copies: list[Instance], *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Move the copies out of their source's control group into their own, while they already serve: the first
    move waits for an RCU grace period, which is most of a copy's cost otherwise. Until it is done, ending an
    instance waits (`ProcessTracker.moves_settled`, counted from `started`), so no kill of the source's group
    catches a copy on its way out."""
    members = [(copy.id, copy.adopted.pid) for copy in copies if copy.adopted is not None]
    groups = await tracker.adopt(members, task_status=task_status)
    by_id = {instance_id: group for (instance_id, _), group in zip(members, groups, strict=True)}
    for copy in copies:
        copy.cgroup = by_id.get(copy.id)


async def _replay(pool: "InstancePool", source: Instance, count: int) -> list[Instance]:
    history = source.history.copy()  # the prefix at this moment, whatever the source does meanwhile
    if not history.complete:
        raise BranchError(
            f"instance {source.id} made {history.steps} calls, more than the {MAX_RECORDED_CALLS} kept for replay"
        )
    copies: list[Instance] = []
    try:
        for _ in range(count):
            copy = await pool.launch(
                source.seed, dict(source.config), None, version=source.spec.protocol_version, owner=source.owner
            )
            _inherit(copy, source, "replay")
            copy.branched_at_step = history.steps
            copies.append(copy)
        await _all_ready(pool, copies)
        outcomes: list[Any] = []
        with anyio.move_on_after(REPLAY_TIMEOUT_S) as replayed:
            async with anyio.create_task_group() as tg:
                for copy in copies:
                    tg.start_soon(_replay_one, copy, history, outcomes)
        if replayed.cancelled_caught:
            raise BranchError(f"replaying {history.steps} calls took longer than {REPLAY_TIMEOUT_S:g} s")
        if history.steps and any(outcome != history.last for outcome in outcomes):
            raise NotDeterministic(
                f"server is not deterministic at step {history.steps}: replaying the {history.steps} recorded calls "
                f"on a fresh instance (seed {source.seed}) gave a different result for the last one, so it cannot "
                "be branched by replay (a Python server on its event loop, under --fork-server, can be forked live)"
            )
        return copies
    except BaseException:
        await _end_all(copies)
        raise


async def _replay_one(copy: Instance, history: CallHistory, outcomes: list[Any]) -> None:
    """Replay the calls in order on one fresh copy; its last outcome goes to `outcomes`."""
    assert copy.mux is not None
    outcome: Any = None
    for params in history.calls:
        try:
            outcome = await copy.mux.request("tools/call", params)
        except BackendError as exc:
            outcome = error_outcome(exc.message)
    outcomes.append(outcome)


async def _all_ready(pool: "InstancePool", copies: list[Instance]) -> list[Instance]:
    try:
        for copy in copies:
            await copy.ready.wait()
            pool.check_ready(copy)
    except BaseException:
        await _end_all(copies)
        raise
    return copies


@contextlib.asynccontextmanager
async def _held(instance: Instance) -> AsyncIterator[None]:
    """Hold the clients' requests back (they wait, `proxy.forward`) for the block: nothing new reaches the server."""
    instance.gate = anyio.Event()
    try:
        yield
    finally:
        instance.gate.set()
        instance.gate = None


async def _quiet(instance: Instance) -> None:
    """Until no request is in flight to the server (while `_held`, none starts)."""
    while instance.mux is not None and instance.mux.in_flight:  # noqa: ASYNC110 - the mux signals no drain
        await anyio.sleep(0.001)


async def _end_all(copies: list[Instance]) -> None:
    """End copies of a branch that failed, and wait until they are gone: a refused branch leaves nothing."""
    for copy in copies:
        copy.stop()
    with anyio.CancelScope(shield=True), anyio.move_on_after(15):
        for copy in copies:
            await copy.ended.wait()


def _inherit(copy: Instance, source: Instance, method: str) -> None:
    copy.owner = source.owner
    copy.parent = source.id
    copy.branch_method = method
    if method == "fork":  # the copy's server was initialized (or discovered) as the source was, in its era
        copy.init_result = dict(source.init_result)
        copy.era, copy.discovered = source.era, source.discovered
