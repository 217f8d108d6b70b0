"""`mcpsim rollout|replay|audit|report|demo` as a user runs them: real processes, exit codes, output."""

import json
import subprocess
import sys
import time

import psutil

from helpers.serve import survivors


def mcpsim_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mcpsim", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_rollout_replay_audit_report_round_trip(frozen_lake_server, tmp_path):
    first, second = tmp_path / "random.jsonl", tmp_path / "playback.jsonl"
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{s}", "seed": s}) + "\n" for s in range(3)))
    url = frozen_lake_server.mcp

    done = mcpsim_cli("rollout", "--url", url, "--dataset", str(rows), "--steps", "15", "--record", str(first))
    assert done.returncode == 0, done.stderr
    assert "3 episodes" in done.stdout and "0 failed" in done.stdout
    assert "r0" in done.stdout and "recorded to" in done.stdout

    done = mcpsim_cli(
        "rollout", "--url", url, "--policy", f"playback:{first}", "--steps", "15", "--record", str(second)
    )
    assert done.returncode == 0, done.stderr

    done = mcpsim_cli("replay", str(first))
    assert done.returncode == 0, done.stderr
    assert "steps/s" in done.stdout and "3 episodes" in done.stdout

    done = mcpsim_cli("audit", str(first), "--url", url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deterministic: every replayed step matched" in done.stdout

    done = mcpsim_cli("report", str(first), str(second))
    assert done.returncode == 0, done.stderr
    assert "random.jsonl (random)" in done.stdout and "playback.jsonl (playback)" in done.stdout
    assert "tool latency p50/p90/p99 ms" in done.stdout

    done = mcpsim_cli("report", "--json", str(first), str(second))
    a, b = json.loads(done.stdout)
    for key in ("episodes", "success_rate", "mean_reward", "mean_steps", "total_steps"):
        assert a[key] == b[key], key


def test_bad_input_gets_a_message_and_an_exit_code(tmp_path):
    done = mcpsim_cli("rollout", "--url", "http://127.0.0.1:9/mcp", "--seeds", "1-2", "--steps", "3")
    assert done.returncode == 1
    assert "1 x cannot open an MCP session at http://127.0.0.1:9/mcp?seed=2: ConnectError" in done.stdout
    assert "2 failed" in done.stdout

    done = mcpsim_cli("rollout", "--url", "http://127.0.0.1:9/mcp", "--dataset", str(tmp_path / "none.jsonl"))
    assert done.returncode == 2 and "cannot read dataset" in done.stderr

    done = mcpsim_cli("rollout", "--url", "http://127.0.0.1:9/mcp", "--seeds", "1", "--policy", "magic")
    assert done.returncode == 2 and "use random[:SEED], openai:MODEL" in done.stderr

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "header", "format": "mcpsim.trajectory/1"}\n{"type": "step", "env_')
    done = mcpsim_cli("replay", str(broken))
    assert done.returncode == 2 and "broken.jsonl:2: not valid JSON" in done.stderr
    done = mcpsim_cli("replay", "--lenient", str(broken))
    assert done.returncode == 0 and "problem:" in done.stdout


def test_demo_runs_on_the_client_and_leaves_nothing_behind():
    process = psutil.Popen(
        [sys.executable, "-m", "mcpsim", "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen: dict[int, float] = {}
    while process.poll() is None:  # remember every process the demo starts, to check none survives it
        try:
            for child in process.children(recursive=True):
                seen.setdefault(child.pid, child.create_time())
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    output = process.stdout.read()
    assert process.returncode == 0, output
    assert len(seen) >= 8  # 8 FrozenLake instances (and the pool's watchdog)
    for column in ("seed", "steps", "reward", "outcome"):
        assert column in output
    table_rows = [line for line in output.splitlines() if line.startswith("│")]
    assert len(table_rows) == 8
    assert all(any(word in row for word in ("goal", "hole", "timeout", "truncated")) for row in table_rows)
    assert "instances left running: 0" in output
    assert survivors(seen) == []
