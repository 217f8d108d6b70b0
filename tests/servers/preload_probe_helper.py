"""Imported by `preload_probe.py`: its module-level code records who ran it. Under `--fork-server` that is the
fork template, which preloads what a server imports, so this is the code of a server nobody vetted running
with the template's credentials."""

import os
from pathlib import Path

IMPORTED_BY = os.getpid()
RESUID = os.getresuid()
_STATUS = [line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":\t" in line]
CAPABILITIES = {name: int(value, 16) for name, value in _STATUS if name in ("CapEff", "CapPrm", "CapInh", "CapAmb")}
