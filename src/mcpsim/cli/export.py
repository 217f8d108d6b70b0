"""`mcpsim export FILE --format hf|chat|trl --out DIR`: a training dataset from a trajectory file."""

import argparse

from mcpsim.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="write a training dataset (Parquet or JSONL) from a trajectory file")
    p.add_argument("file", help="a trajectory JSONL file (mcpsim.trajectory/1 or /2)")
    p.add_argument(
        "--format",
        required=True,
        choices=["hf", "chat", "trl"],
        help="hf: datasets Parquet, one row per episode; chat: JSONL of messages (SFT); trl: prompt/completion",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write into (created if missing)")
    p.add_argument("--lenient", action="store_true", help="export the complete episodes of a damaged file")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mcpsim.export import export

    if not args.file:
        raise ConfigError("give a trajectory file")
    try:
        import datasets

        datasets.disable_progress_bars()  # one line of output, not a bar per write
    except ImportError:
        pass  # export() says how to install it, for the formats that need it
    target = export(args.file, args.format, args.out, strict=not args.lenient)
    print(f"wrote {target}")
    return 0
