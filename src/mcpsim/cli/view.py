"""`mcpsim view FILE`: a page to step through the episodes of a trajectory file (see `server.ops.viewer`)."""

import argparse
from pathlib import Path

import anyio

from mcpsim.cli.server_options import add_server_options, credentials


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("view", help="serve a page to step through the episodes of a trajectory file")
    p.add_argument("file", type=Path, help="a trajectory JSONL file (mcpsim.trajectory/1)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    add_server_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mcpsim.server.auth import required_token
    from mcpsim.server.ops import configure_logging, view

    configure_logging(args.log_format, args.log_level)
    tokens = required_token(args.host, credentials(args))
    anyio.run(view, args.file, args.host, args.port, tokens)  # a bad file: TrajectoryError, exit 2
    return 0
