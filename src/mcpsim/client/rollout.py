"""`await rollout(envs, policy, ...)`: every environment plays its own episode, concurrently.

There is no lockstep: each episode is one task that opens its session, asks the policy, calls the tool, and
repeats until the server ends the episode, the policy stops or the step limit is reached, so a slow
environment or a slow model call never holds the others. `max_concurrency` bounds how many sessions are open
at once. Any failure (cannot connect, policy error, invalid action, tool call error) is recorded on that
episode's trajectory and ends it cleanly; the other episodes go on.

Branching (`branch_at=N, branches=K`, on a managed server): after N steps an episode is copied into K live
copies (`EnvSession.branch`, a live fork or a checked replay on the server), each continued by the policy from
the same state (`Policy.branch` gives each its own per-episode state) and recorded as an episode of its own,
env id `<env_id>@N.<i>`, `parent` and `branched_at_step` on its episode line, a `branch` line instead of its
prefix's steps; the source ends there with outcome `branched`. The K copies of one state share the group id
`<env_id>@N` (GRPO from an intermediate state) and run inside their source's concurrency slot.
"""

import contextlib
import dataclasses
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2

from mcpsim.client.announce import Announcer
from mcpsim.client.env import Environment, EnvSession, shared_http_client
from mcpsim.client.policies.base import EpisodeContext, Policy
from mcpsim.client.progress import SILENT, RolloutProgress, rollout_progress
from mcpsim.errors import ConfigError, EpisodeError, PolicyError, describe_exception, leaf_exceptions
from mcpsim.trajectory import Action, Observation, Recorder, Step, Trajectory, header_record
from mcpsim.trajectory.format import add_usage

RewardFn = Callable[[Trajectory], Any]


def _error_record(exc: BaseException, step: int) -> dict[str, Any]:
    for leaf in leaf_exceptions(exc):
        if isinstance(leaf, EpisodeError):
            record = leaf.record()
            if record.get("step") is None:
                record["step"] = step
            return record
    return {"type": "internal", "message": describe_exception(exc), "step": step}


async def _ask(policy: Policy, episode: EpisodeContext, observation: list[dict[str, Any]]) -> Action | None:
    try:
        return Action.coerce(await policy.act(episode, observation))
    except EpisodeError:
        raise
    except Exception as exc:
        raise PolicyError(f"policy {policy.name!r} failed: {describe_exception(exc)}", step=episode.step + 1) from exc


@dataclasses.dataclass(frozen=True)
class Branching:
    """`rollout(..., branch_at=, branches=)`: copy each episode after `at` steps into `count` copies."""

    at: int
    count: int

    def __post_init__(self) -> None:
        if not isinstance(self.at, int) or self.at < 1:
            raise ConfigError(f"branch_at must be a step number of at least 1, got {self.at!r}")
        if not isinstance(self.count, int) or not 1 <= self.count <= MAX_BRANCHES:
            raise ConfigError(f"branches must be from 1 to {MAX_BRANCHES}, got {self.count!r}")


MAX_BRANCHES = 64
"""Copies per branch point: what the server makes in one request (`pool/branching.py` `MAX_BRANCHES`)."""


class _Episode:
    """One environment's episode loop; state lives on the trajectory so a failure keeps what was played."""

    def __init__(
        self,
        env: Environment,
        trajectory: Trajectory,
        policy: Policy,
        steps: int,
        recorder: Recorder | None,
        reward_fn: RewardFn | None = None,
        branching: Branching | None = None,
    ) -> None:
        self.env = env
        self.trajectory = trajectory
        self.policy = policy
        self.steps = steps
        self.recorder = recorder
        self.reward_fn = reward_fn
        self.branching = branching
        self.copies: list[Trajectory] = []
        """The copies this episode was branched into, in order (each recorded when it ends)."""

    async def play(self, progress: RolloutProgress, http_client: httpx2.AsyncClient | None) -> None:
        trajectory = self.trajectory
        started = time.perf_counter()
        async with self.env.connect(http_client) as session:
            trajectory.connect_ms = (time.perf_counter() - started) * 1000
            trajectory.protocol = session.protocol
            trajectory.initial_observation = session.initial_observation
            episode = EpisodeContext(
                env_id=self.env.env_id,
                seed=self.env.seed,
                row=self.env.row,
                tools=session.tools,
                initial_observation=session.initial_observation,
                trajectory=trajectory,
                instructions=session.instructions,
            )
            try:
                await self.policy.reset(episode)
            except EpisodeError:
                raise
            except Exception as exc:
                raise PolicyError(f"policy {self.policy.name!r} failed to reset: {describe_exception(exc)}") from exc
            await self._loop(session, episode, progress, session.initial_observation)

    async def _branch(
        self, session: EnvSession, episode: EpisodeContext, progress: RolloutProgress, observation: Observation
    ) -> None:
        """Copy the episode into `branching.count` live copies and play each to its end (see the module)."""
        assert self.branching is not None
        source = episode.trajectory
        at = len(source.steps)
        sessions = await session.branch(self.branching.count)  # closed with `session`
        source.outcome = "branched"
        contexts = []
        for index, copy_session in enumerate(sessions, start=1):
            copy = source.branch(f"{source.env_id}@{at}.{index}", group_id=f"{source.env_id}@{at}")
            copy.started_at = time.time()
            context = dataclasses.replace(
                episode, env_id=copy.env_id, trajectory=copy, memory={}, unattributed_usage={}
            )
            try:
                await self.policy.branch(episode, context)
            except Exception as exc:
                raise PolicyError(f"policy {self.policy.name!r} failed to branch: {describe_exception(exc)}") from exc
            if self.recorder is not None:
                await self.recorder.branch(copy)
            self.copies.append(copy)
            contexts.append((copy_session, context))
        async with anyio.create_task_group() as tg:
            for copy_session, context in contexts:
                tg.start_soon(self._play_copy, copy_session, context, progress, observation)

    async def _play_copy(
        self, session: EnvSession, episode: EpisodeContext, progress: RolloutProgress, observation: Observation
    ) -> None:
        """One copy to its end, recorded as its own episode; its failure is its own (the others go on)."""
        copy = episode.trajectory
        try:
            await self._loop(session, episode, progress, observation)
        except Exception as exc:
            copy.error = _error_record(exc, len(copy.steps) + 1)
            copy.outcome = "error"
        copy.finished_at = time.time()
        if self.reward_fn is not None:
            await _apply_reward_fn(self.reward_fn, copy)
        if self.recorder is not None:
            await self.recorder.episode(copy)

    async def _loop(
        self, session: EnvSession, episode: EpisodeContext, progress: RolloutProgress, observation: Observation
    ) -> None:
        trajectory = episode.trajectory
        while True:
            if len(trajectory.steps) >= self.steps:
                trajectory.outcome, trajectory.truncated = "max_steps", True
                return
            if self.branching and trajectory.parent is None and len(trajectory.steps) == self.branching.at:
                await self._branch(session, episode, progress, observation)
                return
            number = len(trajectory.steps) + 1
            asked = time.perf_counter()
            action = await _ask(self.policy, episode, observation)
            policy_ms = (time.perf_counter() - asked) * 1000
            if action is None:
                trajectory.outcome = "stopped"
                return
            session.validate(action, number)
            result = await session.step(action, number)
            add_usage(trajectory.usage, action.usage)
            usage = dict(episode.unattributed_usage)
            add_usage(usage, action.usage)
            episode.unattributed_usage.clear()
            step = Step(
                step=number,
                action=action,
                observation=result.observation,
                reward=result.reward,
                terminated=result.terminated,
                truncated=result.truncated,
                is_error=result.is_error,
                latency_ms=result.latency_ms,
                policy_ms=policy_ms,
                usage=usage or None,
                meta=result.meta,
            )
            trajectory.add_step(step)
            if self.recorder is not None:
                await self.recorder.step(trajectory, step)
            progress.step()
            observation = result.observation
            if result.terminated or result.truncated:
                trajectory.outcome = "terminated" if result.terminated else "truncated"
                return


async def _apply_reward_fn(reward_fn: RewardFn, trajectory: Trajectory) -> None:
    try:
        value = reward_fn(trajectory)
        if inspect.isawaitable(value):
            value = await value
        if value is not None:
            trajectory.total_reward = float(value)
            trajectory.reward_source = "reward_fn"
    except Exception as exc:
        if trajectory.error is None:
            trajectory.error = {"type": "reward_fn", "message": f"reward_fn failed: {describe_exception(exc)}"}


async def run_episode(
    env: Environment,
    trajectory: Trajectory,
    policy: Policy,
    *,
    steps: int,
    limiter: anyio.CapacityLimiter,
    recorder: Recorder | None = None,
    reward_fn: RewardFn | None = None,
    progress: RolloutProgress | None = None,
    http_client: httpx2.AsyncClient | None = None,
    on_start: Callable[[], Awaitable[None]] | None = None,
    branching: Branching | None = None,
    copies: list[Trajectory] | None = None,
) -> Trajectory:
    """Play one episode; with `branching`, its copies' trajectories are appended to `copies` as they start."""
    progress = progress or SILENT
    async with limiter:
        trajectory.started_at = time.time()
        if on_start is not None:
            await on_start()
        episode = _Episode(env, trajectory, policy, steps, recorder, reward_fn, branching)
        if copies is not None:
            episode.copies = copies
        try:
            await episode.play(progress, http_client)
        except Exception as exc:
            trajectory.error = _error_record(exc, len(trajectory.steps) + 1)
            trajectory.outcome = "error"
        trajectory.finished_at = time.time()
    if reward_fn is not None:
        await _apply_reward_fn(reward_fn, trajectory)
    if recorder is not None:
        await recorder.episode(trajectory)
    progress.episode_done(trajectory.error is not None)
    return trajectory


def _run_header(
    envs: list[Environment], policy: Policy, steps: int, max_concurrency: int, extra: Mapping[str, Any]
) -> dict[str, Any]:
    urls = sorted({env.url for env in envs})
    described = policy.describe()
    user = {"metadata": dict(extra)} if extra else {}
    return header_record(
        conversations=policy.records_conversation,
        url=urls[0] if len(urls) == 1 else urls,
        policy=described.get("policy", policy.name),
        model=described.get("model"),
        policy_params={k: v for k, v in described.items() if k not in ("policy", "model")},
        steps=steps,
        max_concurrency=max_concurrency,
        episodes=len(envs),
        dataset=[env.row.to_record() for env in envs],
        **user,
    )


async def rollout(
    envs: Iterable[Environment],
    policy: Policy,
    *,
    steps: int = 100,
    max_concurrency: int = 32,
    record: str | Path | None = None,
    reward_fn: RewardFn | None = None,
    progress: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
    announce: bool = True,
    branch_at: int | None = None,
    branches: int | None = None,
) -> list[Trajectory]:
    """Run one episode per environment with `policy`; trajectories come back in the order of `envs`.

    `steps` caps each episode (outcome `max_steps`); `record` writes the trajectory file as episodes run;
    `reward_fn(trajectory)` (sync or async) sets each episode's total reward, for servers that report none;
    `progress=None` shows a progress bar only on a terminal. The policy stays open (close it with `aclose`).
    `announce` tells a managed server the seeds of upcoming episodes (`max_concurrency` ahead) so their instances
    start while earlier episodes play; it does nothing against other servers.
    `branch_at=N, branches=K` copies every episode that reaches step N into K copies played on from there (see
    the module); the result then lists each episode followed by its copies.
    """
    envs = list(envs)
    branching = None
    if branch_at is not None or branches is not None:
        if branch_at is None or branches is None:
            raise ConfigError("branch_at and branches go together: the step to branch at, and how many copies")
        branching = Branching(branch_at, branches)
        if branch_at >= steps:
            raise ConfigError(f"branch_at ({branch_at}) must be below steps ({steps}): no episode would branch")
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    if max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be an mcpsim Policy, got {type(policy).__name__}")
    trajectories = [Trajectory(env.env_id, env.seed, env.row, group_id=env.row.id) for env in envs]
    if not envs:
        return trajectories
    limiter = anyio.CapacityLimiter(max_concurrency)
    copies: list[list[Trajectory]] = [[] for _ in envs]
    async with contextlib.AsyncExitStack() as stack:
        recorder = None
        if record is not None:
            header = _run_header(envs, policy, steps, max_concurrency, metadata or {})
            if branching is not None:
                header["branching"] = {"at": branching.at, "count": branching.count}
            recorder = await stack.enter_async_context(Recorder.open(record, header))
        bar = stack.enter_context(rollout_progress(len(envs), progress))
        http_client = await stack.enter_async_context(shared_http_client(max_concurrency))
        announcer = Announcer(envs, max_concurrency if announce else 0, http_client)
        async with anyio.create_task_group() as tg:
            for index, (env, trajectory) in enumerate(zip(envs, trajectories, strict=True)):
                options = {
                    "recorder": recorder,
                    "reward_fn": reward_fn,
                    "progress": bar,
                    "http_client": http_client,
                    "on_start": partial(announcer.episode_started, index),
                    "branching": branching,
                    "copies": copies[index],
                }
                tg.start_soon(
                    lambda e=env, t=trajectory, o=options: run_episode(e, t, policy, steps=steps, limiter=limiter, **o)
                )
    return [each for trajectory, made in zip(trajectories, copies, strict=True) for each in (trajectory, *made)]
