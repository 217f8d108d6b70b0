"""`mcpsim serve`: the managed simulation server, over HTTP or (`--stdio`) to one client."""

import argparse
import os
from pathlib import Path

import anyio

from mcpsim.cli.server_options import add_server_options, credentials
from mcpsim.errors import ConfigError, InvalidSeed, JsonTextError
from mcpsim.isolation import ISOLATIONS, IsolationConfig
from mcpsim.pool import SHIPPED_ENVS, TRANSPORTS, PoolConfig, for_env, parse_command
from mcpsim.proc import parse_port_range
from mcpsim.proc.sandbox import LEVELS, Sandbox, SandboxConfig, format_size, parse_size
from mcpsim.protocol.jsontext import parse_json_text
from mcpsim.ray.config import DEFAULT_LEASE, LOCAL_PORTS, RayConfig
from mcpsim.wire import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_IN_FLIGHT_LIMIT,
    SEED_VARIABLE,
    check_max_in_flight,
    parse_seed,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the managed simulation server")
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
    p.add_argument(
        "--max-in-flight",
        type=int,
        metavar="N",
        help="with --stdio: requests of a 2026-07-28 client on a handshake-era server served at once; one more "
        f"is refused at once (-32012) (default {DEFAULT_MAX_IN_FLIGHT}, at most {MAX_IN_FLIGHT_LIMIT})",
    )
    p.add_argument(
        "--json-response", action="store_true", help="answer /mcp and /envs/{id}/mcp requests with JSON bodies, not SSE"
    )
    p.add_argument(
        "--orphan-timeout",
        type=float,
        default=60.0,
        help="seconds after which an instance started by a handle-less 2026-07-28 request ends if its handle is"
        " never used again (default 60)",
    )
    p.add_argument(
        "--fork-server",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start Python servers as forks of one template that imported them once (the default without "
        "--sandbox; other servers, and any the template cannot preload safely, spawn); --no-fork-server: spawn",
    )
    p.add_argument(
        "--warm",
        type=int,
        metavar="N",
        help="keep N unclaimed instances started ahead of sessions (announced seeds first, else random seeds)",
    )
    p.add_argument(
        "--keep-home",
        action="store_true",
        help="instances keep this HOME and TMPDIR (default: their own, inside their private {instance_dir})",
    )
    p.add_argument(
        "--instance-root",
        type=Path,
        metavar="DIR",
        help="where instance directories are made (default: the system temporary directory)",
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
    add_sandbox_options(p)
    p.add_argument(
        "--fast-io",
        action="store_true",
        help="serve with uvloop and httptools when installed (pip install 'mcpsim[fast]'); see docs/performance.md",
    )
    add_ray_options(p)
    add_server_options(p)
    p.set_defaults(handler=run)


def add_ray_options(p: argparse.ArgumentParser) -> None:
    """`--ray` and its companions (`mcpsim.ray`; docs/scaling.md)."""
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="place instances on a Ray cluster: auto (RAY_ADDRESS, else the cluster `ray start` made here),"
        " ray://HOST:PORT (the head's Ray Client server), HOST:PORT (GCS), or local[:N] (start N nodes here);"
        " --max-instances is then per node",
    )
    p.add_argument(
        "--ray-lease",
        type=float,
        nargs="?",
        const=DEFAULT_LEASE,
        metavar="SECONDS",
        help=f"end this front's instances SECONDS after it dies (default without it: their idle timeout;"
        f" bare flag: {DEFAULT_LEASE:g} s)",
    )
    p.add_argument(
        "--ray-port-base",
        type=int,
        default=0,
        metavar="PORT",
        help=f"with --ray local:N: Ray's ports are PORT..PORT+{LOCAL_PORTS - 1} (default: free ones)",
    )
    p.add_argument(
        "--ray-temp-dir", type=Path, metavar="DIR", help="with --ray local:N: Ray's files (default: RAY_TMPDIR or /tmp)"
    )


def add_sandbox_options(p: argparse.ArgumentParser) -> None:
    """`--sandbox` and the `--limit-*` flags (`mcpsim.proc.sandbox`; docs/isolation.md); `off` switches a limit off."""
    defaults = SandboxConfig()
    p.add_argument(
        "--sandbox",
        choices=LEVELS,
        default="none",
        help="run each instance in bwrap namespaces: standard (private loopback only) or strict (no network)",
    )
    p.add_argument("--limit-memory", default=format_size(defaults.memory or 0), help="per process, e.g. 512M, 1G")
    p.add_argument("--limit-pids", default=str(defaults.pids), help="processes and threads per instance")
    p.add_argument("--limit-cpu-seconds", default=str(defaults.cpu_seconds), help="CPU time per process")
    p.add_argument("--limit-files", default=str(defaults.files), help="open files per process")
    p.add_argument("--limit-file-size", default=format_size(defaults.file_size or 0), help="largest file written")


def sandbox_config(args: argparse.Namespace) -> SandboxConfig:
    def value(raw: str, flag: str, size: bool = False) -> int | None:
        if raw.lower() in ("off", "none", "unlimited"):
            return None
        if size:
            return parse_size(raw, flag)
        if not raw.isdigit():
            raise ConfigError(f"{flag}: {raw!r} is not a whole number (or off)")
        return int(raw)

    return SandboxConfig(
        level=args.sandbox,
        memory=value(args.limit_memory, "--limit-memory", size=True),
        pids=value(args.limit_pids, "--limit-pids"),
        cpu_seconds=value(args.limit_cpu_seconds, "--limit-cpu-seconds"),
        files=value(args.limit_files, "--limit-files"),
        file_size=value(args.limit_file_size, "--limit-file-size", size=True),
    )


def pool_config(args: argparse.Namespace) -> PoolConfig:
    """The pool the flags describe (`PoolConfig` and `IsolationConfig` check themselves)."""
    if args.server:
        command = parse_command(args.server, args.backend_transport)
    else:
        command = for_env(args.env or "frozen_lake", args.backend_transport or "stdio")
    return PoolConfig(
        command=command,
        max_instances=args.max_instances,
        idle_timeout=args.idle_timeout,
        startup_timeout=args.startup_timeout,
        request_timeout=args.request_timeout if args.request_timeout > 0 else None,
        port_range=parse_port_range(args.port_range),
        isolation=IsolationConfig(args.isolation, args.requirements, args.conda_exe),
        fork_server=args.fork_server,
        warm=args.warm,
        fork_preload=tuple(name for name in args.fork_preload.split(",") if name),
        max_message_bytes=args.max_message_bytes,
        keep_home=args.keep_home,
        instance_root=args.instance_root,
        sandbox=sandbox_config(args),
    )


def run(args: argparse.Namespace) -> int:
    from mcpsim.server import ServeConfig, serve
    from mcpsim.server.fastio import loop_options
    from mcpsim.server.ops import configure_logging

    pool = pool_config(args)
    if args.ray is not None:
        ray_config(args)  # refuse bad --ray options before anything starts
    elif args.ray_lease is not None:
        raise ConfigError("--ray-lease needs --ray")
    if args.max_in_flight is not None and not args.stdio:
        raise ConfigError("--max-in-flight needs --stdio (over HTTP every request is its own connection)")
    max_in_flight = check_max_in_flight(DEFAULT_MAX_IN_FLIGHT if args.max_in_flight is None else args.max_in_flight)
    configure_logging(args.log_format, args.log_level)
    if pool.sandbox.enabled:  # refuse in one line before serving, rather than from inside the server's start-up
        probe = Sandbox(pool.sandbox)
        probe.start()
        probe.close()
    if args.stdio:
        from mcpsim.server.fronts import serve_stdio

        seed = args.seed if args.seed is not None else _env_seed(os.environ.get(SEED_VARIABLE))
        return anyio.run(serve_stdio, pool, seed, _stdio_config(args.config), max_in_flight)
    config = ServeConfig(  # refuses a non-loopback bind without a token, up front
        pool=pool,
        host=args.host,
        port=args.port,
        json_response=args.json_response,
        credentials=credentials(args),
        orphan_timeout=args.orphan_timeout,
        fast_io=args.fast_io,
    )
    if args.ray is not None:
        from mcpsim.ray import serve_ray

        anyio.run(serve_ray, config, ray_config(args), args.log_level, backend_options=loop_options(args.fast_io))
        return 0
    anyio.run(serve, config, backend_options=loop_options(args.fast_io))
    return 0


def ray_config(args: argparse.Namespace) -> RayConfig:
    if args.stdio:
        raise ConfigError("--ray serves HTTP fronts: it cannot be combined with --stdio")
    if args.auth_token_file is not None:
        raise ConfigError("--ray: one token (--auth-token or MCPSIM_AUTH_TOKEN) for now, not --auth-token-file")
    return RayConfig(args.ray, args.ray_lease, args.ray_port_base, args.ray_temp_dir)


def _stdio_config(raw: str | None) -> dict[str, object]:
    try:
        config = parse_json_text(raw) if raw else {}
    except JsonTextError as exc:
        raise ConfigError(f"--config is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError("--config must be a JSON object")
    return config


def _env_seed(raw: str | None) -> int | None:
    try:
        return parse_seed(raw)
    except InvalidSeed as exc:
        raise ConfigError(f"{SEED_VARIABLE}: {exc}") from None
