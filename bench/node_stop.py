"""How long a node takes to start and to stop, by the way it is asked: cnetd's SIGTERM (which asks supervisord
to shut down through its socket) against a SIGTERM sent straight to supervisord (what cnetd sent before), in
one run.

    .venv/bin/python bench/node_stop.py [--runs 8]

Each run starts a node with no workloads (timed from cnetd's start to its API's first 200), makes one API
request (its connection kept alive, as clients' are), and stops it, timing from the signal to cnetd's exit.
Prints JSON: medians and the ratio.
"""
from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_most  # noqa: E402
from tests.support.nodes import Node  # noqa: E402


def start_and_stop_s(via_supervisord: bool) -> tuple[float, float]:
    node = Node()
    try:
        started = time.perf_counter()
        node.start()
        start_s = time.perf_counter() - started
        node.api("GET", "/api/resources")
        supervisord = next(process for process in psutil.Process(node.process.pid).children()
                           if "supervisord" in " ".join(process.cmdline()))
        started = time.perf_counter()
        (supervisord if via_supervisord else node.process).send_signal(signal.SIGTERM)
        node.process.wait(timeout=60)
        return start_s, time.perf_counter() - started
    finally:
        node.output.close()
        node.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    starts, through_cnetd, signal_to_supervisord = [], [], []
    for _ in range(args.runs):  # interleaved, so that the machine's noise falls on both alike
        for via_supervisord, stops in ((False, through_cnetd), (True, signal_to_supervisord)):
            start_s, stop_s = start_and_stop_s(via_supervisord)
            starts.append(start_s)
            stops.append(stop_s)
    results = {"runs": args.runs, "start_median_s": round(statistics.median(starts), 3),
               "cnetd_sigterm_median_s": round(statistics.median(through_cnetd), 3),
               "supervisord_sigterm_median_s": round(statistics.median(signal_to_supervisord), 3)}
    results["ratio"] = round(results["cnetd_sigterm_median_s"] / results["supervisord_sigterm_median_s"], 2)
    results["goals"] = {"ratio": at_most(results["ratio"], 1.0)}  # cnetd's stop no slower than supervisord's own
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
