"""`RandomPolicy(seed)`: a uniformly random tool and arguments sampled from its input schema.

Each episode gets its own generator seeded from (policy seed, env id), so a run is reproducible no matter how
the concurrent episodes interleave.
"""

import random
import string
from typing import Any

from mcpsim.client.policies.base import EpisodeContext, Policy
from mcpsim.trajectory import Action, Observation


def sample_value(schema: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value valid for simple JSON schemas (enum, const, bounded numbers, strings, arrays, objects)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return sample_value(rng.choice(schema[key]), rng, depth + 1)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = rng.choice([k for k in kind if k != "null"] or ["null"])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "integer":
        low = int(schema.get("minimum", 0))
        return rng.randint(low, int(schema.get("maximum", low + 10)))
    if kind == "number":
        low = float(schema.get("minimum", 0.0))
        return rng.uniform(low, float(schema.get("maximum", low + 1.0)))
    if kind == "array":
        items = schema.get("items") or {}
        size = int(schema.get("minItems", 1))
        return [sample_value(items, rng, depth + 1) for _ in range(size)] if depth < 4 else []
    if kind == "object":
        return sample_arguments(schema, rng, depth + 1) if depth < 4 else {}
    if kind == "null":
        return None
    length = max(int(schema.get("minLength", 1)), 1)
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def sample_arguments(schema: dict[str, Any], rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """Values for the required properties of an object schema (optional ones are left to their defaults)."""
    properties = schema.get("properties") or {}
    return {name: sample_value(properties.get(name) or {}, rng, depth) for name in schema.get("required") or []}


class RandomPolicy(Policy):
    """Random tool calls: the baseline every environment should survive."""

    name = "random"

    def __init__(self, seed: int = 0, tools: list[str] | None = None) -> None:
        self.seed = seed
        self.only_tools = tools

    async def act(self, episode: EpisodeContext, observation: Observation) -> Action | None:
        rng = episode.memory.get("rng")
        if rng is None:
            rng = episode.memory["rng"] = random.Random(f"{self.seed}:{episode.env_id}")
        tools = [t for t in episode.tools if self.only_tools is None or t["name"] in self.only_tools]
        if not tools:
            return None
        tool = rng.choice(tools)
        return Action(tool["name"], sample_arguments(tool.get("inputSchema") or {}, rng))

    async def branch(self, source: EpisodeContext, copy: EpisodeContext) -> None:
        """Each copy draws from a generator of its own (seeded by its env id): copies of one state diverge."""
        copy.memory = {}

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "seed": self.seed}
