"""The faults a chaos round injects, each for ``duration_s`` and then taken back, its node or link chosen by the
round's random generator. ``inject`` records the fault in the history (its start and end) and says what it did.

Network faults act inside a test host's network namespace: a partition drops everything in and out of a host
(``Host.cut``) or between two hosts (iptables on the source and destination addresses), packet loss drops a
share of a link's packets (iptables' ``statistic`` match), a slow link shapes a host's interface (``tc`` tbf).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from typing import Callable

from tests.support.clocks import step_clock
from tools.chaos_cluster import NAMES, ChaosCluster
from tools.chaos_history import History

NODE_PROGRAMS = ("register", "scheduler", "monitor", "api")
# Each dropped share applies twice on a link's way (the sender's OUTPUT and the receiver's INPUT): 0.3 drops about
# half a direction's packets (a poor radio link), 0.6 about 84 % (a link that is all but gone, where a request's
# segments are retransmitted for longer than a forward waits, and may arrive after a newer connection's).
LOSS_PROBABILITIES = (0.3, 0.6)
SLOW_RATE = "256kbit"
# An edge machine's clock steps when NTP corrects it: minutes on a drifting one, hours across a time zone's
# mistake, days and years on a board without a battery-backed clock that booted at its build date.
CLOCK_STEPS_S = (-2 * 86400, -3600, -300, 300, 3600, 2 * 86400, 10 * 365 * 86400)


def _in(cluster: ChaosCluster, name: str, *command: str) -> None:
    subprocess.run(["ip", "netns", "exec", cluster.hosts[name].namespace, *command], check=True,
                   capture_output=True, timeout=30)


def _link_rules(cluster: ChaosCluster, first: str, second: str, *match: str) -> list[list[str]]:
    """iptables rules (without -I/-D) in ``first`` that drop what it exchanges with ``second``."""
    address = cluster.hosts[second].address
    return [["INPUT", "-s", address, *match, "-j", "DROP"], ["OUTPUT", "-d", address, *match, "-j", "DROP"]]


def _held(cluster: ChaosCluster, first: str, second: str, match: tuple[str, ...], duration_s: float) -> None:
    rules = [(host, rule) for host, other in ((first, second), (second, first))
             for rule in _link_rules(cluster, host, other, *match)]
    for host, rule in rules:
        _in(cluster, host, "iptables", "-I", *rule)
    try:
        time.sleep(duration_s)
    finally:
        for host, rule in rules:
            _in(cluster, host, "iptables", "-D", *rule)


def kill_process(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    name, program = generator.choice(NAMES), generator.choice(NODE_PROGRAMS)
    if not cluster.alive(name):
        return f"kill -9 {program}@{name}: node down, skipped"
    os.kill(cluster.nodes[name].program_pid(program), signal.SIGKILL)
    time.sleep(duration_s)
    return f"kill -9 {program}@{name}"


def kill_supervisord(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    name = generator.choice(NAMES)
    pid = int((cluster.nodes[name].runtime_dir / "supervisord.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    time.sleep(duration_s)
    cluster.restart(name)
    return f"kill -9 supervisord@{name}, started again after {duration_s:.1f} s"


def kill_node(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    name = generator.choice(NAMES)
    cluster.kill(name)
    time.sleep(duration_s)
    cluster.restart(name)
    return f"kill -9 node {name} (all its processes), started again after {duration_s:.1f} s"


def partition_host(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    name = generator.choice(NAMES)
    cluster.hosts[name].cut()
    try:
        time.sleep(duration_s)
    finally:
        cluster.hosts[name].heal()
    return f"partition of {name} for {duration_s:.1f} s"


def partition_link(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    first, second = generator.sample(NAMES, 2)
    _held(cluster, first, second, (), duration_s)
    return f"partition {first}↔{second} for {duration_s:.1f} s"


def packet_loss(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    first, second = generator.sample(NAMES, 2)
    probability = generator.choice(LOSS_PROBABILITIES)
    _held(cluster, first, second, ("-m", "statistic", "--mode", "random", "--probability", str(probability)),
          duration_s)
    return f"{probability:.0%} packet loss (each way, twice) {first}↔{second} for {duration_s:.1f} s"


def slow_link(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    name = generator.choice(NAMES)
    _in(cluster, name, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", SLOW_RATE, "burst", "32kbit",
        "latency", "400ms")
    try:
        time.sleep(duration_s)
    finally:
        _in(cluster, name, "tc", "qdisc", "del", "dev", "eth0", "root")
    return f"{name}'s link slowed to {SLOW_RATE} for {duration_s:.1f} s"


def full_disk(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    name = generator.choice(NAMES)
    filler = cluster.data_path(name) / ".chaos-filler"
    free = os.statvfs(filler.parent)
    subprocess.run(["fallocate", "-l", str(free.f_bavail * free.f_frsize), str(filler)], check=False,
                   capture_output=True)
    try:
        time.sleep(duration_s)
    finally:
        filler.unlink(missing_ok=True)
    return f"{name}'s data disk full for {duration_s:.1f} s"


def crash_loop(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    name = generator.choice(NAMES)
    node = cluster.nodes[name]
    workload_id = f"chaos-crash-{generator.randrange(10**6)}"
    node.submit({"command": "sh", "args": ["-c", "sleep 0.2; exit 3"], "restart": "always"}, {"cpu": 0.1},
                id=workload_id, fresh_connection=True)
    time.sleep(duration_s)
    node.api("DELETE", f"/api/workloads/{workload_id}", fresh_connection=True)
    return f"a crash-looping process on {name} for {duration_s:.1f} s"


def slow_neighbour(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    name, program = generator.choice(NAMES), generator.choice(("register", "api"))
    if not cluster.alive(name):
        return f"SIGSTOP {program}@{name}: node down, skipped"
    group = os.getpgid(cluster.nodes[name].program_pid(program))
    os.killpg(group, signal.SIGSTOP)
    try:
        time.sleep(duration_s)
    finally:
        os.killpg(group, signal.SIGCONT)
    return f"SIGSTOP {program}@{name} for {duration_s:.1f} s, then SIGCONT"


def clock_step(cluster: ChaosCluster, generator: random.Random, duration_s: float) -> str:
    name, step_s = generator.choice(NAMES), generator.choice(CLOCK_STEPS_S)
    step_clock(cluster.nodes[name], step_s)
    try:
        time.sleep(duration_s)
    finally:
        step_clock(cluster.nodes[name], 0)
    return f"{name}'s wall clock stepped {step_s:+d} s for {duration_s:.1f} s, then back"


FAULTS: dict[str, Callable[[ChaosCluster, random.Random, float], str]] = {
    "kill_process": kill_process, "kill_supervisord": kill_supervisord, "kill_node": kill_node,
    "partition_host": partition_host, "partition_link": partition_link, "packet_loss": packet_loss,
    "slow_link": slow_link, "full_disk": full_disk, "crash_loop": crash_loop, "slow_neighbour": slow_neighbour,
    "clock_step": clock_step}
FAULT_KINDS = tuple(FAULTS)


def inject(cluster: ChaosCluster, history: History, kind: str, duration_s: float, generator: random.Random) -> str:
    history.add("fault", fault=kind, phase="start", duration_s=round(duration_s, 1))
    try:
        described = FAULTS[kind](cluster, generator, duration_s)
    except Exception as exc:  # a fault that could not be made is reported, not a crash of the run
        described = f"{kind}: could not be made ({exc})"
    history.add("fault", fault=kind, phase="end", described=described)
    return described
