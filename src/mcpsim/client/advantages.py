"""Group-normalized advantages (GRPO style) over episode rewards: a small pure function, no tensors.

GRPO samples k episodes per prompt (`rollout(..., samples=k)`: they share a `group_id`) and scores each one
against its group: `A_i = (r_i - mean(group)) / (std(group) + eps)`. `std` is the sample standard deviation
(n - 1, as TRL's GRPOTrainer computes it); `scale=False` drops the division (Dr. GRPO), leaving `r_i - mean`.
A group of one has advantage 0 (nothing to compare with), and so has a group whose rewards are all equal.
"""

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence

from mcpsim.errors import ConfigError
from mcpsim.trajectory import Trajectory

EPS = 1e-4
"""Added to the standard deviation, as TRL does, so near-equal rewards do not blow up."""


def group_advantages(
    rewards: Sequence[float], groups: Sequence[Hashable], *, scale: bool = True, eps: float = EPS
) -> list[float]:
    """One advantage per reward, normalized within its group (same order as `rewards`)."""
    if len(rewards) != len(groups):
        raise ConfigError(f"{len(rewards)} rewards but {len(groups)} group ids: give one group id per reward")
    if eps < 0:
        raise ConfigError(f"eps must be >= 0, got {eps}")
    values = [float(r) for r in rewards]
    if not all(math.isfinite(v) for v in values):
        raise ConfigError("rewards must be finite numbers (no NaN or infinity)")
    members: dict[Hashable, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    out = [0.0] * len(values)
    for indices in members.values():
        n = len(indices)
        if n < 2:
            continue
        mean = sum(values[i] for i in indices) / n
        std = math.sqrt(sum((values[i] - mean) ** 2 for i in indices) / (n - 1))
        if std == 0:
            continue  # all equal: every advantage is 0 (also with eps=0)
        for i in indices:
            centred = values[i] - mean
            out[i] = centred / (std + eps) if scale else centred
    return out


def trajectory_advantages(trajectories: Iterable[Trajectory], *, scale: bool = True, eps: float = EPS) -> list[float]:
    """`group_advantages` of episodes' total rewards, grouped by `group_id` (an episode without one is its own
    group)."""
    episodes = list(trajectories)
    groups = [t.group_id if t.group_id is not None else ("episode", t.env_id) for t in episodes]
    return group_advantages([t.total_reward for t in episodes], groups, scale=scale, eps=eps)
