"""/metrics on a node (two gunicorn workers, register, scheduler), a model service and the gateway: it
parses with prometheus-client's parser and its numbers follow real activity."""
from __future__ import annotations

from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.assets import ASTRONAUT
from tests.support.nodes import GIB, Node, wait_for



def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``/metrics by (name, sorted labels)."""
    answer = requests.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


NODE_PAIR = {"parent": {"resources": {"cpu": 2, "memory": 4 * GIB, "gpu": 0, "storage": GIB}, "api": {"workers": 2}},
             "child": {"resources": {"cpu": 8, "memory": 8 * GIB, "gpu": 0, "storage": GIB}}, "heartbeat_period_s": 1.0}


def test_node_resources_and_workloads(parent_and_child: tuple[Node, Node]) -> None:
    parent, _ = parent_and_child
    before = scrape(parent.url)
    assert value(before, "cnet_node_capacity", node=parent.node_id, resource="cpu") == 2
    assert value(before, "cnet_node_allocated", node=parent.node_id, resource="memory") == 0
    answer = parent.submit({"command": "sleep", "args": ["300"]}, {"cpu": 1.5, "memory": GIB})
    try:
        after = scrape(parent.url)
        assert value(after, "cnet_node_allocated", node=parent.node_id, resource="cpu") == 1.5
        assert value(after, "cnet_node_allocated", node=parent.node_id, resource="memory") == GIB
        assert value(after, "cnet_workloads", type="process", state="running") == 1
    finally:
        parent.api("DELETE", f"/api/workloads/{answer.json()['id']}")
    assert value(scrape(parent.url), "cnet_workloads", type="process", state="running") == 0


def test_request_counts_add_up_over_two_workers(parent_and_child: tuple[Node, Node]) -> None:
    parent, _ = parent_and_child
    labels = {"route": "/api/data", "method": "GET"}
    before = scrape(parent.url)
    for _ in range(40):  # a new connection each time: the kernel spreads them over both workers
        assert requests.get(f"{parent.url}/api/data", timeout=10).ok
    assert requests.get(f"{parent.url}/api/workloads/nope", timeout=10).status_code == 404
    after = scrape(parent.url)
    assert value(after, "cnet_api_requests_total", code="200", **labels) - \
        value(before, "cnet_api_requests_total", code="200", **labels) == 40
    assert value(after, "cnet_api_request_duration_seconds_count", **labels) - \
        value(before, "cnet_api_request_duration_seconds_count", **labels) == 40
    assert value(after, "cnet_api_errors_total", route="/api/workloads/{workload_id}", method="GET") >= 1
    writers = {path.stem.rsplit("_", 1)[-1] for path in (parent.runtime_dir / "metrics").glob("counter_*.db")}
    assert len(writers) >= 2, writers  # one file per process: api workers and the register, summed on scrape


def test_heartbeats_and_delegations(parent_and_child: tuple[Node, Node]) -> None:
    parent, child = parent_and_child
    before = scrape(parent.url)
    wait_for(lambda: value(scrape(parent.url), "cnet_heartbeats_received_total")
             >= value(before, "cnet_heartbeats_received_total") + 3, timeout_s=30)
    assert value(scrape(child.url), "cnet_heartbeats_sent_total") > 0
    answer = parent.submit({"command": "sleep", "args": ["300"]}, {"cpu": 4})  # fits only the child
    assert answer.status_code == 201 and answer.json()["node"] == child.node_id
    try:
        after = scrape(parent.url)
        assert value(after, "cnet_delegations_total", outcome="delegated") == \
            value(before, "cnet_delegations_total", outcome="delegated") + 1
        assert value(after, "cnet_workloads", type="process", state="delegated") == 1
    finally:
        parent.api("DELETE", f"/api/workloads/{answer.json()['id']}")


def test_model_service_and_gateway_metrics(parent_and_child: tuple[Node, Node]) -> None:
    parent, _ = parent_and_child
    service = parent.submit({"cascade_type": "face"}, {"cpu": 0.5}, workload_type="opencv").json()
    objects = Path(parent.config["storage"]["sqlite"]["data_path"]) / "metrics-objects"  # a gateway serves from there
    objects.mkdir(parents=True, exist_ok=True)
    (objects / "blob.bin").write_bytes(b"x" * 1000)
    gateway = parent.submit({"base_path": str(objects), "bucket": "m"}, {"cpu": 0.1},
                            workload_type="datagateway").json()
    try:
        with open(ASTRONAUT, "rb") as handle:
            image = handle.read()
        for _ in range(3):
            assert requests.post(f"{service['endpoint']}/predict", data=image, timeout=30,
                                 headers={"Content-Type": "image/png"}).ok
        assert requests.post(f"{service['endpoint']}/predict", data=b"junk", timeout=30,
                             headers={"Content-Type": "image/png"}).status_code == 422
        samples = scrape(service["endpoint"])
        predict = {"route": "/predict", "method": "POST"}
        assert value(samples, "cnet_service_requests_total", code="200", **predict) == 3
        assert value(samples, "cnet_service_errors_total", **predict) == 1
        assert value(samples, "cnet_service_request_duration_seconds_count", **predict) == 4
        for _ in range(2):
            assert requests.get(f"{gateway['endpoint']}/s3/m/blob.bin", timeout=10).content == b"x" * 1000
        assert requests.get(f"{gateway['endpoint']}/s3/m/blob.bin", headers={"Range": "bytes=0-9"}, timeout=10).ok
        assert value(scrape(gateway["endpoint"]), "cnet_gateway_bytes_served_total") == 2010
    finally:
        for workload in (service, gateway):
            parent.api("DELETE", f"/api/workloads/{workload['id']}")
