"""The `mcpsim` command line: one module per command group, each registering its parser beside its handler.

Every module has `register(subparsers)`, which adds its commands and sets `handler` on each (`set_defaults`).
`main` parses, runs the handler, and turns mcpsim's own errors (`MCPSimError`: bad flags, a file that is not a
trajectory, a server command that cannot run) into one line `mcpsim CMD: error: MESSAGE` and exit code 2. Any
other exception is a bug and shows its traceback.
"""

import argparse
import sys
from collections.abc import Sequence

from mcpsim.cli import bench, cache, client, demo, export, render, serve, view
from mcpsim.errors import MCPSimError
from mcpsim.wire import VERSION

COMMAND_GROUPS = (serve, view, render, demo, bench, cache, client, export)
"""In the order `mcpsim --help` lists their commands."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcpsim", description="Seeded, isolated episodes against MCP servers.")
    parser.add_argument("--version", action="version", version=f"mcpsim {VERSION}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(args)
    except MCPSimError as exc:
        print(f"mcpsim {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


__all__ = ["build_parser", "main"]
