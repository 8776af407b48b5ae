"""Logging set-up shared by every node process: level and json/text format from the config, to stderr.

Every line names the node and process; a line about one workload names it too: log with
``extra=workload_fields(workload_id)``.
"""
from __future__ import annotations

import logging
import sys

import orjson


def workload_fields(workload_id: str) -> dict[str, str]:
    return {"workload": workload_id}


class _TextFormatter(logging.Formatter):
    def __init__(self, node_id: str, process_name: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s node={node_id} process={process_name}%(workload_field)s "
                         "%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        workload = getattr(record, "workload", None)
        record.workload_field = f" workload={workload}" if workload else ""
        return super().format(record)


class _JsonFormatter(logging.Formatter):
    def __init__(self, node_id: str, process_name: str) -> None:
        super().__init__()
        self._fixed = {"node": node_id, "process": process_name}

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname.lower(), **self._fixed,
                "logger": record.name, "msg": record.getMessage()}
        if getattr(record, "workload", None):
            line["workload"] = record.workload
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(level: str, log_format: str, node_id: str, process_name: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = _JsonFormatter if log_format == "json" else _TextFormatter
    handler.setFormatter(formatter(node_id, process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
