"""`mcpsim bench`: how fast sessions start, how much a proxied call costs, how much an instance weighs.

Every mode drives FrozenLake with the official MCP client from this process, against servers in other processes
(a real `mcpsim serve`, or standalone production servers for `direct`), so the numbers include everything a user
pays. Calls move LEFT from the start cell, which keeps every call a real step (the agent bumps the wall) for as
long as the benchmark runs. `--compare` runs several modes back to back and prints ratios against the first,
which holds up on a noisy machine better than absolute numbers do.

Modes: `direct` (the client talks streamable HTTP to one standalone production server per session; its spawn
time is a stdio start of the server by the client), `managed` (plain spawn per session), `managed-warm`
(seeds announced so instances start before their sessions), `managed-fork` (`--fork-server`), `in-process`
(`SessionEnvServer`: one process, one episode per session, no isolation; its memory is the server's growth per
open session).

`settings.py` (what to run, `MODES`), `run.py` (`run_bench`), `targets.py` (the servers measured), `measure.py`
(the phases), `report.py` (the table), `matrix.py` (`--matrix`), `rollout.py` and `rollout_client.py`
(`--rollout N`: whole rollouts end to end, CPU per step by process), `starts.py` (`--starts A,B`: starts and
per-call latency of modes kept up at once and measured in alternating rounds, paired against the first),
`eras.py` (`--protocol`), `branching.py` (`--branch`), `gateway.py` (`--gateway`), `cluster.py` (`ray-fork`),
`ports.py` (`--port-base`). `run_bench` and `print_report` are imported on first use (`mcpsim.faces`), so the
command line builds its parser from `MODES` without importing the MCP SDK.
"""

from typing import TYPE_CHECKING

from mcpsim.bench.settings import MODES, BenchSettings
from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.bench.report import print_report
    from mcpsim.bench.run import run_bench

__all__ = ["MODES", "BenchSettings", "print_report", "run_bench"]

__getattr__ = lazy_names(__name__, {"print_report": "report", "run_bench": "run"})
