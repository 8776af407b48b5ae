"""What the workloads running on a node cost it while it is asked nothing: each node process's idle CPU, and a
submission's latency, with 0, 200, 1,000 and 2,000 sleeping process workloads running. The node with none is the
baseline, measured in the same run.

    .venv/bin/python bench/running_load.py [--levels 0,200,1000,2000]

Each running workload is a supervised program: supervisord's loop looks at every one each turn, and the
scheduler's and deployment controller's rounds and the register's heartbeats read the ledger. Prints JSON. About
3 minutes here.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import measured  # noqa: E402
from bench.history import SLEEP, idle_cpu_percent  # noqa: E402
from bench.submit_latency import submit_ms  # noqa: E402
from bench.timing import summary  # noqa: E402
from tests.support.nodes import Node, running  # noqa: E402

SETTLE_S = 5.0  # after the last submission, before measuring: the heartbeats and rounds it set off are over
SUBMISSIONS = 40  # each answered running, then deleted (submit_latency's submission)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="0,200,1000,2000", help="workloads running, cumulative")
    levels = [int(level) for level in parser.parse_args().levels.split(",")]
    node = Node({"cpu": 10_000, "memory": 2**50, "gpu": 0, "storage": 0})
    rows: list[dict[str, Any]] = []
    with running(node):
        held = 0
        for level in levels:
            for _ in range(level - held):
                answer = node.api("POST", "/api/workloads", json=SLEEP)
                if answer.status_code != 201:
                    raise RuntimeError(f"submit {held}: {answer.status_code} {answer.text[:200]}")
            held = max(held, level)
            time.sleep(SETTLE_S)
            cpu = idle_cpu_percent(node)
            rows.append({"running": level, "idle_cpu_percent": cpu,
                         "idle_cpu_percent_total": round(sum(cpu.values()), 1),
                         "submit": summary(submit_ms(node, SUBMISSIONS))})
            print(f"running_load: {level} running: {rows[-1]['idle_cpu_percent_total']} % idle", file=sys.stderr,
                  flush=True)
    print(orjson.dumps({"levels": rows, "goals": {
        "idle_cpu_with_the_most": measured(rows[-1]["idle_cpu_percent_total"], f"{levels[-1]} running, idle"),
        "idle_cpu_with_the_fewest": measured(rows[0]["idle_cpu_percent_total"], "the baseline")},
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
