"""`mcpsim render`: a GIF or PNG frames of one episode of a trajectory file."""

import argparse
from pathlib import Path

from mcpsim.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("render", help="make a GIF or PNG frames of one episode of a trajectory file")
    p.add_argument("file", help="trajectory JSONL (mcpsim.trajectory/1)")
    p.add_argument("--out", help="x.gif for an animated GIF, or a directory for PNG frames")
    p.add_argument("--frames", metavar="DIR", help="also write PNG frames into DIR")
    p.add_argument("--env-id", help="which episode (default: the first with images, else the first)")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--every", type=int, default=1, help="keep every Nth step (the last is always kept)")
    p.add_argument("--scale", type=float, default=1.0, help="resize frames by this factor")
    p.add_argument("--no-caption", action="store_true", help="no step/action/reward strip under the frames")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
