"""`mcpsim bench`: session starts, proxied call latency and throughput, instance memory; or the transport matrix;
or branch latency (`--branch`)."""

import argparse
import json
from pathlib import Path
from typing import Any

import anyio

from mcpsim.bench import MODES
from mcpsim.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="measure session start, proxied call latency and instance memory")
    p.add_argument("--mode", choices=MODES, default="managed")
    p.add_argument("--compare", metavar="MODES", help=f"comma-separated modes to run in one go, e.g. {','.join(MODES)}")
    p.add_argument("--sessions", type=int, default=20, help="sequential new sessions timed to first tool result")
    p.add_argument(
        "--steps", type=int, help="calls per session in the latency phase (default 200; --starts: per round, 50)"
    )
    p.add_argument("--concurrency", type=int, default=1, help="sessions calling at once in the latency phase")
    p.add_argument("--burst", type=int, default=64, help="new sessions opened at once (0 to skip)")
    p.add_argument("--memory-sessions", type=int, default=16, help="sessions held open to measure RSS/USS")
    p.add_argument("--live", type=int, default=0, help="also hold this many sessions live at once (e.g. 500)")
    p.add_argument(
        "--matrix", action="store_true", help="instead: per-call latency for every front/backend transport pair"
    )
    p.add_argument(
        "--protocol",
        choices=["2026-07-28", "2025-11-25", "both"],
        help="instead: per-call latency of lake_move through mcpsim's /mcp in this MCP era (--steps calls),"
        " beside a standalone server in the same era; both: the two eras interleaved, under the same load",
    )
    p.add_argument(
        "--rollout",
        type=int,
        metavar="N",
        help="instead: N-episode rollouts end to end (fork server, in-process ceiling, plain spawn): steps/s and "
        "CPU per step by process",
    )
    p.add_argument("--rollout-concurrency", type=int, default=64, help="episodes at once in --rollout")
    p.add_argument("--rollout-steps", type=int, default=30, help="maximum steps per episode in --rollout")
    p.add_argument(
        "--rollout-modes",
        default="managed-fork,in-process,managed",
        help="--rollout modes, interleaved per round: managed-fork, in-process, managed, managed-fork-json "
        "(--json-response), managed-fork-fast (--fast-io)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        help="--rollout/--gateway/--starts rounds (medians, per-round ratios; default 1, --starts 20)",
    )
    p.add_argument(
        "--starts",
        metavar="MODES",
        help="instead: new session to first result (minimal HTTP and SDK client) and per-call latency of these "
        "modes, all servers up at once and measured in turn each round, reported as per-round differences "
        "against the first mode (paired medians), e.g. managed-fork,managed-fork-strict",
    )
    p.add_argument(
        "--branch",
        action="store_true",
        help="instead: branch latency for k=1,8,64 copies of a --steps FrozenLake episode (fork, replay, client)",
    )
    p.add_argument(
        "--branch-methods",
        default="fork,replay,client",
        help="--branch methods to measure: fork (live fork), replay (server-side replay), client (client replay)",
    )
    p.add_argument(
        "--gateway",
        metavar="N,N,...",
        help="instead: steady-state calls/s with N open sessions, mcpsim (fork server) vs supergateway --stateful "
        "serving the same stdio server, e.g. 4,16,64 (needs supergateway from npm; see docs/performance.md)",
    )
    p.add_argument("--gateway-seconds", type=float, default=10.0, help="measuring window per --gateway run")
    p.add_argument("--gateway-bin", help="the supergateway executable (default: .mcpsim/tools/node_modules/.bin)")
    p.add_argument(
        "--port-base",
        type=int,
        metavar="N",
        help="lay out every port the bench binds from N (servers, mcpsim serve's --port-range, a local Ray cluster;"
        " see docs/performance.md); default: ports the kernel picks",
    )
    p.add_argument("--json", metavar="FILE", default="bench.json", help="where to write the results")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mcpsim.bench import BenchSettings, print_report, run_bench
    from mcpsim.bench.ports import use_port_base

    use_port_base(args.port_base)  # refuses a base whose span does not fit, before anything starts
    if args.starts is not None:
        from mcpsim.bench.starts import StartsSettings, print_starts, run_starts

        given = {name: value for name in ("rounds", "steps") if (value := getattr(args, name)) is not None}
        starts_settings = StartsSettings(modes=tuple(args.starts.split(",")), **given)  # else its own defaults
        starts = anyio.run(run_starts, starts_settings)
        _write(args.json, starts)
        print_starts(starts)
        return 0
    rounds = 1 if args.rounds is None else args.rounds
    steps = BenchSettings.steps if args.steps is None else args.steps
    if args.protocol:
        from mcpsim.bench.eras import print_protocol, run_protocol

        result = anyio.run(run_protocol, args.protocol, steps)
        _write(args.json, result)
        print_protocol(result)
        return 0
    if args.rollout is not None:
        from mcpsim.bench.rollout import RolloutSettings, print_rollout, run_rollout_bench

        rollout_settings = RolloutSettings(
            episodes=args.rollout,
            concurrency=args.rollout_concurrency,
            steps=args.rollout_steps,
            rounds=rounds,
            modes=tuple(args.rollout_modes.split(",")),
        )
        rollout_report = anyio.run(run_rollout_bench, rollout_settings)
        _write(args.json, rollout_report)
        print_rollout(rollout_report)
        return 0
    if args.gateway is not None:
        from mcpsim.bench.gateway import GatewaySettings, print_gateway, run_gateway_bench

        try:
            counts = tuple(int(n) for n in args.gateway.split(","))
        except ValueError:
            raise ConfigError(f"--gateway takes session counts such as 4,16,64, got {args.gateway!r}") from None
        gateway_settings = GatewaySettings(counts, args.gateway_seconds, rounds, args.gateway_bin)
        gateway_report = anyio.run(run_gateway_bench, gateway_settings)
        _write(args.json, gateway_report)
        print_gateway(gateway_report)
        return 0
    if args.matrix:
        from mcpsim.bench.matrix import print_matrix, run_matrix

        matrix = anyio.run(run_matrix, steps)
        _write(args.json, matrix)
        print_matrix(matrix)
        return 0
    if args.branch:
        from mcpsim.bench.branching import print_branching, run_branching

        methods = tuple(args.branch_methods.split(","))
        unknown = [method for method in methods if method not in ("fork", "replay", "client")]
        if unknown:
            raise ConfigError(f"unknown --branch-methods {', '.join(unknown)}; choose from fork, replay, client")
        branching = anyio.run(run_branching, steps, (1, 8, 64), 3, methods)
        _write(args.json, branching)
        print_branching(branching)
        return 0
    modes = args.compare.split(",") if args.compare else [args.mode]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        raise ConfigError(f"unknown bench mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    settings = BenchSettings(args.sessions, steps, args.concurrency, args.burst, args.memory_sessions, args.live)
    report = anyio.run(run_bench, modes, settings)
    _write(args.json, report)
    print_report(report)
    return 0


def _write(path: str, results: Any) -> None:
    try:
        Path(path).write_text(json.dumps(results, indent=2))
    except OSError as exc:
        raise ConfigError(f"--json {path}: cannot write it: {exc.strerror or exc}") from None
