"""Fault runs across two real test hosts: kill -9 of each of the child's node processes while forwarded
submissions go through the parent, and how every submission ended.

    sudo .venv/bin/python bench/cluster_faults.py [--rounds 2] [--submissions 30]

A parent (1 cpu) and a child (64 cpus) on their own hosts, 1 s heartbeats: each submission needs 1.5 cpu,
so every one is forwarded. Per process and round, --submissions go through the parent at once; once three
have reached the child, its process is killed (kill -9). After supervisord restarted it and the parent
settled every unknown forward, each submission is counted as admitted (records at both ends, running) or
refused (nothing anywhere), with what must stay zero: orphaned (on the child, no record at the parent),
dangling, run twice, leaked cpu. Baseline in the same run: a round with no kill.
Prints JSON: one row per process and round, and the answers' HTTP statuses.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_most  # noqa: E402
from tests.support.cluster import (NEEDS_THE_CHILD, SLEEP, both_online, delete_everything, parent_and_child,  # noqa: E402
                           submit_during_a_kill, tally)
from tests.support.hosts import make_hosts  # noqa: E402
from tests.support.nodes import running, wait_for  # noqa: E402

PROCESSES = ("scheduler", "api", "register", "monitor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--submissions", type=int, default=30)
    args = parser.parse_args()
    rows = []
    with make_hosts(2) as hosts:
        parent, child = parent_and_child(hosts)
        with running(parent, child):
            wait_for(lambda: both_online(parent, child), timeout_s=30)
            started = time.monotonic()
            answers = {f"base{index:03d}": parent.submit(SLEEP, NEEDS_THE_CHILD, id=f"base{index:03d}").status_code
                       for index in range(args.submissions)}
            rows.append({"killed": None, "round": 0, "seconds": round(time.monotonic() - started, 3),
                         **summarise(tally(parent, child, answers), answers)})
            delete_everything(parent, child)
            for process in PROCESSES:
                for round_index in range(1, args.rounds + 1):
                    started = time.monotonic()
                    answers = submit_during_a_kill(parent, child, process, args.submissions)
                    rows.append({"killed": process, "round": round_index,
                                 "seconds_to_settled": round(time.monotonic() - started, 3),
                                 **summarise(tally(parent, child, answers), answers)})
                    delete_everything(parent, child)
    goals = {f"rows.*.{figure}": at_most(sum(row[figure] for row in rows), 0)
             for figure in ("orphaned", "dangling", "twice", "leaked_cpu")}
    print(orjson.dumps({"rows": rows, "goals": goals}, option=orjson.OPT_INDENT_2).decode())


def summarise(counts: dict, answers: dict[str, int]) -> dict:
    return {"admitted": counts["admitted"], "refused": counts["refused"], "orphaned": len(counts["orphaned"]),
            "dangling": len(counts["dangling"]), "twice": counts["twice"], "leaked_cpu": counts["leaked_cpu"],
            "answers": dict(collections.Counter(str(status) for status in answers.values()))}


if __name__ == "__main__":
    main()
