"""Sidecar that ends every instance's process group when `mcpsim serve` dies, however it dies.

`PR_SET_PDEATHSIG` kills an instance's leader when the server dies, but not what the leader started (`npx`
starts `node`, an HTTP server may fork workers). This process is started once per pool, in its own session so a
terminal's Ctrl-C or a group kill of the server does not reach it, and reads "+PGID"/"-PGID" lines on stdin.
When stdin reaches EOF - which the kernel guarantees once the server is gone, even after SIGKILL - it sends
SIGTERM, then SIGKILL, to every group still registered, and exits.

Run as `python -m mcpsim.pool.watchdog`; it imports nothing heavy so it starts in a few milliseconds.
"""

import contextlib
import os
import signal
import sys
import time


def _kill_all(groups: set[int], grace: float = 0.5) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        if sig == signal.SIGTERM:
            time.sleep(grace)


def main() -> None:
    groups: set[int] = set()
    signal.signal(signal.SIGTERM, lambda *_: (_kill_all(groups), os._exit(0)))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin.buffer:
        text = line.strip()
        if len(text) > 1 and text[1:].isdigit():
            pgid = int(text[1:])
            if text[:1] == b"+":
                groups.add(pgid)
            elif text[:1] == b"-":
                groups.discard(pgid)
    _kill_all(groups)


if __name__ == "__main__":
    main()
