"""Sidecar that ends every instance's processes when `mcpsim serve` dies, however it dies.

`PR_SET_PDEATHSIG` kills an instance's leader when the server dies, but not what the leader started (`npx`
starts `node`, an HTTP server may fork workers, a daemon leaves the group with `setsid`). This process is
started once per pool, in its own session so a terminal's Ctrl-C or a group kill of the server does not reach
it, and reads lines on stdin:
- `+PGID [INSTANCE_ID]` / `-PGID`: an instance's process group (and its id) started / ended;
- `cgroup PATH`: the pool's control group, which holds every instance's group (see `cgroups.py`);
- `root PATH`: the pool's directory of instance directories (`pool/workdir.py`), which the pool itself removes
  at a normal end, but a killed server leaves behind with every instance's files in it.
When stdin reaches EOF - which the kernel guarantees once the server is gone, even after SIGKILL - it sends
SIGTERM, then SIGKILL, to every group still registered, kills the control group and removes it, then kills
every process whose environment names a registered instance (daemons that left their group, where there is
no control group; see `tracking.py`), removes the instance directories, and exits.

Run as `python -m mcpsim.proc.watchdog`; it imports nothing heavy (the `mcpsim.proc` face is lazy), so it
starts in a few milliseconds.
"""

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from mcpsim.proc import procfs
from mcpsim.proc.cgroups import Cgroup
from mcpsim.proc.trees import remove_tree


class Registry:
    def __init__(self) -> None:
        self.groups: dict[int, str | None] = {}
        self.cgroup: Cgroup | None = None
        self.root: Path | None = None

    def read(self, line: bytes) -> None:
        text = line.strip().decode(errors="replace")
        if text.startswith("cgroup "):
            self.cgroup = Cgroup(Path(text[len("cgroup ") :]))
            return
        if text.startswith("root "):
            self.root = Path(text[len("root ") :])
            return
        pgid, _, instance_id = text[1:].partition(" ")
        if not pgid.isdigit():
            return
        if text[:1] == "+":
            self.groups[int(pgid)] = instance_id or None
        elif text[:1] == "-":
            self.groups.pop(int(pgid), None)

    def kill_all(self, grace: float = 0.5) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pgid in self.groups:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, sig)
            if sig == signal.SIGTERM and self.groups:
                time.sleep(grace)
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.kill()
                self.cgroup.remove_when_empty()
        ids = {instance_id for instance_id in self.groups.values() if instance_id}
        for _ in range(20):  # a killed daemon's own children, if any, are found on the next round
            found = procfs.processes_of_instances(ids)
            if not found:
                break
            for pid in found:
                procfs.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        if self.root is not None:  # after the kills: nothing writes there any more
            remove_tree(self.root)


def main() -> None:
    registry = Registry()
    signal.signal(signal.SIGTERM, lambda *_: (registry.kill_all(), os._exit(0)))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin.buffer:
        registry.read(line)
    registry.kill_all()


if __name__ == "__main__":
    main()
