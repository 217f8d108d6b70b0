"""Print the table "hostile server x outcome" for docs/isolation.md: every attack of tests/servers/hostile.py
against `--sandbox none`, `standard` and `strict` (spawned), and `strict` with `--fork-server`.

    PYTHONPATH=src python tests/sandbox/hostile_table.py      # from the repository root; takes a minute or two

The outcome cell is what the attacking session saw: the tool's own answer (ok/refused) or the JSON-RPC error of
its instance's end, shortened. The tests (tests/sandbox/) assert the same outcomes; this only shows them.
"""

import re
import sys
import tempfile
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers.serve import start_serve, survivors

HOSTILE = Path(__file__).resolve().parent.parent / "servers" / "hostile.py"
LIMITS = ["--limit-memory", "512M", "--limit-pids", "24", "--limit-cpu-seconds", "2", "--limit-file-size", "16M"]
ATTACKS = [
    ("connect to mcpsim's own port", "connect", {"host": "127.0.0.1", "port": 0}),
    ("connect to 1.1.1.1:80", "connect", {"host": "1.1.1.1", "port": 80}),
    ("listen + connect on its own loopback", "listen_loopback", {}),
    ("read a file planted in /tmp", "read", {"path": "PLANTED"}),
    ("read /etc/shadow", "read", {"path": "/etc/shadow"}),
    ("write /etc/mcpsim-hostile", "write", {"path": "/etc/mcpsim-hostile"}),
    ("list /proc (processes seen)", "processes", {}),
    ("write in its work dir (HOME)", "work_dir", {}),
    ("fork bomb", "fork_bomb", {}),
    ("allocate 4 GB", "memory_hog", {"gigabytes": 4}),
    ("spin the CPU", "cpu_spin", {}),
    ("write a 10 GB file", "write_big", {"gigabytes": 10}),
]
COLUMNS = {
    "none": ["--no-fork-server"],
    "standard": ["--sandbox", "standard", "--no-fork-server"],
    "strict": ["--sandbox", "strict", "--no-fork-server"],
    "strict + fork server": ["--sandbox", "strict", "--fork-server"],
}
UNSAFE_WITHOUT_SANDBOX = {"fork_bomb", "memory_hog", "cpu_spin", "write_big", "write", "work_dir"}


def short(text: str) -> str:
    text = re.sub(r"instance \w+ \(seed \d+\): ", "", text)
    text = re.sub(r"; last stderr: .*", "", text)
    if text.startswith("ok: ["):
        return f"ok: {text.count(', ') + 1} processes"
    return text[:70]


async def column(flags: list[str], planted: str, tmp: Path) -> list[str]:
    serve = start_serve(tmp, "--server", f"python {HOSTILE}", *flags, *LIMITS)
    cells = []
    try:
        for seed, (_, tool, args) in enumerate(ATTACKS):
            if not flags and tool in UNSAFE_WITHOUT_SANDBOX:
                cells.append("(not run: it would hit the machine)")
                continue
            args = {**args}
            if args.get("port") == 0:
                args["port"] = int(serve.url.rsplit(":", 1)[1])
            if args.get("path") == "PLANTED":
                args["path"] = planted
            async with Client(f"{serve.mcp}?seed={seed}", mode="legacy") as client:
                try:
                    with anyio.fail_after(60):
                        result = await client.call_tool(tool, args)
                    answer = result.content[0].text
                    cells.append("ok: read it" if tool == "read" and answer.startswith("ok") else short(answer))
                except Exception as exc:
                    cells.append("error: " + short(str(exc)))
    finally:
        serve.stop()
        left = survivors(serve.seen_descendants)
        cells.append(f"{len(left)} processes left")
    return cells


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        planted = Path(tmp) / "secret.txt"
        planted.write_text("secret")
        table = {name: await column(flags, str(planted), Path(tmp)) for name, flags in COLUMNS.items()}
    print("| hostile server | " + " | ".join(table) + " |")
    print("| --- |" + " --- |" * len(table))
    for row, (label, _, _) in enumerate([*ATTACKS, ("after the server stopped", "", {})]):
        print(f"| {label} | " + " | ".join(cells[row] for cells in table.values()) + " |")


if __name__ == "__main__":
    anyio.run(main)
