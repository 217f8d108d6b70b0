"""Processes: spawning children that die with us, the watchdog, port leases, the fork server, descendant tracking.

Modules, each with one job:
- `child.py`: a started child as the event loop sees it (pipes, exit, the stop sequence, drained output).
- `spawn.py`: `Spawner`, which starts children on a thread of its own (own session, parent-death signal,
  control group before exec); `inherited_environment`, `raise_fd_limit`.
- `watchdog.py`: the sidecar that kills what is left when the server dies (run as `python -m`).
- `ports.py`: `PortAllocator`, leases from `--port-range`.
- `fork_client.py`: `ForkServer`, the pool's side of `--fork-server`; `fork_template.py`: the template process
  itself (a stdlib-only script run by path, so an isolated venv's interpreter can run it).
- `cgroups.py`, `procfs.py`, `tracking.py`: control groups, /proc reads, and `ProcessTracker`, which ends the
  descendants that leave an instance's process group.

The names below are imported on first use (`mcpsim.faces`): `python -m mcpsim.proc.watchdog` imports this
package, and the watchdog must start in milliseconds with the standard library only.
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.proc.cgroups import Cgroup
    from mcpsim.proc.child import ChildProcess
    from mcpsim.proc.fork_client import ForkServer
    from mcpsim.proc.ports import PortAllocator, free_port, parse_port_range
    from mcpsim.proc.spawn import Launcher, Spawner, inherited_environment, raise_fd_limit
    from mcpsim.proc.tracking import ProcessTracker

__all__ = [
    "Cgroup",
    "ChildProcess",
    "ForkServer",
    "Launcher",
    "PortAllocator",
    "ProcessTracker",
    "Spawner",
    "free_port",
    "inherited_environment",
    "parse_port_range",
    "raise_fd_limit",
]

__getattr__ = lazy_names(
    __name__,
    {
        "Cgroup": "cgroups",
        "ChildProcess": "child",
        "ForkServer": "fork_client",
        "PortAllocator": "ports",
        "free_port": "ports",
        "parse_port_range": "ports",
        "Launcher": "spawn",
        "Spawner": "spawn",
        "inherited_environment": "spawn",
        "raise_fd_limit": "spawn",
        "ProcessTracker": "tracking",
    },
)
