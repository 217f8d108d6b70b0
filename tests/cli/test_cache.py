"""`mcpsim cache list|gc|rm|check` (the build cache), and `mcpsim envs ...`, its deprecated alias."""

import json
import os
import subprocess
import sys
from pathlib import Path


def mcpsim(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpsim", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MCPSIM_CACHE_DIR": str(cache)},
    )


def test_cache_lists_checks_and_refuses_unknown_names(tmp_path):
    listing = mcpsim("cache", "list", "--json", cache=tmp_path)
    assert listing.returncode == 0 and json.loads(listing.stdout) == [] and listing.stderr == ""
    assert mcpsim("cache", "gc", cache=tmp_path).returncode == 0
    missing = mcpsim("cache", "rm", "nope", cache=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "mcpsim cache: error: no environment named nope (see `mcpsim cache list`)"


def test_envs_is_an_alias_that_says_it_is_deprecated(tmp_path):
    alias = mcpsim("envs", "list", "--json", cache=tmp_path)
    assert alias.returncode == 0 and json.loads(alias.stdout) == []
    assert alias.stderr.strip().splitlines() == [
        "mcpsim envs: `mcpsim envs` is deprecated: use `mcpsim cache` (same subcommands)"
    ]
    assert "deprecated" in mcpsim("envs", "--help", cache=tmp_path).stdout
    overview = mcpsim("--help", cache=tmp_path).stdout
    assert "cache" in overview and "deprecated alias of `mcpsim cache`" in " ".join(overview.split())
