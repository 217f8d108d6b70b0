"""eval-protocol's own rollout client (`ep.make` + `ep.rollout`, in its own venv) through `mcpsim serve`.

Its client sends seed, config and its own session key in `clientInfo` extras, and reads reward and episode end
from the server's `/control/*` routes keyed by that session key. Behind mcpsim each session is its own instance
of a server written to eval-protocol's conventions (`tests/servers/ep_frozen_lake.py`): the seeds must reach the
instances (the maps are the seeds' maps), reward and termination must arrive, and a rollout that is aborted,
or whose client vanishes, must leave no instance.
"""

import contextlib
import json
import signal
import subprocess
import time

from helpers.serve import ServeProcess, port_range
from interop.clients import EP_DRIVER, ep_python, ep_server_command, lake_module

LAKE = lake_module()


def serve_ep(serve_factory, offset: int, *args: str) -> ServeProcess:
    return serve_factory(
        "--server", ep_server_command(), "--port-range", port_range(offset, 20), *args, ready_timeout=120
    )


def instances(serve: ServeProcess) -> list[dict]:
    return serve.get("/api/instances").json()


def wait_for_no_instance(serve: ServeProcess, within: float) -> float:
    """Seconds until `/api/instances` is empty and no instance process is left; fails after `within`."""
    started = time.monotonic()
    while instances(serve) or serve.instance_processes():
        assert time.monotonic() - started < within, f"instances left after {within} s: {instances(serve)}"
        time.sleep(0.1)
    return time.monotonic() - started


def read_until(driver: subprocess.Popen, prefix: str) -> dict:
    """The driver's next JSON line starting with `prefix` (eval-protocol's own progress lines come between)."""
    assert driver.stdout is not None
    for line in driver.stdout:
        if line.startswith(prefix):
            return json.loads(line)
    raise AssertionError(f"the driver ended before printing {prefix}: exit code {driver.wait(10)}")


def test_seeds_rewards_termination_and_no_instance_left_after_abort(serve_factory, tmp_path):
    """One eval-protocol process (its import takes seconds) runs the three phases against three servers:
    complete rollouts; rollouts cancelled midway; a client killed midway (reaped by a 2 s idle timeout)."""
    root = tmp_path / "instances"
    driver = subprocess.Popen(  # it imports eval-protocol while the servers start
        [str(ep_python()), str(EP_DRIVER), "--args-on-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        complete = serve_ep(serve_factory, 1700, "--instance-root", str(root))
        aborted = serve_ep(serve_factory, 1720)
        vanished = serve_ep(serve_factory, 1740, "--idle-timeout", "2")
        phases = ["--url", complete.mcp, "--seeds", "11,11,23", "--abort-url", aborted.mcp, "--abort-seeds", "5,6"]
        phases += ["--hang-url", vanished.mcp, "--hang-seeds", "9"]
        assert driver.stdin is not None
        driver.stdin.write(json.dumps(phases) + "\n")
        driver.stdin.flush()

        # 1. complete rollouts: each seed reaches its instance, rewards and termination come back
        rows = read_until(driver, '{"rows"')["rows"]
        assert [row["seed"] for row in rows] == [11, 11, 23]
        for row in rows:
            expected = LAKE.generate_map(row["seed"])
            assert row["grid"] == "\n".join(expected), f"seed {row['seed']} did not reach its instance"
            assert len(row["rewards"]) == len(LAKE.shortest_path(expected))  # the walk ended at the goal
            assert row["rewards"][-1] == 1.0 and sum(row["rewards"]) == 1.0
            assert row["terminated"][-1] is True and not any(row["terminated"][:-1])
            assert row["status"]["message"] == "Rollout finished"
        assert rows[0]["grid"] != rows[2]["grid"]
        wait_for_no_instance(complete, within=10)  # eval-protocol closed each session (DELETE): each one ended
        assert [list(pool.iterdir()) for pool in root.iterdir()] == [[]], "an instance directory was left"

        # 2. rollouts cancelled midway: eval-protocol's cleanup ends their sessions, so their instances
        read_until(driver, '{"stopped": "abort"')
        live = instances(aborted)
        assert sorted(item["seed"] for item in live) == [5, 6]
        deadline = time.monotonic() + 30  # a start may still be finishing on a loaded machine: ready, not failed
        while not all(item["state"] == "ready" for item in live) and time.monotonic() < deadline:
            time.sleep(0.2)
            live = instances(aborted)
        assert all(item["state"] == "ready" for item in live), [item["state"] for item in live]
        driver.stdin.write("\n")
        driver.stdin.flush()
        assert read_until(driver, '{"aborted"') == {"aborted": True}
        wait_for_no_instance(aborted, within=10)

        # 3. a client killed midway sends nothing: the idle timeout reaps its instance
        read_until(driver, '{"stopped": "hang"')
        assert [item["seed"] for item in instances(vanished)] == [9]
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        assert wait_for_no_instance(vanished, within=20) < 15
    finally:
        with contextlib.suppress(ProcessLookupError):
            driver.kill()
        driver.wait(10)
