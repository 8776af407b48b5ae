"""What must hold in the chaos run's cluster once a round's faults are healed and it has settled, each violation
a line naming the invariant (the issue's numbering) with the history lines behind it.

1. A submission answered 201 exists at its origin (unless a delete of it was sent: one whose answer was lost may
   have been done), and runs on exactly one node; a deleted one nowhere; no node runs an id its origin has no
   record of (an orphan).
2. Each node's ledger matches its supervisord: a running record has a running program and a running program a
   live record; a record to stop (``desired: stop``) does not run; allocated equals the sum over its live records
   (its model cache's included), and allocated plus available is capacity.
3. The parent's view of each child (and the first child's of its peer) equals that node's own resources.
4. The deployment has its count of healthy replicas, or says why not.
5. An upload answered 201 reads back byte-identical, its SHA-256 and MD5 (the ETag's attribute) included, from
   disk and through its node's S3 gateway (checked as the reads came, ``Load``), and is not missing there until
   it is deleted; no upload left files without a record, or a staging directory.
6. (At the end) no process of a node survives its stop: ``ChaosCluster.stop_all``.
7. No prediction answer carried another image's result (checked as the answers came, ``Load``).
8. No request was answered 500, through the API or a gateway: that is a bug's answer (``Told.answered``).
"""
from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import time
from typing import Any

from gateway.etags import XATTR
from tests.support.nodes import VENV_BIN, held_by
from tools.chaos_cluster import NAMES, ChaosCluster
from tools.chaos_history import History
from tools.chaos_load import DEPLOYMENT

SETTLE_S = 90.0
UNSETTLED = ("starting", "delegating", "unknown", "uploading")
RECHECKS, RECHECK_S = 3, 5.0  # a view that lags (a heartbeat on its way) is given a few seconds more


def _workloads(cluster: ChaosCluster, name: str) -> list[dict[str, Any]]:
    """Every record of a node, replicas included, as its API shows them."""
    node = cluster.nodes[name]
    top = node.api("GET", "/api/workloads", fresh_connection=True).json()["workloads"]
    replica_ids = [instance["id"] for record in top if record.get("deployment")
                   for instance in record["deployment"]["instances"]]
    replicas = node.api("GET", "/api/workloads", params={"ids": ",".join(replica_ids)},
                        fresh_connection=True).json()["workloads"] if replica_ids else []
    return top + replicas


def settle(cluster: ChaosCluster) -> float:
    """Wait (at most SETTLE_S) until every node answers, sees its neighbours and holds nothing unsettled;
    how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_S:
        try:
            if cluster.linked() and not any(record["status"] in UNSETTLED for name in NAMES
                                            for record in _workloads(cluster, name)):
                break
        except Exception:  # a node still coming back
            pass
        time.sleep(1.0)
    return time.monotonic() - started


def _supervised(cluster: ChaosCluster, name: str) -> dict[str, str]:
    """Workload programs as supervisord runs them: name → state."""
    node = cluster.nodes[name]
    result = subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", str(node.runtime_dir / "supervisord.conf"),
                             "status"], capture_output=True, text=True, timeout=30)
    states = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("workloads:"):
            states[parts[0]] = parts[1]
    return states


def _check_once(cluster: ChaosCluster) -> list[str]:
    violations: list[str] = []
    told = cluster.told
    records = {name: _workloads(cluster, name) for name in NAMES}
    local_on = collections.defaultdict(list)  # id → nodes that run it (hold a record that is not a pointer)
    known_at = collections.defaultdict(set)  # id → nodes that hold a record of it (a pointer included)
    for name, listed in records.items():
        for record in listed:
            known_at[record["id"]].add(name)
            if not record.get("delegated_to") and record["status"] not in ("completed", "failed", "stopped"):
                local_on[record["id"]].append(name)
    # 1. exactly once, at its origin; no orphans
    for workload_id, origin in sorted(told.tried.items()):
        if workload_id in told.deleted:
            if workload_id in known_at:
                violations.append(f"1: {workload_id} was deleted (200) but {sorted(known_at[workload_id])} still hold it")
            continue
        if workload_id in told.admitted and workload_id not in told.deleting and origin not in known_at[workload_id]:
            violations.append(f"1: {workload_id} was admitted (201) at {origin}, which has no record of it")
        if len(local_on[workload_id]) > 1:
            violations.append(f"1: {workload_id} runs on {len(local_on[workload_id])} nodes: {local_on[workload_id]}")
        if local_on[workload_id] and origin not in known_at[workload_id]:
            violations.append(f"1: {workload_id} runs on {local_on[workload_id]} with no record at its origin {origin}")
    # 2. ledger, supervisord and the allocation agree, on every node
    for name in NAMES:
        programs = _supervised(cluster, name)
        mine = [record for record in records[name] if not record.get("delegated_to")]
        for record in mine:
            program = record.get("program")
            if record["status"] == "running" and program and programs.get(program) != "RUNNING":
                violations.append(f"2: {name}: {record['id']} is running in the ledger, its program is "
                                  f"{programs.get(program, 'absent')}")
            if record["status"] == "running" and record.get("desired") == "stop":
                violations.append(f"2: {name}: {record['id']} still runs, its stop recorded but not carried out")
        live = {record.get("program") for record in mine if record["status"] in ("running", "starting")}
        for program, state in programs.items():
            if state == "RUNNING" and program not in live:
                violations.append(f"2: {name}: supervisord runs {program} with no live record")
        resources = cluster.nodes[name].api("GET", "/api/resources", fresh_connection=True).json()
        held = held_by([record for record in mine if not record.get("deployment")])  # a deployment holds nothing
        held["storage"] += cluster.nodes[name].api("GET", "/api/models", fresh_connection=True).json()["cached_bytes"]
        for kind, amount in held.items():
            if abs(resources["allocated"][kind] - amount) > 1e-6:
                violations.append(f"2: {name}: allocated {kind} {resources['allocated'][kind]} but its live records "
                                  f"hold {amount}")
            if abs(resources["allocated"][kind] + resources["available"][kind] - resources["capacity"][kind]) > 1e-6:
                violations.append(f"2: {name}: allocated + available {kind} is not its capacity: {resources}")
    # 3. views of neighbours
    for viewer, role, seen_names in (("parent", "children", ("child1", "child2")), ("child1", "peers", ("peer",))):
        entries = cluster.nodes[viewer].api("GET", "/api/nodes", fresh_connection=True).json()[role]
        for seen in seen_names:
            own = cluster.nodes[seen].api("GET", "/api/resources", fresh_connection=True).json()["allocated"]
            entry = next((item for item in entries if item["id"] == cluster.nodes[seen].node_id), None)
            shown = (entry or {}).get("resources") or {}
            if entry is None or entry["status"] != "online" or shown.get("allocated") != own:
                violations.append(f"3: {viewer} sees {seen} as {entry and entry['status']} with allocated "
                                  f"{shown.get('allocated')}; it holds {own}")
    # 4. the deployment
    deployment = next((record for record in records["parent"] if record["id"] == DEPLOYMENT), None)
    if deployment is not None:
        state = deployment["deployment"]
        if state["healthy"] != state["replicas"] and not deployment.get("message"):
            violations.append(f"4: {DEPLOYMENT} has {state['healthy']} of {state['replicas']} healthy and says not why")
    # 5. uploads
    for key, (name, sha256, md5) in sorted(told.stored.items()):
        if key in told.deleted:
            continue
        violations += _upload_violations(cluster, name, key, sha256, md5)
    for name in NAMES:
        violations += [f"5: {name}: {record['id']} is still uploading after the cluster settled (its storage held)"
                       for record in records[name] if record["status"] == "uploading"]
        catalogued = {item["data_key"] for item in cluster.nodes[name].api("GET", "/api/data",
                                                                            fresh_connection=True).json()["data"]}
        for entry in os.listdir(cluster.data_path(name)):
            if entry.startswith(".uploading-") or (entry not in catalogued and entry not in ("models", ".chaos-filler")):
                violations.append(f"5: {name}: {entry} in its data path belongs to no stored upload")
    return violations


def _upload_violations(cluster: ChaosCluster, name: str, key: str, sha256: str, md5: str) -> list[str]:
    answer = cluster.nodes[name].api("GET", f"/api/data/{key}", fresh_connection=True)
    if answer.status_code != 200:
        return [f"5: {key} was stored (201) on {name}, which now answers {answer.status_code}"]
    path = cluster.data_path(name) / key / "blob.bin"
    try:
        content = path.read_bytes()
    except OSError as exc:
        return [f"5: {key} on {name}: {exc}"]
    try:
        attribute: str | None = os.getxattr(path, XATTR).decode()
    except OSError:  # a filesystem without user attributes: the gateway computes the ETag once, when asked
        attribute = None
    found = []
    if hashlib.sha256(content).hexdigest() != sha256:
        found.append(f"5: {key} on {name} does not read back as sent (SHA-256)")
    if hashlib.md5(content).hexdigest() != md5 or attribute not in (None, md5):
        found.append(f"5: {key} on {name}: MD5 {attribute} (its ETag's) is not what was sent")
    return found


def check(cluster: ChaosCluster, history: History) -> list[str]:
    """The violations found as the answers came (5 through the gateways, 7, 8), and those of the cluster's state
    that stay over a few rechecks (a view that lags settles meanwhile), each with the history lines behind it."""
    violations = cluster.told.answered_wrong()
    for attempt in range(RECHECKS):
        try:
            found = _check_once(cluster)
        except Exception as exc:  # a node that does not answer after settling is itself a finding
            found = [f"0: the cluster could not be checked: {type(exc).__name__}: {exc}"]
        if not found:
            break
        if attempt < RECHECKS - 1:
            time.sleep(RECHECK_S)
    else:
        violations += found
    return [f"{violation}\n    " + "\n    ".join(history.about(violation.split()[1].rstrip(":"), 4))
            for violation in violations]
