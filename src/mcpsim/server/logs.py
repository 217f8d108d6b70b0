"""Log setup for `mcpsim serve`: JSON lines or text, each carrying the correlation ids of what it is about.

Correlation ids travel as `extra` fields on log records (`session_id`, `instance_id`, `request_id`, `seed`,
`event`); the JSON formatter writes every one present, so `jq 'select(.instance_id=="…")'` follows one
instance, including the drained stdout/stderr of its process.
"""

import json
import logging
import sys
import time
from typing import Any

CORRELATION_FIELDS = ("event", "session_id", "instance_id", "request_id", "seed")
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "mcp", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
        }
        for name in CORRELATION_FIELDS[1:]:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{name}={getattr(record, name)}" for name in ("instance_id", "session_id") if getattr(record, name, None)
        )
        text = super().format(record)
        return f"{text} [{ids}]" if ids else text


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
