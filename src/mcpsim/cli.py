"""The `mcpsim` command line."""

import argparse
import shutil
import sys
from collections.abc import Callable, Sequence

import anyio

from mcpsim import __version__
from mcpsim.pool.command import SHIPPED_ENVS, TRANSPORTS, CommandError, for_env, parse_command
from mcpsim.pool.pool import PoolConfig
from mcpsim.pool.ports import parse_port_range


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the managed simulation server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--server", metavar="TEMPLATE", help="command template with {seed}/{port}, a .py file or a Node project"
    )
    what.add_argument("--env", choices=SHIPPED_ENVS, help="one of the environments shipped in mcpsim.envs")
    p.add_argument(
        "--backend-transport", choices=TRANSPORTS, help="default: http if the template has {port}, else stdio"
    )
    p.add_argument("--port-range", default="10000-11000", help="ports for HTTP/SSE backends (default 10000-11000)")
    p.add_argument("--max-instances", type=int, default=256)
    p.add_argument("--idle-timeout", type=float, default=600.0, help="seconds without messages before an instance ends")
    p.add_argument(
        "--startup-timeout", type=float, default=60.0, help="seconds for a new instance to answer initialize"
    )
    p.add_argument("--log-format", choices=["json", "text"], default="text")


def _pool_config(args: argparse.Namespace) -> PoolConfig:
    if args.server:
        command = parse_command(args.server, args.backend_transport)
    else:
        command = for_env(args.env or "frozen_lake", args.backend_transport or "stdio")
    program = command.argv[0]
    if program != "{python}" and shutil.which(program) is None:
        raise CommandError(f"command not found: {program!r}")
    if args.max_instances < 1:
        raise CommandError("--max-instances must be at least 1")
    if args.idle_timeout <= 0 or args.startup_timeout <= 0:
        raise CommandError("--idle-timeout and --startup-timeout must be positive")
    return PoolConfig(
        command=command,
        max_instances=args.max_instances,
        idle_timeout=args.idle_timeout,
        startup_timeout=args.startup_timeout,
        port_range=parse_port_range(args.port_range),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from mcpsim.server.app import ServeConfig
    from mcpsim.server.logs import configure_logging
    from mcpsim.server.run import serve

    config = ServeConfig(pool=_pool_config(args), host=args.host, port=args.port, log_format=args.log_format)
    configure_logging(args.log_format)
    anyio.run(serve, config)
    return 0


def _client_parsers(sub: argparse._SubParsersAction) -> None:
    """`rollout`, `replay`, `audit`, `report`: arguments only; the logic is in `mcpsim.client.commands`."""
    p = sub.add_parser("rollout", help="roll out a policy on a batch of seeded episodes and record them")
    p.add_argument("--url", required=True, help="MCP endpoint, e.g. http://127.0.0.1:9000/mcp")
    p.add_argument("--dataset", metavar="ROWS.jsonl", help="one JSON row per episode: id, seed, prompts, config")
    p.add_argument("--seeds", help="instead of --dataset: seeds like 0-63 or 1,2,5-7")
    p.add_argument("--samples", type=int, default=1, help="episodes per row (repeated samples)")
    p.add_argument("--policy", default="random", help="random[:SEED] | openai:MODEL | fireworks:MODEL | playback:FILE")
    p.add_argument("--steps", type=int, default=100, help="maximum steps per episode")
    p.add_argument("--max-concurrency", type=int, default=32, help="episodes running at once")
    p.add_argument("--record", metavar="OUT.jsonl", help="write the trajectory file")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint for openai:MODEL (vLLM, Ollama, ...)")
    p.add_argument("--vision", choices=["auto", "on", "off"], default="auto", help="send image observations")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-retries", type=int, default=6, help="model API retries on 429/5xx/connection errors")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for any one MCP request")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")

    p = sub.add_parser("replay", help="re-create the trajectories of a recording, with no server")
    p.add_argument("file")
    p.add_argument("--reward-fn", metavar="MODULE:FUNCTION", help="re-score every episode with this function")
    p.add_argument("--lenient", action="store_true", help="keep the complete episodes of a damaged file")

    p = sub.add_parser("audit", help="replay a recording's actions against fresh instances; report divergences")
    p.add_argument("file")
    p.add_argument("--url", required=True, help="MCP endpoint to audit")
    p.add_argument("--max-concurrency", type=int, default=16)
    p.add_argument("--lenient", action="store_true", help="audit the complete episodes of a damaged file")

    p = sub.add_parser("report", help="success, reward, steps, latency and tokens of one or more recordings")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--lenient", action="store_true", help="report the complete episodes of damaged files")


def _client_command(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from mcpsim.client import commands

        return getattr(commands, f"cmd_{name}")(args)

    return run


def cmd_demo(args: argparse.Namespace) -> int:
    from mcpsim.demo import run_demo

    return anyio.run(run_demo, args.episodes, args.steps)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mcpsim", description="Seeded, isolated episodes against MCP servers.")
    parser.add_argument("--version", action="version", version=f"mcpsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    demo = sub.add_parser("demo", help="serve FrozenLake in-process and roll out a random policy on 8 seeds")
    demo.add_argument("--episodes", type=int, default=8)
    demo.add_argument("--steps", type=int, default=30)
    _client_parsers(sub)
    args = parser.parse_args(argv)
    handlers = {"serve": cmd_serve, "demo": cmd_demo}
    handlers.update({name: _client_command(name) for name in ("rollout", "replay", "audit", "report")})
    try:
        code = handlers[args.command](args)
    except (CommandError, ValueError, OSError) as exc:
        print(f"mcpsim {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
