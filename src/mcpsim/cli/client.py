"""`mcpsim rollout|replay|audit|report`: the rollout client on the command line.

Every command prints a readable result and returns an exit code: 0 all good, 1 the run found something (an
episode failed, an audit diverged), 2 bad input (message on stderr).
"""

import argparse
import importlib
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from rich.console import Console
from rich.table import Table

from mcpsim.errors import ConfigError, RecordingError
from mcpsim.trajectory import Trajectory, read_recording
from mcpsim.wire import CLIENT_PROTOCOLS

if TYPE_CHECKING:
    from mcpsim.client import Policy

# The client (the MCP SDK, jsonschema, httpx2) is imported by the handlers, not here: every `mcpsim` command
# builds this module's parsers.

MAX_TABLE_ROWS = 64
VISION = {"auto": "auto", "on": True, "off": False}


def register(subparsers: argparse._SubParsersAction) -> None:
    """`rollout`, `replay`, `audit`, `report`, each with its handler below."""
    sub = subparsers
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
    p.add_argument(
        "--branch-at",
        type=int,
        metavar="N",
        help="copy each episode after N steps into --branches live copies, each played on and recorded "
        "(a managed server's /mcp)",
    )
    p.add_argument("--branches", type=int, metavar="K", help="copies per episode at --branch-at (1-64)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint for openai:MODEL (vLLM, Ollama, ...)")
    p.add_argument("--vision", choices=["auto", "on", "off"], default="auto", help="send image observations")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-retries", type=int, default=6, help="model API retries on 429/5xx/connection errors")
    p.add_argument("--logprobs", action="store_true", help="record the logprob of every completion token")
    p.add_argument("--top-logprobs", type=int, metavar="N", help="also the N most likely tokens per position (0-20)")
    p.add_argument(
        "--token-ids",
        action="store_true",
        help="record prompt and completion token ids and the generated-token mask (vLLM/SGLang servers)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for any one MCP request")
    add_protocol_option(p)
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    p.set_defaults(handler=run_rollout)

    p = sub.add_parser("replay", help="re-create the trajectories of a recording, with no server")
    p.add_argument("file")
    p.add_argument("--reward-fn", metavar="MODULE:FUNCTION", help="re-score every episode with this function")
    p.add_argument("--lenient", action="store_true", help="keep the complete episodes of a damaged file")
    p.set_defaults(handler=run_replay)

    p = sub.add_parser("audit", help="replay a recording's actions against fresh instances; report divergences")
    p.add_argument("file")
    p.add_argument("--url", required=True, help="MCP endpoint to audit")
    p.add_argument("--max-concurrency", type=int, default=16)
    p.add_argument("--lenient", action="store_true", help="audit the complete episodes of a damaged file")
    add_protocol_option(p)
    p.set_defaults(handler=run_audit)

    p = sub.add_parser("report", help="success, reward, steps, latency and tokens of one or more recordings")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--lenient", action="store_true", help="report the complete episodes of damaged files")
    p.set_defaults(handler=run_report)


def _console() -> Console:
    """Rich output; piped output gets a wide fixed width so tables do not wrap labels."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def parse_seeds(spec: str) -> list[int]:
    """`0-63`, `1,2,5-7` -> seeds."""
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        low, sep, high = part.partition("-")
        try:
            if sep:
                if int(high) < int(low):
                    raise ValueError
                seeds.extend(range(int(low), int(high) + 1))
            elif part:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(f"--seeds: {part!r} is not a seed or a range like 0-63") from None
    if not seeds:
        raise ConfigError("--seeds is empty")
    return seeds


def policy_from_spec(spec: str, args: argparse.Namespace) -> "Policy":
    """`random[:SEED]`, `openai:MODEL`, `fireworks:MODEL`, `playback:FILE`."""
    from mcpsim.client import FireworksPolicy, OpenAIPolicy, PlaybackPolicy, RandomPolicy

    kind, _, value = spec.partition(":")
    options: dict[str, Any] = {
        "vision": VISION[args.vision],
        "temperature": args.temperature,
        "max_retries": args.max_retries,
    }
    if kind == "random":
        if value and not value.isdigit():
            raise ConfigError(f"--policy {spec!r}: the seed of random[:SEED] must be a non-negative integer")
        return RandomPolicy(int(value) if value else 0)
    if kind in ("openai", "fireworks") and value:
        options.update(logprobs=args.logprobs, top_logprobs=args.top_logprobs, token_ids=args.token_ids)
        if kind == "fireworks":
            return FireworksPolicy(value, **options)
        return OpenAIPolicy(value, base_url=args.base_url, **options)
    if kind == "playback" and value:
        return PlaybackPolicy(read_recording(value))
    raise ConfigError(f"--policy {spec!r}: use random[:SEED], openai:MODEL, fireworks:MODEL or playback:FILE")


def _dataset(args: argparse.Namespace, policy: "Policy") -> Any:
    from mcpsim.client import PlaybackPolicy
    from mcpsim.client.dataset import seed_rows

    if args.dataset and args.seeds:
        raise ConfigError("give --dataset or --seeds, not both")
    if args.dataset:
        return args.dataset
    if args.seeds:
        return seed_rows(parse_seeds(args.seeds))
    if isinstance(policy, PlaybackPolicy) and policy.recording is not None:
        return policy.recording.dataset
    raise ConfigError("give --dataset rows.jsonl or --seeds 0-63 (or --policy playback:FILE to reuse its episodes)")


def episode_table(trajectories: list[Trajectory], title: str) -> Table:
    table = Table(title=title)
    for column in ("env", "seed", "steps", "reward", "outcome"):
        table.add_column(column, justify="left" if column in ("env", "outcome") else "right")
    for trajectory in trajectories[:MAX_TABLE_ROWS]:
        outcome = trajectory.outcome + (f": {trajectory.error['message']}" if trajectory.error else "")
        table.add_row(
            trajectory.env_id,
            str(trajectory.seed),
            str(len(trajectory.steps)),
            f"{trajectory.total_reward:g}",
            outcome[:160],
        )
    if len(trajectories) > MAX_TABLE_ROWS:
        table.caption = f"first {MAX_TABLE_ROWS} of {len(trajectories)} episodes"
    return table


def summary_line(trajectories: list[Trajectory], elapsed: float | None = None) -> str:
    n = len(trajectories)
    steps = sum(len(t.steps) for t in trajectories)
    success = sum(t.success for t in trajectories)
    errors = [t for t in trajectories if t.error]
    mean = sum(t.total_reward for t in trajectories) / n if n else 0.0
    timing = f" in {elapsed:.1f} s" if elapsed is not None else ""
    return f"{n} episodes, {steps} steps{timing}: success {success}/{n}, mean reward {mean:.3g}, {len(errors)} failed"


def error_lines(trajectories: list[Trajectory], limit: int = 5) -> list[str]:
    counts = Counter(t.error["message"] for t in trajectories if t.error)
    return [f"  {n} x {message}" for message, n in counts.most_common(limit)]


def load_callable(spec: str) -> Any:
    """`package.module:function` -> the function (for `--reward-fn`)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--reward-fn {spec!r}: use package.module:function")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--reward-fn {spec!r}: {exc}") from None
    if not callable(function):
        raise ConfigError(f"--reward-fn {spec!r} is not callable")
    return function


def run_rollout(args: argparse.Namespace) -> int:
    from mcpsim.client import make, rollout

    console = _console()
    policy = policy_from_spec(args.policy, args)
    envs = make(
        args.url, dataset=_dataset(args, policy), samples=args.samples, timeout=args.timeout, protocol=args.protocol
    )
    if args.record:
        try:
            Path(args.record).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"cannot write the recording {args.record}: {exc.strerror or exc}") from None

    async def run() -> list[Trajectory]:
        try:
            return await rollout(
                envs,
                policy,
                steps=args.steps,
                max_concurrency=args.max_concurrency,
                record=args.record,
                progress=None if args.progress == "auto" else args.progress == "on",
                announce=not args.no_announce,
                branch_at=args.branch_at,
                branches=args.branches,
            )
        finally:
            await policy.aclose()

    started = time.perf_counter()
    trajectories = anyio.run(run)
    elapsed = time.perf_counter() - started
    console.print(episode_table(trajectories, f"rollout of {args.policy} against {args.url}"))
    console.print(summary_line(trajectories, elapsed))
    for line in error_lines(trajectories):
        console.print(line, markup=False, soft_wrap=True)
    if args.record:
        console.print(f"recorded to {args.record}")
    return 1 if any(t.error for t in trajectories) else 0


def run_replay(args: argparse.Namespace) -> int:
    from mcpsim.client.replay import rescore

    console = _console()
    started = time.perf_counter()
    recording = read_recording(args.file, strict=not args.lenient)
    elapsed = time.perf_counter() - started
    trajectories = recording.trajectories
    if args.reward_fn:
        rescore(trajectories, load_callable(args.reward_fn))
    console.print(episode_table(trajectories, f"replay of {args.file} ({recording.header.get('policy')})"))
    console.print(summary_line(trajectories))
    rate = recording.steps / elapsed if elapsed > 0 else float("inf")
    console.print(
        f"read {recording.steps} steps of {len(trajectories)} episodes in {elapsed:.3f} s ({rate:,.0f} steps/s)"
    )
    for problem in recording.problems:
        console.print(f"problem: {problem}", markup=False, soft_wrap=True)
    return 0


def add_protocol_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--protocol",
        choices=CLIENT_PROTOCOLS,
        default="auto",
        help="MCP revision: auto (2026-07-28 if the server speaks it, else the handshake), 2026-07-28, legacy",
    )


def run_audit(args: argparse.Namespace) -> int:
    from mcpsim.client import audit

    console = _console()
    recording = read_recording(args.file, strict=not args.lenient)
    report = anyio.run(
        lambda: audit(recording, args.url, max_concurrency=args.max_concurrency, progress=None, protocol=args.protocol)
    )
    console.print(report.summary(), markup=False, soft_wrap=True)
    console.print("deterministic: every replayed step matched" if report.ok else "NOT deterministic (see above)")
    return 0 if report.ok else 1


def run_report(args: argparse.Namespace) -> int:
    from mcpsim.client.report import report_table, run_stats

    recordings = [read_recording(path, strict=not args.lenient) for path in args.files]
    stats = [run_stats(recording) for recording in recordings]
    if args.json:
        print(json.dumps([{"label": s.label, **s.values} for s in stats], indent=2))
    else:
        _console().print(report_table(stats))
    return 0
