"""A chaos run: a cluster of real nodes on test hosts under a mixed, continuous load, faults injected at random
from a seed, and the cluster's invariants checked after each round has settled.

    .venv/bin/python tools/chaos.py --seed S --rounds N [--round-s 60] [--history FILE]
    make chaos SEED=S ROUNDS=N

The cluster (``ChaosCluster``): a parent, two children, and a peer of the first child, each on its own test
host (``tools/testhosts.sh``: its own address, partitions), with a token, its own runtime dir, data and wall
clock. The load (``chaos_load.py``): process submissions, stops and deletes at every node; a face detector
deployment of replicas at the parent, scaled up and down, and predictions through it; data uploads, read back
through each node's S3 gateway; a model only the parent has, deployed at its children (fetched across the hop)
and predicted through. Every request and its answer goes into the history (JSON lines, with times). The faults
(``chaos_faults.py``), one to three a round, each for a few seconds (a quarter of them longer than a forward's
timeout), chosen by the round's random generator: kill -9 of a node process (register, scheduler, monitor, api,
supervisord) or of a whole node; a partition of one host or between two; packet loss on a link (iptables'
statistic match); a slow link (tc tbf); a full data disk; a crash-looping workload; a slow neighbour (SIGSTOP of
its register or API, then SIGCONT); a step of one node's wall clock (libfaketime). ``--faults`` narrows the
kinds. Then the faults are healed, the load stops, the cluster settles (bounded) and ``chaos_invariants.py``
checks it, printing each violation with the history lines behind it. The last line is
``chaos: N rounds, F faults, Q requests, V violations (seed S)``; the exit status is
1 when V > 0. The same seed makes the same choices (the machine's timing still varies).
"""
from __future__ import annotations

import argparse
import collections
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.chaos_cluster import ChaosCluster  # noqa: E402
from tools.chaos_faults import FAULT_KINDS, inject  # noqa: E402
from tools.chaos_history import History  # noqa: E402
from tools.chaos_invariants import check, settle  # noqa: E402
from tools.chaos_load import Load  # noqa: E402

MAX_FAULTS_PER_ROUND = 3
FAULT_S = (2.0, 8.0)
# Some faults outlast a forward's timeout (FORWARD_TIMEOUT_S, 15 s): its outcome is then unknown, settled
# afterwards, and a forward held up in the fault may still arrive after it was settled (which its fence refuses).
LONG_FAULT_S, LONG_SHARE = (16.0, 25.0), 0.25


def plant_orphan(cluster: ChaosCluster, history: History) -> None:
    """The harness's control: a workload made to run on the first child as if the parent had forwarded it,
    which the parent has no record of (what a lost record-before-forward would leave): invariant 1 must say so."""
    workload_id = "chaos-planted-orphan"
    with cluster.told.lock:
        cluster.told.tried[workload_id] = "parent"
    answer = cluster.nodes["child1"].api("POST", "/api/workloads", fresh_connection=True, json={
        "id": workload_id, "type": "process", "config": {"command": "sleep", "args": ["3600"]},
        "requirements": {"cpu": 0.1}, "delegation": {"visited": [cluster.nodes["parent"].node_id]}})
    history.add("plant", what="orphan", node="child1", id=workload_id, status=answer.status_code)


@dataclass
class Totals:
    rounds: int = 0
    faults: collections.Counter[str] = field(default_factory=collections.Counter)  # by kind
    requests: int = 0
    violations: int = 0

    def line(self, seed: int) -> str:
        return (f"chaos: {self.rounds} rounds, {sum(self.faults.values())} faults, {self.requests} requests, "
                f"{self.violations} violations (seed {seed})")


def run_round(cluster: ChaosCluster, history: History, number: int, generator: random.Random,
              round_s: float, kinds: tuple[str, ...], plant: bool = False) -> tuple[list[str], int, int]:
    """One round: load, faults at random times, heal, settle, check. (fault kinds, requests, violations)."""
    history.round = number
    requests_before = history.requests
    faults = [(generator.uniform(0.1, 0.6) * round_s, generator.choice(kinds),
               generator.uniform(*(LONG_FAULT_S if generator.random() < LONG_SHARE else FAULT_S)), generator.random())
              for _ in range(generator.randint(1, MAX_FAULTS_PER_ROUND))]
    faults.sort()
    started = time.monotonic()
    described = []
    with Load(cluster, history, random.Random(generator.random())) as load:
        for at_s, kind, duration_s, choice in faults:
            time.sleep(max(0.0, started + at_s - time.monotonic()))
            described.append(inject(cluster, history, kind, duration_s, random.Random(choice)))
        time.sleep(max(0.0, started + round_s - time.monotonic()))
        load.stop()
    settled_s = settle(cluster)
    if plant:
        plant_orphan(cluster, history)
    violations = check(cluster, history)
    requests = history.requests - requests_before
    print(f"round {number}: faults: {'; '.join(described)}")
    print(f"round {number}: load: {requests} requests ({load.summary()}); settled in {settled_s:.1f} s")
    if violations:
        for violation in violations:
            print(f"round {number}: VIOLATION {violation}")
    else:
        print(f"round {number}: invariants: all hold")
    sys.stdout.flush()
    return [kind for _, kind, _, _ in faults], requests, len(violations)


def run(seed: int, rounds: int, round_s: float, history_path: Path, plant_orphan: bool = False,
        minutes: float | None = None, kinds: tuple[str, ...] = FAULT_KINDS) -> Totals:
    """``rounds`` rounds (fewer when ``minutes`` run out first), printing each; what they came to. A SIGTERM tears
    the cluster down as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _interrupted)
    generator, totals, deadline = random.Random(seed), Totals(), time.monotonic() + (minutes or 0) * 60
    with History(history_path) as history, ChaosCluster() as cluster:
        length = f"rounds for {minutes:g} minutes" if minutes is not None else f"{rounds} rounds"
        print(f"chaos: seed {seed}, {length} of {round_s:g} s, kinds: {', '.join(kinds)}; history in {history_path}")
        for number in range(1, rounds + 1):
            if minutes is not None and time.monotonic() > deadline:
                break
            injected, requests, violations = run_round(cluster, history, number, generator, round_s, kinds,
                                                       plant_orphan and number == rounds)
            totals.rounds += 1
            totals.faults.update(injected)
            totals.requests += requests
            totals.violations += violations
        stopped = cluster.stop_all()
        totals.violations += len(stopped)
        for violation in stopped:
            print(f"stop: VIOLATION {violation}")
    return totals


def _fault_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown fault kinds {unknown} (known: {', '.join(FAULT_KINDS)})")
    return kinds


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt  # everything started is torn down on the way out, as for Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/chaos.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-s", type=float, default=60.0, help="seconds of load and faults per round")
    parser.add_argument("--history", type=Path, default=Path("chaos-history.jsonl"))
    parser.add_argument("--plant-orphan", action="store_true",
                        help="the control: plant an orphan before the last round's check (it must be reported)")
    parser.add_argument("--faults", type=_fault_kinds, default=FAULT_KINDS, metavar="KIND,…",
                        help=f"only these kinds of fault (of {', '.join(FAULT_KINDS)})")
    args = parser.parse_args(argv)
    totals = run(args.seed, args.rounds, args.round_s, args.history, args.plant_orphan, kinds=args.faults)
    print(totals.line(args.seed))
    return 1 if totals.violations else 0


if __name__ == "__main__":
    sys.exit(main())
