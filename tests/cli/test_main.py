"""`mcpsim` reports mcpsim's own errors in one line with exit code 2, and lets every other exception (a bug)
show its traceback (it used to turn any ValueError or OSError into exit 2)."""

import pytest

from mcpsim import cli
from mcpsim.cli import render
from mcpsim.errors import TrajectoryError


def test_own_errors_are_one_line_and_exit_2(monkeypatch, capsys):
    def refuse(args):
        raise TrajectoryError("run.jsonl:3: not valid JSON")

    monkeypatch.setattr(render, "run", refuse)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["render", "run.jsonl"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "mcpsim render: error: run.jsonl:3: not valid JSON\n"


@pytest.mark.parametrize("bug", [ValueError("a bug"), OSError("another bug"), KeyError("k")])
def test_other_exceptions_are_not_swallowed(monkeypatch, bug):
    def crash(args):
        raise bug

    monkeypatch.setattr(render, "run", crash)
    with pytest.raises(type(bug)):
        cli.main(["render", "run.jsonl"])


FORK_DEFAULTS = [
    ((), True),
    (("--fork-server",), True),
    (("--no-fork-server",), False),
    (("--sandbox", "strict"), False),
    (("--sandbox", "standard", "--fork-server"), True),
]


@pytest.mark.parametrize(("flags", "forks"), FORK_DEFAULTS)
def test_fork_server_is_the_default_without_a_sandbox_and_either_way_can_be_asked_for(flags, forks):
    # forked siblings share their template's sandbox (docs/isolation.md), so `--sandbox` alone spawns; the
    # contract's --fork-server stays, and --no-fork-server says "spawn" explicitly
    from mcpsim.cli import build_parser
    from mcpsim.cli.serve import pool_config

    args = build_parser().parse_args(["serve", "--env", "frozen_lake", *flags])
    assert pool_config(args).fork_server is forks


def test_building_the_command_line_imports_no_client_and_the_protocols_match_the_sdk():
    # every `mcpsim serve` start builds the whole parser; the client side (SDK client, httpcore2) cost it ~0.1 s
    import subprocess
    import sys

    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    from mcpsim.wire import CLIENT_PROTOCOLS

    sdk_modes = ("auto", *MODERN_PROTOCOL_VERSIONS, "legacy")
    assert sdk_modes == CLIENT_PROTOCOLS
    probe = (
        "import sys; from mcpsim.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('mcpsim.client', 'mcp.client'))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]", result.stdout
