"""Partition detection and recovery, both sides, across two real test hosts (network namespaces).

    sudo .venv/bin/python bench/partition_recovery.py [--period 1.0] [--durations 5,10,15,20,30]

A parent and a child on their own hosts with a heartbeat period of --period seconds. For each duration the
child's host is cut (everything in and out dropped), then healed. Measured from the cut: when each side
marks the other offline; from the heal: when each side sees the other online again. A last round restarts
the child (kill -9 of the whole node, then a fresh start) while it is cut off, and measures the same. Each side's view is
read from its own node table (the table /api/nodes shows) every 20 ms, so the cut host is observed too.
Baseline in the same run: the liveness window (3 periods), the earliest an offline mark may come.
Prints JSON: per partition, and medians / maxima in periods.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_most  # noqa: E402
from ledger.nodetable import NodeTable  # noqa: E402
from mesh.messages import HEARTBEAT_LIVENESS  # noqa: E402
from tests.support.cluster import both_online, parent_and_child  # noqa: E402
from tests.support.hosts import make_hosts  # noqa: E402
from tests.support.nodes import Node, kill_node, running, wait_for  # noqa: E402

POLL_S = 0.02


def sees_online(table: NodeTable, other: Node, period_s: float) -> bool:
    neighbour = table.get(other.node_id)
    return neighbour is not None and neighbour.online(period_s, HEARTBEAT_LIVENESS)


def one_partition(parent: Node, child: Node, tables: dict[str, NodeTable], duration_s: float,
                  period_s: float, restart_child: bool = False) -> dict[str, float | None]:
    parent_sees_child = lambda: sees_online(tables["parent"], child, period_s)  # noqa: E731
    child_sees_parent = lambda: sees_online(tables["child"], parent, period_s)  # noqa: E731
    child.host.cut()
    cut_at = time.monotonic()
    offline: dict[str, float | None] = {"parent_marks_child_offline_s": None, "child_marks_parent_offline_s": None}
    if restart_child:  # its machine restarts while cut off: the new node comes up unable to reach its parent
        kill_node(child)
        child.start()
    while time.monotonic() - cut_at < duration_s:
        elapsed = round(time.monotonic() - cut_at, 3)
        if offline["parent_marks_child_offline_s"] is None and not parent_sees_child():
            offline["parent_marks_child_offline_s"] = elapsed
        if offline["child_marks_parent_offline_s"] is None and not child_sees_parent():
            offline["child_marks_parent_offline_s"] = elapsed
        time.sleep(POLL_S)
    child.host.heal()
    healed_at = time.monotonic()
    back: dict[str, float | None] = {"parent_sees_child_s": None, "child_sees_parent_s": None}
    while None in back.values() and time.monotonic() - healed_at < 60:
        elapsed = round(time.monotonic() - healed_at, 3)
        if back["parent_sees_child_s"] is None and parent_sees_child():
            back["parent_sees_child_s"] = elapsed
        if back["child_sees_parent_s"] is None and child_sees_parent():
            back["child_sees_parent_s"] = elapsed
        time.sleep(POLL_S)
    return {"partition_s": duration_s, "child_restarted": restart_child, **offline, **back}


def summary(runs: list[dict[str, float | None]], key: str, period_s: float) -> dict[str, float | None]:
    values = [run[key] for run in runs if run[key] is not None]
    if not values:
        return {"median_s": None, "max_s": None, "missing": len(runs)}
    return {"median_s": round(statistics.median(values), 3), "max_s": max(values),
            "median_periods": round(statistics.median(values) / period_s, 2),
            "max_periods": round(max(values) / period_s, 2), "missing": len(runs) - len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--durations", default="5,10,15,20,30")
    args = parser.parse_args()
    durations = [float(value) for value in args.durations.split(",")]
    with make_hosts(2) as hosts:
        parent, child = parent_and_child(hosts, period_s=args.period)
        with running(parent, child):
            wait_for(lambda: both_online(parent, child), timeout_s=30)
            tables = {"parent": NodeTable(str(parent.runtime_dir / "nodes")),
                      "child": NodeTable(str(child.runtime_dir / "nodes"))}
            runs = []
            for duration_s in durations:
                runs.append(one_partition(parent, child, tables, duration_s, args.period))
                wait_for(lambda: both_online(parent, child), timeout_s=60)
            restarted = one_partition(parent, child, tables, max(durations), args.period, restart_child=True)
            wait_for(lambda: both_online(parent, child), timeout_s=60)
            for table in tables.values():
                table.close()
    keys = ("parent_marks_child_offline_s", "child_marks_parent_offline_s", "parent_sees_child_s", "child_sees_parent_s")
    summaries = {key: summary(runs, key, args.period) for key in keys}
    # Offline once the liveness window has passed (and the next look at the table); back within 2 periods
    goals = {f"summary.{key}.max_periods": at_most(summaries[key]["max_periods"] or float("inf"),
                                                   HEARTBEAT_LIVENESS + 1 if "offline" in key else 2) for key in keys}
    print(orjson.dumps({"period_s": args.period, "liveness_window_s": args.period * HEARTBEAT_LIVENESS,
                        "partitions": runs, "summary": summaries, "child_restarted_during_partition": restarted,
                        "goals": goals},
                       option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
