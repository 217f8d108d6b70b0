"""`mcpsim bench --rollout`: a tiny end-to-end rollout against every mode, its JSON shape and sane values.

No timing is asserted (the machine is shared); CPU accounting is, where the difference is structural: a plain
spawn imports the SDK in every instance (~0.75 s of CPU each) and a fork does not, so the children's CPU of
plain spawns must be far above the fork server's - which also proves instances that ended are counted.
"""

import json
import subprocess
import sys

MODES = ["managed-fork", "in-process", "managed"]


def test_rollout_bench_reports_rates_and_cpu_per_step_by_process(tmp_path):
    out = tmp_path / "rollout.json"
    argv = [sys.executable, "-m", "mcpsim", "bench", "--rollout", "4", "--rollout-concurrency", "4"]
    result = subprocess.run([*argv, "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["kind"] == "rollout" and set(report) >= {"settings", "load", "summary", "runs", "time"}
    assert report["settings"]["episodes"] == 4 and report["settings"]["concurrency"] == 4
    assert [run["mode"] for run in report["runs"]] == MODES and list(report["summary"]) == MODES
    steps = {run["steps"] for run in report["runs"]}
    assert len(steps) == 1 and steps.pop() >= 4  # same seeds, same per-episode random actions: same steps
    for run in report["runs"]:
        assert run["episodes"] == 4 and run["errors"] == 0, run["first_error"]
        assert run["steps_s"] > 0 and run["episodes_s"] > 0 and run["elapsed_s"] > 0
        assert set(run["cpu_ms_per_step"]) == {"client", "front", "children", "total"}
        cpu = run["cpu_ms_per_step"]
        assert cpu["client"] > 0 and cpu["front"] > 0
        assert abs(cpu["total"] - (cpu["client"] + cpu["front"] + cpu["children"])) < 0.01
        if run["mode"] == "in-process":
            assert cpu["children"] == 0  # one process, no instances
        else:
            assert cpu["children"] > 0
    summary = report["summary"]
    assert (
        summary["managed"]["cpu_ms_per_step"]["children"] > 3 * summary["managed-fork"]["cpu_ms_per_step"]["children"]
    )
    assert summary["managed-fork"]["steps_s_vs_in-process"] > 0 and summary["in-process"]["steps_s_vs_managed-fork"] > 0
    assert "managed-fork" in result.stdout and "CPU ms/step" in result.stdout


def test_rollout_bench_rejects_bad_settings_by_name(tmp_path):
    for args, message in ((["--rollout", "0"], "at least 1"), (["--rollout", "2", "--rollout-modes", "nope"], "nope")):
        result = subprocess.run(
            [sys.executable, "-m", "mcpsim", "bench", *args, "--json", str(tmp_path / "x.json")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
