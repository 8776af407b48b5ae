"""What a node's history of finished workloads costs it: idle CPU of its processes, submission latency and the
workloads listing, with 0, 5,000 and 20,000 finished records in its ledger, once kept for good
(``workloads.keep_finished`` as large as that) and once bounded (its default: the sweep deletes those beyond).

    .venv/bin/python bench/history.py [--counts 0,5000,20000]

The finished records are written straight into the ledger (copies of one real completed workload's record, each
with its own id), as a node that has run that many would hold them. The bounded node's
figures are taken once its sweep has brought the count back to what it keeps (``sweep_s``: a backlog, as after
an upgrade, goes at about 100 a second here). Prints JSON. About 7 minutes here.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import measured  # noqa: E402
from bench.node_cpu import cpu_ms_while  # noqa: E402
from bench.timing import median_ms  # noqa: E402
from cnetd.core.config import DEFAULT_KEEP_FINISHED  # noqa: E402
from ledger.records import WorkloadRecord  # noqa: E402
from ledger.store import Ledger  # noqa: E402
from tests.support.nodes import Node, running, wait_for  # noqa: E402

SLEEP = {"type": "process", "config": {"command": "sleep", "args": ["600"]}, "requirements": {"cpu": 0.01}}
CPU_WINDOW_S = 10.0


def idle_cpu_percent(node: Node) -> dict[str, float]:
    """Each node process's CPU over ``CPU_WINDOW_S`` with nothing asked of the node."""
    _, used_ms = cpu_ms_while(node, lambda: time.sleep(CPU_WINDOW_S))
    return {name: round(ms / 10 / CPU_WINDOW_S, 1) for name, ms in used_ms.items()}


def add_finished(ledger: Ledger, template: WorkloadRecord, count: int) -> None:
    """``count`` copies of a finished record, each with its own id (a finished workload holds nothing)."""
    for _ in range(count):
        workload_id = uuid.uuid4().hex[:16]
        ledger.record_holding_nothing(dataclasses.replace(template, id=workload_id,
                                                          program=f"workloads:wl-{workload_id}"))


def figures(node: Node, records: int) -> dict[str, Any]:
    def submit_and_delete() -> None:
        record = node.api("POST", "/api/workloads", json=SLEEP).json()
        node.api("DELETE", f"/api/workloads/{record['id']}")
    cpu = idle_cpu_percent(node)
    return {"finished_records": records, "idle_cpu_percent": cpu, "idle_cpu_percent_total": round(sum(cpu.values()), 1),
            "submit_and_delete_ms": median_ms(submit_and_delete, 20),
            "list_workloads_ms": median_ms(lambda: node.api("GET", "/api/workloads"), 5)}


def run(counts: list[int], keep: int) -> list[dict[str, Any]]:
    node = Node({"cpu": 1000, "memory": 2**40, "gpu": 0, "storage": 0}, workloads={"keep_finished": keep})
    rows = []
    with running(node):
        done = node.api("POST", "/api/workloads", json={"type": "process", "config": {"command": "true"}}).json()
        wait_for(lambda: node.workload(done["id"])["status"] == "completed")
        ledger = Ledger(str(node.runtime_dir / "ledger"))
        try:
            template = ledger.get(done["id"])
            held = 1
            for count in counts:
                add_finished(ledger, template, max(0, count - held))
                held = max(held, count)
                started = time.monotonic()  # the sweep, when bounded: a backlog goes at about 100 a second here
                wait_for(lambda: len(ledger.workloads()) <= keep, timeout_s=120 + count / 20, interval_s=1.0)
                swept_s = round(time.monotonic() - started, 1)
                print(f"history: keep {keep}, {count} written, {swept_s} s to sweep", file=sys.stderr, flush=True)
                rows.append({**figures(node, len(ledger.workloads())), "written": count, "sweep_s": swept_s})
        finally:
            ledger.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="0,5000,20000", help="finished records written, cumulative")
    counts = [int(count) for count in parser.parse_args().counts.split(",")]
    kept_for_good = run(counts, keep=max(counts) + 1)
    bounded = run(counts, keep=DEFAULT_KEEP_FINISHED)
    most = f"with {counts[-1]} finished workloads written"
    print(orjson.dumps({
        "kept_for_good": kept_for_good, "bounded": bounded, "keep_finished": DEFAULT_KEEP_FINISHED,
        "goals": {
            "kept_for_good[-1].idle_cpu_percent_total": measured(
                kept_for_good[-1]["idle_cpu_percent_total"], f"what no bound cost, {most}"),
            "bounded[-1].idle_cpu_percent_total": measured(
                bounded[-1]["idle_cpu_percent_total"], f"the same node bounded, {most} and swept"),
            "idle_cpu_with_none": measured(kept_for_good[0]["idle_cpu_percent_total"], "the baseline")},
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
