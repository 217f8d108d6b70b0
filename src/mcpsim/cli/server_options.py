"""The options `mcpsim serve` and `mcpsim view` share: how to log, and the tokens clients must carry."""

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mcpsim.server.ops import LEVELS

if TYPE_CHECKING:
    from mcpsim.server.principals import Credentials

logger = logging.getLogger(__name__)


def add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=["json", "text"], default="text")
    p.add_argument("--log-level", choices=LEVELS, default="info")
    tokens = p.add_mutually_exclusive_group()
    tokens.add_argument(
        "--auth-token-file",
        type=Path,
        metavar="FILE",
        help="tokens every request must carry (Authorization: Bearer TOKEN), one per line, optionally NAME:TOKEN; "
        "the first is the admin; a token is required when --host is not loopback (default: $MCPSIM_AUTH_TOKEN)",
    )
    tokens.add_argument(
        "--auth-token", metavar="TOKEN", help="one token, given on the command line (ps shows it: prefer the file)"
    )


def credentials(args: argparse.Namespace) -> "Credentials | None":
    """The tokens of `--auth-token-file`/`--auth-token`/`MCPSIM_AUTH_TOKEN`, warnings logged (after logging is set)."""
    from mcpsim.server.principals import credentials_from

    found, warnings = credentials_from(args.auth_token, args.auth_token_file, os.environ)
    for warning in warnings:
        logger.warning(warning, extra={"event": "auth.warning"})
    return found
