"""What a pause before a run costs on this machine: the in-process YOLO pipeline timed back to back, after a
sleep and after a spin of the same length, the conditions shuffled and interleaved run by run so that the
machine's drift falls on all of them alike.

    .venv/bin/python bench/idle_penalty.py [--cpu 2] [--runs 150]

A service at one client idles between requests (its client's round trip, the HTTP), so it pays what a
sleep costs here on every request; the back-to-back pipeline that ``predict_latency`` compares it with never
does. A spin of the same length is the control: the cores kept busy, the pause itself. Prints JSON: median
milliseconds per condition, for a session of ``--cpu`` threads and one of 1 thread.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.predict_latency import PAUSE_S, pipeline, the_jpeg  # noqa: E402
from inference.yolo_model import YoloModel  # noqa: E402
from tests.support.assets import YOLO_MODEL  # noqa: E402

def _spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


PAUSES: dict[str, Callable[[], None]] = {"back_to_back": lambda: None, "after_sleep_2ms": lambda: time.sleep(PAUSE_S),
                                         "after_spin_2ms": lambda: _spin(PAUSE_S)}


def medians(model: YoloModel, jpeg: bytes, runs: int) -> dict[str, float]:
    for _ in range(20):
        pipeline(model, jpeg)
    order = [name for name in PAUSES for _ in range(runs)]
    random.Random(0).shuffle(order)
    timings: dict[str, list[float]] = {name: [] for name in PAUSES}
    for name in order:
        PAUSES[name]()
        started = time.perf_counter()
        pipeline(model, jpeg)
        timings[name].append((time.perf_counter() - started) * 1000)
    result = {name: round(statistics.median(values), 2) for name, values in timings.items()}
    result["sleep_over_back_to_back"] = round(result["after_sleep_2ms"] / result["back_to_back"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", type=int, default=2, help="the threads of the wider session")
    parser.add_argument("--runs", type=int, default=150, help="runs per condition")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    jpeg = the_jpeg()
    results = {f"session_of_{threads}_threads": medians(YoloModel(YOLO_MODEL, threads=threads), jpeg, args.runs)
               for threads in sorted({args.cpu, 1}, reverse=True)}
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
