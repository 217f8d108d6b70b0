"""Group-normalized advantages (GRPO style): the arithmetic, the edge cases, and groups from a real rollout."""

import math

import pytest

import mcpsim
from mcpsim.client.advantages import group_advantages, trajectory_advantages
from mcpsim.errors import ConfigError
from mcpsim.trajectory import Trajectory


def test_advantages_are_normalized_within_each_group():
    rewards = [1.0, 0.0, 0.0, 5.0, 5.0, 2.0]
    groups = ["a", "a", "a", "b", "b", "c"]
    got = group_advantages(rewards, groups, eps=0.0)
    std_a = math.sqrt(((2 / 3) ** 2 + 2 * (1 / 3) ** 2) / 2)
    assert got[:3] == pytest.approx([(2 / 3) / std_a, -(1 / 3) / std_a, -(1 / 3) / std_a])
    assert got[3:5] == [0.0, 0.0]  # equal rewards: nothing to prefer
    assert got[5] == 0.0  # a group of one
    assert sum(got[:3]) == pytest.approx(0.0)


def test_unscaled_advantages_are_centred_rewards():
    assert group_advantages([3.0, 1.0], ["g", "g"], scale=False) == [1.0, -1.0]


def test_groups_may_interleave_and_keep_the_order_of_rewards():
    got = group_advantages([1.0, 10.0, 0.0, 20.0], ["x", "y", "x", "y"], scale=False)
    assert got == [0.5, -5.0, -0.5, 5.0]


@pytest.mark.parametrize(
    ("rewards", "groups", "match"),
    [([1.0], ["a", "b"], "one group id per reward"), ([math.nan, 1.0], ["a", "a"], "finite")],
)
def test_bad_input_is_refused(rewards, groups, match):
    with pytest.raises(ConfigError, match=match):
        group_advantages(rewards, groups)


def test_trajectories_without_a_group_are_their_own_group():
    episodes = [Trajectory("e0", 0, total_reward=1.0), Trajectory("e1", 0, total_reward=0.0)]
    assert trajectory_advantages(episodes) == [0.0, 0.0]
    episodes = [Trajectory(f"e{i}", 0, total_reward=float(i), group_id="g") for i in range(3)]
    assert trajectory_advantages(episodes, eps=0.0) == pytest.approx([-1.0, 0.0, 1.0])


async def test_samples_of_a_row_share_a_group_in_a_rollout(frozen_lake_server):
    envs = mcpsim.make(frozen_lake_server.mcp, seeds=[4, 5], samples=3)
    trajectories = await mcpsim.rollout(envs, mcpsim.RandomPolicy(1), steps=30)
    assert [t.group_id for t in trajectories] == ["seed4"] * 3 + ["seed5"] * 3
    advantages = mcpsim.client.trajectory_advantages(trajectories)
    for start in (0, 3):
        assert sum(advantages[start : start + 3]) == pytest.approx(0.0, abs=1e-9)
