"""A stream across real test hosts: a face detector deployment of 2 replicas on two children, an RTSP camera on the
origin's host, the stream submitted to the origin. Its frames go through the origin's balancer to the replicas on
the other hosts (a second stream, with no room left on the origin, runs on a child and is read through the
origin); one replica killed, the deployment scaled down and rolled out under it, the events keep flowing: a frame that meets the dead replica is retried on the
other by the balancer, and the origin takes the dead one out of rotation within a controller round."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.assets import ASTRONAUT
from tests.support.hosts import Host, make_hosts
from tests.support.nodes import GIB, Node, link, nodes_view, running, wait_for
from tests.support.streams import make_clip, read_events, rtsp_server

TOKEN = "streams-across-hosts"
ORIGIN_RESOURCES = {"cpu": 0.5, "memory": 4 * GIB, "gpu": 0, "storage": GIB}  # room for the stream, no replica
CHILD_RESOURCES = {"cpu": 2, "memory": 4 * GIB, "gpu": 0, "storage": GIB}


@pytest.fixture(scope="module")
def tree() -> Iterator[tuple[list[Node], Host]]:
    """The nodes (origin first), and the origin's host, where the camera runs."""
    with make_hosts(3) as hosts:
        origin = link(Node(ORIGIN_RESOURCES, token=TOKEN, host=hosts[0]), heartbeat_period_s=1.0)
        children = [link(Node(CHILD_RESOURCES, token=TOKEN, host=host), parent=origin, heartbeat_period_s=1.0)
                    for host in hosts[1:]]
        with running(origin, *children):
            wait_for(lambda: sum(child["status"] == "online" for child in origin.api("GET", "/api/nodes").json()["children"])
                     == 2, timeout_s=30, diagnose=lambda: nodes_view(origin))
            yield [origin, *children], hosts[0]


def stream_status(origin: Node) -> dict[str, Any]:
    return origin.workload("cam").get("stream") or {}


def test_a_stream_keeps_its_events_when_a_detector_replica_dies(tree: tuple[list[Node], Host], tmp_path: Path) -> None:
    (origin, *children), host = tree
    tmp_path.chmod(0o755)
    clip = make_clip(tmp_path / "clip.mp4", [ASTRONAUT], 4.0)  # a face in every frame; replayed on each reconnect
    deployed = origin.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv", replicas=2, id="faces")
    assert deployed.status_code == 201, deployed.text
    instances = deployed.json()["deployment"]["instances"]
    assert sorted(instance["node"] for instance in instances) == sorted(child.node_id for child in children)
    with rtsp_server(clip, host.address, host.launcher()) as camera:
        answer = origin.submit({"source": camera.url, "detector": "faces", "fps": 5}, {"cpu": 0.5},
                               workload_type="stream", id="cam")
        assert answer.status_code == 201, answer.text
        assert answer.json()["node"] == origin.node_id  # next to its camera: the replicas are on other hosts
        events_url = f"{origin.url}/api/workloads/cam/events"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        _, first = read_events(events_url, 3, timeout_s=30, headers=auth)
        assert len(first) == 3 and all(event["detections"] for event in first)
        # No room left on the origin: a second stream is delegated to a child; its frames still come back through the
        # origin's balancer (with the signature the origin made for it), and its events and snapshots are read there.
        far = origin.submit({"source": camera.url, "detector": "faces", "fps": 5, "snapshot": True}, {"cpu": 0.5},
                            workload_type="stream", id="cam-far")
        assert far.status_code == 201 and far.json()["delegated_to"] in [child.node_id for child in children], far.text
        _, far_events = read_events(f"{origin.url}/api/workloads/cam-far/events", 2, timeout_s=30, headers=auth)
        assert len(far_events) == 2 and all(event["detections"] for event in far_events)
        snapshot = origin.api("GET", "/api/workloads/cam-far/snapshots/latest")
        assert snapshot.status_code == 200 and snapshot.headers["Content-Type"] == "image/jpeg"
        assert origin.api("DELETE", "/api/workloads/cam-far").status_code == 200
        victim = instances[0]
        os.kill(origin.workload(victim["id"])["process_pid"], signal.SIGKILL)
        before = stream_status(origin)
        _, after = read_events(events_url, 10, timeout_s=30, headers={**auth, "Last-Event-ID": str(first[-1]["seq"])})
        assert len(after) == 10 and all(event["detections"] for event in after)
        now = stream_status(origin)
        # The frame that met the dead replica was retried on the other one: at most a frame or two lost.
        assert now["frames_failed"] - before["frames_failed"] <= 2, now
        # The fault happened: the replica's node saw it die and restarted it.
        wait_for(lambda: origin.workload(victim["id"])["restarts"] >= 1, timeout_s=20)
        # Scaled down under it, the stream goes on with the replica that stays (the other drains first).
        scaled = origin.api("PATCH", "/api/workloads/faces", json={"replicas": 1})
        assert scaled.status_code == 200, scaled.text
        wait_for(lambda: origin.workload("faces")["deployment"]["summary"] == "running 1/1", timeout_s=30,
                 diagnose=lambda: origin.workload("faces")["deployment"])
        _, later = read_events(events_url, 5, timeout_s=30, headers={**auth, "Last-Event-ID": str(after[-1]["seq"])})
        assert len(later) == 5 and stream_status(origin)["frames_failed"] - now["frames_failed"] <= 2
        # A rollout under it (a new revision, replaced replica by replica): the stream follows it the same way.
        revised = origin.api("PATCH", "/api/workloads/faces", json={"requirements": {"cpu": 0.9}})
        assert revised.status_code == 200, revised.text
        wait_for(lambda: (lambda view: view["deployment"]["revision"] == 2 and not view["deployment"].get("rollout")
                          and view["deployment"]["summary"] == "running 1/1")(origin.workload("faces")), timeout_s=60,
                 diagnose=lambda: origin.workload("faces")["deployment"])
        _, rolled = read_events(events_url, 5, timeout_s=30, headers={**auth, "Last-Event-ID": str(later[-1]["seq"])})
        assert len(rolled) == 5 and stream_status(origin)["frames_failed"] - now["frames_failed"] <= 2
        origin.api("DELETE", "/api/workloads/cam")
    deleted = origin.api("DELETE", "/api/workloads/faces")
    assert deleted.status_code == 200, deleted.text
