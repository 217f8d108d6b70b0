"""`mcpsim serve --fast-io`: uvloop's event loop and httptools' HTTP parser for the front, when installed.

Both are C implementations of what the front spends most of its CPU on besides the SDK (the event loop's own
bookkeeping and h11's pure-Python HTTP parsing). They are optional (extra `fast`); `--fast-io` without them
serves with asyncio and h11 as before and says so once in the log. See docs/performance.md for what they buy.
"""

import importlib.util
import logging
from typing import Any

logger = logging.getLogger(__name__)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def http_implementation(fast_io: bool) -> str:
    """uvicorn's `http=`: httptools with `--fast-io` when installed, else h11."""
    return "httptools" if fast_io and _installed("httptools") else "h11"


def loop_options(fast_io: bool) -> dict[str, Any]:
    """`anyio.run`'s `backend_options`: uvloop with `--fast-io` when installed, else asyncio's own loop."""
    if not fast_io:
        return {}
    missing = [module for module in ("uvloop", "httptools") if not _installed(module)]
    if missing:
        logger.warning(
            "--fast-io: %s not installed (pip install 'mcpsim[fast]'); serving with the standard ones instead",
            " and ".join(missing),
            extra={"event": "server.fast_io"},
        )
    return {"use_uvloop": True} if _installed("uvloop") else {}
