"""Run a shipped env as its own stdio process under the official MCP client (no mcpsim in between)."""

import sys
from typing import Any

from mcp import Client, StdioServerParameters


def env_client(
    module: str, seed: int, config: str | None = None, extra_env: dict[str, str] | None = None, mode: str = "legacy"
) -> Client:
    env = {**(extra_env or {}), **({"MCPSIM_CONFIG": config} if config else {})}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", f"mcpsim.envs.{module}", "--seed", str(seed)], env=env or None
    )
    return Client(params, mode=mode)  # type: ignore[arg-type]


def texts(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def step_record(result: Any) -> tuple:
    """Everything a step returned, comparable with ==: content blocks (images included), _meta, error flag."""
    blocks = tuple((b.type, getattr(b, "text", None), getattr(b, "data", None)) for b in result.content)
    return blocks, result.meta, result.is_error
