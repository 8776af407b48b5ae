"""GPUs: device indices handed out atomically, never shared, released; NVML answers read into devices and usage."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import orjson
import pytest

from cnetd.core import hostinfo
from cnetd.common.errors import InsufficientResources
from ledger.records import Resources, Status, WorkloadRecord
from ledger.store import Ledger
from tests.support.nodes import VENV_BIN, Node, link, nodes_view, running, wait_for
from cnetd.core.lifecycle import finish


def record(workload_id: str, gpu: int) -> WorkloadRecord:
    return WorkloadRecord(id=workload_id, type="process", name=workload_id, config={}, requirements=Resources(gpu=gpu))


def test_ledger_hands_out_distinct_devices_and_takes_them_back(tmp_path) -> None:
    ledger = Ledger(str(tmp_path / "l"))
    ledger.set_node({}, Resources(cpu=8, gpu=3), [{"index": i, "name": "declared"} for i in range(3)])
    assert ledger.admit(record("a", 1)).gpu_devices == [0]
    assert ledger.admit(record("b", 2)).gpu_devices == [1, 2]
    with pytest.raises(InsufficientResources):
        ledger.admit(record("c", 1))
    assert [gpu["workload"] for gpu in ledger.gpus()] == ["a", "b", "b"]
    ledger.update("b", finish(Status.COMPLETED, 0))
    assert [gpu["workload"] for gpu in ledger.gpus()] == ["a", None, None]
    assert ledger.admit(record("d", 2)).gpu_devices == [1, 2]
    ledger.remove("a")
    assert ledger.admit(record("e", 1)).gpu_devices == [0]
    assert ledger.admit(record("f", 0)).gpu_devices == []
    ledger.close()


def visible_devices(node: Node, gpu: int) -> str:
    workload = node.submit({"command": "sh", "args": ["-c", 'echo "[$CUDA_VISIBLE_DEVICES]"']}, {"gpu": gpu}).json()
    wait_for(lambda: node.workload(workload["id"])["status"] == "completed")
    return node.api("GET", f"/api/workloads/{workload['id']}/logs").json()["stdout"].strip()


def test_workloads_see_exactly_their_devices(start_node) -> None:
    node = start_node({"cpu": 8, "memory": 2**32, "gpu": 2, "storage": 0})
    holder = node.submit({"command": "sleep", "args": ["120"]}, {"gpu": 1}).json()
    assert holder["gpu_devices"] == [0]
    gpus = node.resources()["gpus"]
    assert [(gpu["index"], gpu["workload"]) for gpu in gpus] == [(0, holder["id"]), (1, None)]
    assert visible_devices(node, 1) == "[1]"
    assert visible_devices(node, 0) == "[]"  # no GPU asked, none visible
    tapped = subprocess.run([str(VENV_BIN / "cnet-tap"), "--json", "--count", "1", f"tcp://127.0.0.1:{node.mesh_port}"],
                            capture_output=True, text=True, timeout=60)
    beat = orjson.loads(tapped.stdout)
    assert [(gpu["index"], gpu["workload"]) for gpu in beat["gpus"]] == [(0, holder["id"]), (1, None)]
    refused = node.submit({"command": "true"}, {"gpu": 2})
    assert refused.status_code == 409 and "gpu" in refused.json()["message"]
    node.api("POST", f"/api/workloads/{holder['id']}/stop")
    assert visible_devices(node, 2) == "[0,1]"
    assert all(gpu["workload"] is None for gpu in node.resources()["gpus"])


def test_a_node_without_free_gpus_delegates() -> None:
    parent = link(Node({"cpu": 8, "memory": 2**32, "gpu": 0, "storage": 0}), heartbeat_period_s=1.0)
    child = link(Node({"cpu": 8, "memory": 2**32, "gpu": 1, "storage": 0}), parent=parent, heartbeat_period_s=1.0)
    with running(parent, child):
        wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "online")], timeout_s=15)
        answer = parent.submit({"command": "sleep", "args": ["60"]}, {"gpu": 1})
        assert answer.status_code == 201 and answer.json()["node"] == child.node_id
        assert answer.json()["gpu_devices"] == [0]
        wait_for(lambda: parent.api("GET", "/api/nodes").json()["children"][0]["gpus"][0]["workload"] == answer.json()["id"])
        parent.api("DELETE", f"/api/workloads/{answer.json()['id']}")


class _FakeNvml:
    """Stands in for nvidia-ml-py on this GPU-less machine (bench/gpu_check.py runs the real one): two
    devices, the first query of utilization failing when ``broken``."""

    class NVMLError(Exception):
        pass

    def __init__(self, broken: bool = False) -> None:
        self.broken, self.open = broken, False

    def nvmlInit(self) -> None:
        self.open = True

    def nvmlShutdown(self) -> None:
        self.open = False

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return f"GPU {handle}".encode()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=80 * 2**30, used=handle * 2**30)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        if self.broken:
            raise self.NVMLError("GPU is lost")
        return SimpleNamespace(gpu=10 * handle)


def test_nvml_answers_become_devices_and_usage(monkeypatch) -> None:
    nvml = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert hostinfo.detect_gpus() == [{"index": 0, "name": "GPU 0", "memory_total_bytes": 80 * 2**30},
                                      {"index": 1, "name": "GPU 1", "memory_total_bytes": 80 * 2**30}]
    assert hostinfo.gpu_usage() == {0: {"memory_used_bytes": 0, "utilization_percent": 0},
                                    1: {"memory_used_bytes": 2**30, "utilization_percent": 10}}
    assert not nvml.open
    broken = _FakeNvml(broken=True)
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert hostinfo.gpu_usage() == {} and not broken.open  # a failing query: no usage, NVML still shut down
