"""The `mcpsim` command line."""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from mcpsim import __version__, envs_cli
from mcpsim.errors import ConfigError, InvalidSeed, JsonTextError, MCPSimError
from mcpsim.isolation import ISOLATIONS, IsolationConfig
from mcpsim.pool import SHIPPED_ENVS, TRANSPORTS, PoolConfig, for_env, parse_command
from mcpsim.proc.ports import parse_port_range
from mcpsim.protocol.jsontext import parse_json_text
from mcpsim.server.ops.logs import LEVELS
from mcpsim.wire import DEFAULT_MAX_MESSAGE_BYTES, SEED_VARIABLE, parse_seed

if TYPE_CHECKING:
    from mcpsim.server.principals import Credentials


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
    p.add_argument("--isolation", choices=ISOLATIONS, default="process", help="where instances' interpreter comes from")
    p.add_argument("--requirements", type=Path, help="requirements.txt (or environment.yml for conda) of the server")
    p.add_argument("--conda-exe", help="with --isolation conda: the conda, mamba or micromamba executable")
    p.add_argument("--port-range", default="10000-11000", help="ports for HTTP/SSE backends (default 10000-11000)")
    p.add_argument("--max-instances", type=int, default=256)
    p.add_argument("--idle-timeout", type=float, default=600.0, help="seconds without messages before an instance ends")
    p.add_argument(
        "--startup-timeout", type=float, default=60.0, help="seconds for a new instance to answer initialize"
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=300.0,
        help="seconds a request may wait for its answer (progress restarts the clock); then the instance is ended;"
        " 0 disables",
    )
    p.add_argument("--stdio", action="store_true", help="speak MCP on stdin/stdout to one client (one instance)")
    p.add_argument("--seed", type=int, help="with --stdio: the instance's seed (default: MCPSIM_SEED, else random)")
    p.add_argument("--config", help="with --stdio: the instance's config as a JSON object")
    p.add_argument("--json-response", action="store_true", help="answer /mcp requests with JSON bodies, not SSE")
    p.add_argument(
        "--fork-server",
        action="store_true",
        help="start Python servers as forks of one template that imported them once (falls back to spawn)",
    )
    p.add_argument(
        "--warm",
        type=int,
        metavar="N",
        help="keep N unclaimed instances started ahead of sessions (announced seeds first, else random seeds)",
    )
    p.add_argument("--fork-preload", default="", help="extra modules for the fork server to import, comma-separated")
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        metavar="N",
        help="largest JSON-RPC message from a client (HTTP body or stdio line; 413 beyond) or a stdio server "
        f"(the request it answers fails) (default {DEFAULT_MAX_MESSAGE_BYTES})",
    )
    _ops_arguments(p)


def _ops_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=["json", "text"], default="text")
    p.add_argument("--log-level", choices=LEVELS, default="info")
    tokens = p.add_mutually_exclusive_group()
    tokens.add_argument(
        "--auth-token-file",
        type=Path,
        metavar="FILE",
        help="tokens every request must carry (Authorization: Bearer TOKEN), one per line, optionally NAME:TOKEN; "
        "the first is the admin; a token is required when --host is not loopback (default: $MCPSIM_AUTH_TOKEN)",
    )
    tokens.add_argument(
        "--auth-token", metavar="TOKEN", help="one token, given on the command line (ps shows it: prefer the file)"
    )


def _credentials(args: argparse.Namespace) -> "Credentials | None":
    """The tokens of `--auth-token-file`/`--auth-token`/`MCPSIM_AUTH_TOKEN`, warnings logged (after logging is set)."""
    import logging

    from mcpsim.server.principals import credentials_from

    credentials, warnings = credentials_from(args.auth_token, args.auth_token_file, os.environ)
    for warning in warnings:
        logging.getLogger("mcpsim.auth").warning(warning, extra={"event": "auth.warning"})
    return credentials


def _view_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="serve a page to step through the episodes of a trajectory file")
    p.add_argument("file", type=Path, help="a trajectory JSONL file (mcpsim.trajectory/1)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    _ops_arguments(p)


def _pool_config(args: argparse.Namespace) -> PoolConfig:
    if args.server:
        command = parse_command(args.server, args.backend_transport)
    else:
        command = for_env(args.env or "frozen_lake", args.backend_transport or "stdio")
    isolation = IsolationConfig(args.isolation, args.requirements, args.conda_exe)
    return PoolConfig(
        command=command,
        max_instances=args.max_instances,
        idle_timeout=args.idle_timeout,
        startup_timeout=args.startup_timeout,
        request_timeout=args.request_timeout if args.request_timeout > 0 else None,
        port_range=parse_port_range(args.port_range),
        isolation=isolation,
        fork_server=args.fork_server,
        warm=args.warm,
        fork_preload=tuple(name for name in args.fork_preload.split(",") if name),
        max_message_bytes=args.max_message_bytes,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from mcpsim.server.config import ServeConfig
    from mcpsim.server.ops.logs import configure_logging

    pool = _pool_config(args)
    configure_logging(args.log_format, args.log_level)
    if args.stdio:
        from mcpsim.server.fronts.stdio import serve_stdio

        seed = args.seed if args.seed is not None else _env_seed(os.environ.get(SEED_VARIABLE))
        try:
            config = parse_json_text(args.config) if args.config else {}
        except JsonTextError as exc:
            raise ConfigError(f"--config is not JSON: {exc}") from None
        if not isinstance(config, dict):
            raise ConfigError("--config must be a JSON object")
        return anyio.run(serve_stdio, pool, seed, config)
    from mcpsim.server.run import serve

    credentials = _credentials(args)
    config = ServeConfig(  # refuses a non-loopback bind without a token, up front
        pool=pool, host=args.host, port=args.port, json_response=args.json_response, credentials=credentials
    )
    anyio.run(serve, config)
    return 0


def _env_seed(raw: str | None) -> int | None:
    try:
        return parse_seed(raw)
    except InvalidSeed as exc:
        raise ConfigError(f"{SEED_VARIABLE}: {exc}") from None


def cmd_view(args: argparse.Namespace) -> int:
    from mcpsim.server.auth import required_token
    from mcpsim.server.ops.logs import configure_logging
    from mcpsim.server.ops.viewer import view

    configure_logging(args.log_format, args.log_level)
    credentials = required_token(args.host, _credentials(args))
    anyio.run(view, args.file, args.host, args.port, credentials)  # a bad file: TrajectoryError, a ValueError
    return 0


def _client_parsers(sub: argparse._SubParsersAction) -> None:
    """`rollout`, `replay`, `audit`, `report`: arguments only; the logic is in `mcpsim.client.commands`."""
    p = sub.add_parser("rollout", help="roll out a policy on a batch of seeded episodes and record them")
    p.add_argument(
        "--url",
        required=True,
        help="MCP endpoint: http://127.0.0.1:9000/mcp, http://.../sse, or stdio:COMMAND ({seed} is replaced)",
    )
    p.add_argument("--dataset", metavar="ROWS.jsonl", help="one JSON row per episode: id, seed, prompts, config")
    p.add_argument("--seeds", help="instead of --dataset: seeds like 0-63 or 1,2,5-7")
    p.add_argument("--samples", type=int, default=1, help="episodes per row (repeated samples)")
    p.add_argument("--policy", default="random", help="random[:SEED] | openai:MODEL | fireworks:MODEL | playback:FILE")
    p.add_argument("--steps", type=int, default=100, help="maximum steps per episode")
    p.add_argument("--max-concurrency", type=int, default=32, help="episodes running at once")
    p.add_argument(
        "--no-announce",
        action="store_true",
        help="do not tell a managed server the seeds of upcoming episodes (it starts them ahead otherwise)",
    )
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


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    from mcpsim.bench import MODES

    p = sub.add_parser("bench", help="measure session start, proxied call latency and instance memory")
    p.add_argument("--mode", choices=MODES, default="managed")
    p.add_argument("--compare", metavar="MODES", help=f"comma-separated modes to run in one go, e.g. {','.join(MODES)}")
    p.add_argument("--sessions", type=int, default=20, help="sequential new sessions timed to first tool result")
    p.add_argument("--steps", type=int, default=200, help="calls per session in the latency phase")
    p.add_argument("--concurrency", type=int, default=1, help="sessions calling at once in the latency phase")
    p.add_argument("--burst", type=int, default=64, help="new sessions opened at once (0 to skip)")
    p.add_argument("--memory-sessions", type=int, default=16, help="sessions held open to measure RSS/USS")
    p.add_argument("--live", type=int, default=0, help="also hold this many sessions live at once (e.g. 500)")
    p.add_argument(
        "--matrix", action="store_true", help="instead: per-call latency for every front/backend transport pair"
    )
    p.add_argument("--json", metavar="FILE", default="bench.json", help="where to write the results")


def cmd_bench(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from mcpsim.bench import MODES, BenchSettings, print_report, run_bench

    if args.matrix:
        from mcpsim.bench.matrix import print_matrix, run_matrix

        matrix = anyio.run(run_matrix, args.steps)
        Path(args.json).write_text(json.dumps(matrix, indent=2))
        print_matrix(matrix)
        return 0
    modes = args.compare.split(",") if args.compare else [args.mode]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        raise ConfigError(f"unknown bench mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    settings = BenchSettings(args.sessions, args.steps, args.concurrency, args.burst, args.memory_sessions, args.live)
    report = anyio.run(run_bench, modes, settings)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print_report(report)
    return 0


def _render_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="make a GIF or PNG frames of one episode of a trajectory file")
    p.add_argument("file", help="trajectory JSONL (mcpsim.trajectory/1)")
    p.add_argument("--out", help="x.gif for an animated GIF, or a directory for PNG frames")
    p.add_argument("--frames", metavar="DIR", help="also write PNG frames into DIR")
    p.add_argument("--env-id", help="which episode (default: the first with images, else the first)")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--every", type=int, default=1, help="keep every Nth step (the last is always kept)")
    p.add_argument("--scale", type=float, default=1.0, help="resize frames by this factor")
    p.add_argument("--no-caption", action="store_true", help="no step/action/reward strip under the frames")


def cmd_render(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mcpsim.trajectory.render import render

    gif, frames = None, Path(args.frames) if args.frames else None
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() == ".gif":
            gif = out
        elif out.suffix:
            raise ConfigError(f"--out {args.out}: use a .gif file or a directory for PNG frames")
        else:
            frames = out
    summary = render(
        Path(args.file), gif, frames, env_id=args.env_id, fps=args.fps, every=args.every, scale=args.scale,
        caption=not args.no_caption,
    )  # fmt: skip
    print(
        f"{summary['frames']} frames of {summary['env_id']} (seed {summary['seed']}): {', '.join(summary['written'])}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mcpsim", description="Seeded, isolated episodes against MCP servers.")
    parser.add_argument("--version", action="version", version=f"mcpsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _view_parser(sub)
    _render_parser(sub)
    demo = sub.add_parser("demo", help="serve FrozenLake in-process and roll out a random policy on 8 seeds")
    demo.add_argument("--episodes", type=int, default=8)
    demo.add_argument("--steps", type=int, default=30)
    _bench_parser(sub)
    envs_cli.add_parser(sub)
    _client_parsers(sub)
    args = parser.parse_args(argv)
    handlers = {
        "serve": cmd_serve,
        "demo": cmd_demo,
        "bench": cmd_bench,
        "envs": envs_cli.run,
        "view": cmd_view,
        "render": cmd_render,
    }
    handlers.update({name: _client_command(name) for name in ("rollout", "replay", "audit", "report")})
    try:
        code = handlers[args.command](args)
    except MCPSimError as exc:
        print(f"mcpsim {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
