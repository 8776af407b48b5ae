"""What a pause before a run costs on this machine: the in-process YOLO pipeline timed back to back, after a
sleep and after a spin of the same length (``predict_latency.pipeline_medians``: the conditions shuffled
together, so that the machine's drift falls on all of them alike).

    .venv/bin/python bench/idle_penalty.py [--cpu 2] [--runs 150]

A service at one client idles between requests (its client's round trip, the HTTP), so it pays what a
sleep costs here on every request; the back-to-back pipeline that ``predict_latency`` compares it with never
does. A spin of the same length is the control: the cores kept busy, the pause itself. Prints JSON: median
milliseconds per condition, for a session of ``--cpu`` threads and one of 1 thread.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import measured  # noqa: E402
from bench.predict_latency import PAUSE_S, pipeline_medians, the_jpeg  # noqa: E402
from inference.yolo_model import YoloModel  # noqa: E402
from tests.support.assets import YOLO_MODEL  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", type=int, default=2, help="the threads of the wider session")
    parser.add_argument("--runs", type=int, default=150, help="runs per condition")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    jpeg = the_jpeg()
    results: dict[str, object] = {"pause_ms": PAUSE_S * 1000}
    for threads in sorted({args.cpu, 1}, reverse=True):
        medians = pipeline_medians(YoloModel(YOLO_MODEL, threads=threads), jpeg, args.runs)
        results[f"session_of_{threads}_threads"] = {
            **medians, "sleep_over_back_to_back": round(medians["after_sleep"] / medians["back_to_back"], 3)}
    results["goals"] = {f"{name}.sleep_over_back_to_back": measured(entry["sleep_over_back_to_back"],
                                                                     "the machine's wake-up cost, a baseline")
                        for name, entry in results.items() if isinstance(entry, dict)}
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
