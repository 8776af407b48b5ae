"""What the command line prints: rich tables with human units, or the node's JSON as it is (``-o json``)."""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable

import humanfriendly
import orjson
from rich.console import Console
from rich.table import Table

# Piped into a script or a file, a table keeps every cell whole (rich would fit it to 80 columns).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 1000)
AGE_UNITS = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))
TERMINAL = ("completed", "failed", "stopped")


def as_json(body: Any) -> None:
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


def size(value: float | int | None) -> str:
    return "-" if value is None else humanfriendly.format_size(value, binary=True)


def age(seconds: float) -> str:
    """As kubectl shows it: 42s, 5m, 3h, 2d."""
    seconds = max(0, int(seconds))
    count, unit = next((seconds // size, unit) for size, unit in AGE_UNITS if seconds >= size or size == 1)
    return f"{count}{unit}"


def since(timestamp: float | None) -> str:
    return "-" if not timestamp else age(time.time() - timestamp)


def readable_times(value: Any) -> Any:
    """``value`` (a record, as the node gives it) with every time in it (a field ending ``_at``, seconds since the
    epoch) as people read one, as kubectl describe shows it: ``2026-12-06 18:01:13 UTC (5m ago)``."""
    if isinstance(value, list):
        return [readable_times(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {name: _readable_time(item) if name.endswith("_at") and _is_time(item) else readable_times(item)
            for name, item in value.items()}


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _readable_time(timestamp: float) -> str:
    shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    ago = time.time() - timestamp
    return f"{shown} ({age(ago)} ago)" if ago >= 0 else f"{shown} (in {age(-ago)})"


def resources_line(resources: dict[str, Any] | None) -> str:
    if not resources:
        return "-"
    return (f"cpu {resources.get('cpu', 0):g}, memory {size(resources.get('memory'))}, "
            f"gpu {resources.get('gpu', 0):g}, storage {size(resources.get('storage'))}")


def table(columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    grid = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, no_wrap=True)
    for row in rows:
        grid.add_row(*("-" if cell is None or cell == "" else str(cell) for cell in row))
    return grid


def workloads(views: list[dict[str, Any]]) -> Table:
    return table(("ID", "NAME", "TYPE", "STATUS", "NODE", "ENDPOINT", "AGE"),
                 ((view["id"], view["name"], view["type"], view["status"], _runs_on(view), view.get("endpoint"),
                   since(view.get("created_at"))) for view in views))


def _runs_on(view: dict[str, Any]) -> str | None:
    """Its node; a deployment's, how many replicas run of how many, and where."""
    deployment = view.get("deployment")
    if not deployment:
        return view.get("node")
    nodes = sorted({instance["node"] for instance in deployment["instances"] if instance.get("node")})
    return f"{deployment['summary']} on {', '.join(nodes) or '–'}"


def neighbours(view: dict[str, Any]) -> Table:
    entries = [*([view["parent"]] if view.get("parent") else []), *view.get("children", []), *view.get("peers", [])]
    return table(("ID", "ROLE", "STATUS", "VERSION", "API", "FREE", "LAST SEEN"),
                 ((entry["id"], entry["role"],
                   "incompatible version" if entry["status"] == "incompatible" else entry["status"],
                   entry.get("agent") or "-", entry["api_url"],
                   resources_line((entry.get("resources") or {}).get("available")),
                   age(entry["last_seen_s"]) if entry.get("last_seen_s") is not None else "-")
                  for entry in entries))


def data(items: list[dict[str, Any]]) -> Table:
    return table(("KEY", "NAME", "KIND", "FILES", "SIZE", "AGE"),
                 ((item["data_key"], item["name"], item["kind"], item.get("file_count"), size(item.get("size_bytes")),
                   since(item.get("created_at"))) for item in items))


def models(items: list[dict[str, Any]]) -> Table:
    return table(("SHA256", "SIZE", "KIND", "STATUS", "SOURCE", "USED BY", "LAST USED"),
                 (((item["sha256"] or "")[:12], size(item["size_bytes"]), item["kind"],
                   item["status"] if item["status"] == "ready"
                   else f"{size(item['received_bytes'])} of {size(item['size_bytes'])}",
                   item["source"], ", ".join(item["users"]) or "-", since(item.get("last_used")))
                  for item in items))


def rollout(record: dict[str, Any]) -> Table:
    """A deployment's revision, its rollout under way, and its replicas with the revision each runs."""
    deployment = record["deployment"]
    going = deployment.get("rollout")
    state = (f"revision {deployment['revision']} active; rolling out {going['revision']}"
             + ("" if going.get("promoted") else " (canary: waiting for a promote)")) if going \
        else f"revision {deployment['revision']} active, no rollout under way"
    grid = table(("REPLICA", "REVISION", "STATUS", "NODE", "NOTE"),
                 ((item["id"], item.get("revision"), item["status"], item.get("node"), item.get("retired_because"))
                  for item in deployment["instances"]))
    grid.title = f"{record['id']}: {state} ({deployment['summary']})"
    return grid


def autoscaling(deployment: dict[str, Any]) -> Table:
    """An autoscaled deployment: serving, wanted and bounds, the signal, and its last decisions."""
    autoscale, policy = deployment["autoscale"], deployment["autoscale"]["policy"]
    grid = table(("WHEN", "FROM", "TO", "REASON"),
                 ((since(item["at"]), item["from"], item["to"], item["reason"])
                  for item in reversed(autoscale["history"][-5:])))
    limited = autoscale.get("limited")
    grid.title = (f"{deployment['healthy']} serving, {deployment['replicas']} wanted "
                  f"({policy['min_replicas']} to {policy['max_replicas']}); {autoscale['signal']:g} ongoing requests "
                  f"(target {policy['target_ongoing_requests']:g} per replica)"
                  + (f"; resource-limited at {limited['replicas']}: {limited['reason']}" if limited else ""))
    return grid


def revisions(items: list[dict[str, Any]]) -> Table:
    return table(("REVISION", "STATE", "CREATED", "REASON"),
                 ((item["revision"], item["state"], since(item.get("created_at")), item.get("reason"))
                  for item in items))


def detections(found: list[dict[str, Any]]) -> Table:
    return table(("CLASS", "CONFIDENCE", "BOX (x1, y1, x2, y2)"),
                 ((item["class"], f"{item['confidence']:.3f}", ", ".join(f"{v:.0f}" for v in item["bbox"]))
                  for item in found))


def event_line(event: dict[str, Any]) -> str:
    """One stream event on one line: when, which frame, how long after capture, and what was found."""
    found = "; ".join(f"{item['class']} {item['confidence']:.2f} [{', '.join(f'{v:.0f}' for v in item['bbox'])}]"
                      for item in event.get("detections", []))
    when = time.strftime("%H:%M:%S", time.localtime(event.get("time", 0)))
    return f"#{event.get('seq')} {when} frame {event.get('frame')} ({event.get('latency_ms')} ms): {found}"
