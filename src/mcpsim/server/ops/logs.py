"""Log setup for `mcpsim serve`: JSON lines or text, each carrying the correlation ids of what it is about.

Correlation ids travel as `extra` fields on log records (`session_id`, `instance_id`, `request_id` = the
client's JSON-RPC id, `seed`, `event`); the JSON formatter writes every extra field present, so
`jq 'select(.instance_id=="…")'` follows one instance, including the drained stdout/stderr of its process
(`event` = `instance.output`). Instances log through an adapter that adds their ids to every line; the hot path
(one message) logs nothing above DEBUG.
"""

import json
import logging
import sys
import time
from typing import Any

QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "mcp", "uvicorn.access", "sse_starlette", "asyncio")
LEVELS = ("debug", "info", "warning", "error")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}
"""Attributes every log record has; anything else on a record came in through `extra`."""


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD and value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, message, then every correlation id and extra field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{name}={getattr(record, name)}"
            for name in ("instance_id", "session_id", "request_id")
            if getattr(record, name, None) is not None
        )
        text = super().format(record)
        return f"{text} [{ids}]" if ids else text


def configure_logging(fmt: str = "text", level: str | int = logging.INFO) -> None:
    """Send every log line to stderr in `fmt` (`json` or `text`); third-party chatter stays at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
