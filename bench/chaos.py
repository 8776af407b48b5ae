"""A long chaos run: ``tools/chaos.py``'s rounds for ``--minutes`` (default 30), reported as faults injected (by
kind), requests made and violations (the goal: 0).

    .venv/bin/python bench/chaos.py [--minutes 30] [--seed 2026] [--round-s 60]

Prints each round as the harness does, then JSON.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_most  # noqa: E402
from tools.chaos import run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--round-s", type=float, default=60.0)
    parser.add_argument("--history", type=Path, default=Path("chaos-history.jsonl"))
    args = parser.parse_args()
    started = time.monotonic()
    totals = run(args.seed, 10_000, args.round_s, args.history, minutes=args.minutes)
    print(totals.line(args.seed))
    print(orjson.dumps({"seed": args.seed, "minutes": round((time.monotonic() - started) / 60, 1),
                        "rounds": totals.rounds, "faults": sum(totals.faults.values()),
                        "faults_by_kind": dict(sorted(totals.faults.items())), "requests": totals.requests,
                        "violations": totals.violations, "goals": {"violations": at_most(totals.violations, 0)}},
                       option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
