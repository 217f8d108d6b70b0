"""`mcpsim cache list|gc|rm|check`: inspect and clean the cache of built environments (venv, conda, node, npx).

`mcpsim envs ...` is the old name, kept as an alias: the same subcommands, a deprecation note in its `--help`,
and one line on stderr when used. ("env" already names the Gym servers of `mcpsim.envs`, the client's
`Environment` and environment variables; the build cache is a cache.)
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import anyio
from rich.console import Console
from rich.table import Table

from mcpsim.errors import ConfigError
from mcpsim.isolation import EnvCache, check_environment
from mcpsim.proc import Spawner

DEPRECATED = "`mcpsim envs` is deprecated: use `mcpsim cache` (same subcommands)"


def register(subparsers: argparse._SubParsersAction) -> None:
    cache = subparsers.add_parser("cache", help="list, check and clean built environments (venv, conda, node, npx)")
    _actions(cache)
    cache.set_defaults(handler=run)
    envs = subparsers.add_parser(
        "envs", help="deprecated alias of `mcpsim cache` (same subcommands)", description=DEPRECATED
    )
    _actions(envs)
    envs.set_defaults(handler=run_deprecated_alias)


def run_deprecated_alias(args: argparse.Namespace) -> int:
    print(f"mcpsim envs: {DEPRECATED}", file=sys.stderr)
    return run(args)


def _actions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", type=Path, help="default: $MCPSIM_CACHE_DIR or ~/.cache/mcpsim")
    actions = p.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every environment, with size, build time and last use")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    gc = actions.add_parser("gc", help="remove environments unused for N days (and interrupted builds)")
    gc.add_argument("--older-than-days", type=float, default=30.0)
    rm = actions.add_parser("rm", help="remove environments by name (see list), or --all")
    rm.add_argument("names", nargs="*")
    rm.add_argument("--all", action="store_true")
    check = actions.add_parser("check", help="verify interpreters run and requirements import")
    check.add_argument("names", nargs="*", help="default: every environment")


def run(args: argparse.Namespace) -> int:
    cache = EnvCache(args.cache_dir)
    console = Console(width=None if sys.stdout.isatty() else 200)
    if args.action == "list" and args.json:
        print(
            json.dumps(
                [
                    {"name": path.name, **(asdict(record) if record else {"incomplete": True})}
                    for path, record in cache.entries()
                ],
                indent=2,
            )
        )
        return 0
    if args.action == "list":
        table = Table(title=f"environments in {cache.root}")
        for column in ("name", "kind", "source", "size MB", "build s", "built", "last used"):
            table.add_column(column)
        for path, record in cache.entries():
            if record is None:
                table.add_row(path.name, "?", "(incomplete build)", "", "", "", "")
                continue
            table.add_row(
                path.name,
                record.kind,
                record.source,
                f"{record.size_bytes / 2**20:.1f}",
                f"{record.build_seconds:.1f}",
                _ago(record.created_at),
                _ago(record.last_used_at),
            )
        console.print(table)
        return 0
    if args.action == "gc":
        removed = cache.gc(args.older_than_days)
        for name, gone in removed:
            console.print(f"removed {name}" + ("" if gone else " [red](still present!)[/red]"))
        console.print(f"{len(removed)} environment(s) removed")
        return 0 if all(gone for _, gone in removed) else 1
    selected = _select(cache, args.names, getattr(args, "all", False) or (args.action == "check" and not args.names))
    if args.action == "rm":
        failures = [path.name for path in selected if not cache.remove(path)]
        for path in selected:
            console.print(f"removed {path.name}" + (" [red](still present!)[/red]" if path.name in failures else ""))
        return 1 if failures else 0
    ok_all = True
    spawner = Spawner()
    try:
        for path in selected:
            record = cache.record(path)
            if record is None:
                console.print(f"{path.name}: incomplete build")
                ok_all = False
                continue
            ok, message = anyio.run(check_environment, path, record, spawner)
            ok_all &= ok
            console.print(f"{path.name}: {'ok' if ok else 'FAILED'}: {message}")
    finally:
        spawner.close()
    return 0 if ok_all else 1


def _select(cache: EnvCache, names: list[str], everything: bool) -> list[Path]:
    entries = {path.name: path for path, _ in cache.entries()}
    if everything:
        return list(entries.values())
    unknown = [name for name in names if name not in entries]
    if unknown:
        raise ConfigError(f"no environment named {', '.join(unknown)} (see `mcpsim cache list`)")
    return [entries[name] for name in names]


def _ago(stamp: float) -> str:
    seconds = time.time() - stamp
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"
