"""GET /api/workloads with many workloads on one node: the whole listing against one page of it.

    .venv/bin/python bench/listing.py [--levels 200,1000] [--page 100] [--runs 15]

One real node; sleeping process workloads are submitted up to each level, then the whole listing, a page
(`?limit=`), the newest page (`&reverse=true`, what the console's table asks for) and a page with a status filter
are each read `--runs` times. The whole listing (what the console read before it paged) is the baseline, read in
the same run. Prints JSON: medians in ms and bytes per answer, and page ÷ whole.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import median_ms  # noqa: E402
from tests.support.nodes import Node, running  # noqa: E402

SLEEPER = {"type": "process", "config": {"command": "sleep", "args": ["600"]}, "requirements": {"cpu": 0.01}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="200,1000", help="workloads on the node, comma-separated")
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    node = Node({"cpu": 1000, "memory": 2**40, "gpu": 0, "storage": 0})
    readings = {"whole": {}, "page": {"limit": args.page}, "newest_page": {"limit": args.page, "reverse": "true"},
                "page_of_running": {"limit": args.page, "status": "running"}}
    results: dict[str, object] = {"page": args.page, "runs": args.runs, "levels": {}}
    with running(node):
        held = 0
        for level in (int(text) for text in args.levels.split(",")):
            for _ in range(level - held):
                answer = node.api("POST", "/api/workloads", json=SLEEPER)
                if answer.status_code != 201:
                    raise RuntimeError(f"submit {held}: {answer.status_code} {answer.text[:200]}")
            held = level
            figures = {name: {"median_ms": median_ms(lambda: node.api("GET", "/api/workloads", params=params),
                                                     args.runs),
                              "bytes": len(node.api("GET", "/api/workloads", params=params).content)}
                       for name, params in readings.items()}
            for name in ("page", "newest_page"):
                figures[f"{name}_over_whole"] = round(figures[name]["median_ms"] / figures["whole"]["median_ms"], 3)
            results["levels"][level] = figures
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
