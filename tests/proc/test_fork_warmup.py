"""The fork template's SDK warm-up (`fork_template.warm_sdk`): done once, invisible to the server it forks."""

import json
import subprocess
import sys
from pathlib import Path

import mcpsim.proc

TEMPLATE_DIR = Path(mcpsim.proc.__file__).parent

PROBE = """
import json, logging, sys
sys.path.insert(0, {dir!r})
import fork_template
before = fork_template.warm_sdk()
import mcp.server.mcpserver
root = logging.getLogger()
warmed = fork_template.warm_sdk()
after = (len(root.handlers), root.level)
logging.basicConfig(level=logging.INFO)  # a server configuring logging itself: it must take effect
print(json.dumps({{"before": before, "warmed": warmed, "after": after, "configured": len(root.handlers),
                  "level": root.level}}))
"""


def test_warm_up_builds_an_sdk_server_and_leaves_the_root_logger_as_a_fresh_interpreter_has_it():
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(dir=str(TEMPLATE_DIR))], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout)
    assert probe["before"] is False  # without the SDK server loaded there is nothing to warm
    assert probe["warmed"] is True
    assert probe["after"] == [0, 30]  # no handler left behind, WARNING as ever
    assert probe["configured"] == 1 and probe["level"] == 20  # so basicConfig in the server still works
