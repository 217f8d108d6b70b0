"""Taxi: the shortest delivery plan (found on Gymnasium's own transition table) ends the episode with +20."""

from collections import deque

from gymnasium.envs.toy_text.taxi import TaxiEnv

from helpers.envs import env_client, texts
from mcpsim.envs.taxi import ACTIONS


def shortest_plan(seed: int) -> list[str]:
    env = TaxiEnv()
    start, _ = env.reset(seed=seed)
    table = env.unwrapped.P
    parents: dict[int, tuple[int, int] | None] = {int(start): None}
    queue = deque([int(start)])
    while queue:
        state = queue.popleft()
        for action in range(6):
            (_, nxt, _, done), *_ = table[state][action]
            if done:
                plan = [ACTIONS[action]]
                while parents[state] is not None:
                    state, step = parents[state]
                    plan.append(ACTIONS[step])
                return plan[::-1]
            if nxt not in parents:
                parents[nxt] = (state, action)
                queue.append(nxt)
    raise AssertionError("no plan")


async def test_delivering_the_passenger_terminates_with_the_delivery_reward():
    plan = shortest_plan(4)
    assert plan.count("PICKUP") == 1 and plan[-1] == "DROPOFF"
    async with env_client("taxi", 4) as client:
        first = (await client.read_resource("game://initial_state")).contents[0].text
        assert "Passenger: waiting at" in first and first.count("T") >= 1
        for action in plan[:-1]:
            result = await client.call_tool("taxi_move", {"action": action})
            assert result.meta["mcpsim"]["reward"] == -1.0 and not result.meta["mcpsim"]["terminated"]
        assert "Passenger: in the taxi" in texts(result)
        final = await client.call_tool("taxi_move", {"action": "DROPOFF"})
        assert final.meta["mcpsim"] == {"reward": 20.0, "terminated": True, "truncated": False, "step": len(plan)}


async def test_illegal_pickup_costs_ten_and_does_not_end_the_episode():
    async with env_client("taxi", 4) as client:
        text = (await client.read_resource("game://initial_state")).contents[0].text
        assert "Passenger: waiting at" in text
        plan = shortest_plan(4)
        if plan[0] == "PICKUP":  # the taxi starts on the passenger: a DROPOFF is the illegal move then
            result = await client.call_tool("taxi_move", {"action": "DROPOFF"})
        else:
            result = await client.call_tool("taxi_move", {"action": "PICKUP"})
        assert result.meta["mcpsim"]["reward"] == -10.0 and not result.meta["mcpsim"]["terminated"]
