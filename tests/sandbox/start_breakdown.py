"""Where a sandboxed plain spawn's extra start time goes: the sandbox's per-instance set-up, and the server's
start to its `initialize` answer, plain and sandboxed alternating (same load).

`PYTHONPATH=src python tests/sandbox/start_breakdown.py [--level strict] [--rounds 20] [--memory 1G|off]`:
per round, `Sandbox.open_instance` + `close` timed apart (work dir, memory/pids control groups, seccomp
pipe, command line), then `python -m mcpsim.envs.frozen_lake` (stdio) started plain and sandboxed (as the pool
spawns it: joins its limit groups and sets its rlimits between fork and exec), timed to its `initialize`
answer. Prints medians."""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from mcpsim.proc.sandbox import Sandbox, SandboxConfig
from mcpsim.proc.sandbox.config import parse_size

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b", "version": "0"}},
}


def until_initialized(argv, env, pass_fds=(), preexec=None) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        pass_fds=pass_fds,
        preexec_fn=preexec,
        start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write((json.dumps(INIT) + "\n").encode())
    process.stdin.flush()
    line = process.stdout.readline()
    elapsed = (time.perf_counter() - started) * 1000
    assert b'"result"' in line, line
    process.stdin.close()
    process.wait(10)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--level", default="strict")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--memory", default="1G")
    args = parser.parse_args()
    config = SandboxConfig(
        level=args.level, memory=None if args.memory == "off" else parse_size(args.memory, "--limit-memory")
    )
    sandbox = Sandbox(config)
    sandbox.start()
    argv = [sys.executable, "-m", "mcpsim.envs.frozen_lake"]
    env = {**os.environ, "MCPSIM_SEED": "1"}
    opened, closed, plain, boxed = [], [], [], []
    try:
        for i in range(args.rounds):
            plain.append(until_initialized(argv, env))
            t = time.perf_counter()
            box = sandbox.open_instance(f"b{i}", argv, None, env, sys.executable)
            opened.append((time.perf_counter() - t) * 1000)

            def preexec(box=box) -> None:
                for procs in box.procs_files:
                    fd = os.open(procs, os.O_WRONLY)
                    os.write(fd, b"0")
                    os.close(fd)
                for name, soft, hard in box.preexec_rlimits:
                    resource.setrlimit(getattr(resource, name), (soft, hard))

            boxed.append(until_initialized(box.argv, {**env, **box.env}, box.pass_fds, preexec))
            box.started()
            t = time.perf_counter()
            box.close()
            closed.append((time.perf_counter() - t) * 1000)
    finally:
        sandbox.close()
    print(f"limits enforced by: {sandbox.describe()['enforced_by']}")
    for name, values in (("open_instance", opened), ("close", closed), ("plain start", plain), ("boxed start", boxed)):
        print(f"{name:<14} median {statistics.median(values):7.1f} ms  (min {min(values):.1f}, max {max(values):.1f})")


if __name__ == "__main__":
    main()
