"""The `mcpsim` command line."""

import argparse
import shutil
import sys
from collections.abc import Sequence

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


def cmd_demo(args: argparse.Namespace) -> int:
    from mcpsim.demo import run_demo

    return anyio.run(run_demo, args.episodes, args.steps)


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

    from mcpsim.render import render

    gif, frames = None, Path(args.frames) if args.frames else None
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() == ".gif":
            gif = out
        elif out.suffix:
            raise ValueError(f"--out {args.out}: use a .gif file or a directory for PNG frames")
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
    _render_parser(sub)
    demo = sub.add_parser("demo", help="serve FrozenLake in-process and roll out a random policy on 8 seeds")
    demo.add_argument("--episodes", type=int, default=8)
    demo.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    handlers = {"serve": cmd_serve, "demo": cmd_demo, "render": cmd_render}
    try:
        code = handlers[args.command](args)
    except (CommandError, ValueError) as exc:
        print(f"mcpsim {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
