"""Logging set-up shared by every node process: level and json/text format from the config, to stderr."""
from __future__ import annotations

import logging
import sys

import orjson


class _JsonFormatter(logging.Formatter):
    def __init__(self, node_id: str, process_name: str) -> None:
        super().__init__()
        self._fixed = {"node": node_id, "process": process_name}

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname.lower(), **self._fixed,
                "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(level: str, log_format: str, node_id: str, process_name: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter(node_id, process_name))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s node={node_id} process={process_name} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
