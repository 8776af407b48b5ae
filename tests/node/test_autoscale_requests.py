"""Autoscaled deployments on one node: what a request may change (PATCH autoscale; PATCH replicas refused,
saying how to change the bounds), bad input refused leaving nothing allocated, the count and signal on
/metrics, and from zero: an idle deployment holds no CPU, the next request is held while a replica starts
and is answered, and the cold start is reported."""
from __future__ import annotations

import time

import requests

from tests.support.assets import ASTRONAUT
from tests.support.load import PredictionLoad
from tests.support.nodes import GIB, Node, metric, wait_for

FACE = {"cascade_type": "face"}
IMAGE = open(ASTRONAUT, "rb").read()
NODE = {"resources": {"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, "health": {"interval_s": 0.5},
        "replicas": {"max": 4}}


def faces(node: Node, workload_id: str, cpu: float = 0.5, **fields: object) -> requests.Response:
    return node.submit(FACE, {"cpu": cpu}, workload_type="opencv", id=workload_id, **fields)


def patch(node: Node, workload_id: str, body: object) -> requests.Response:
    return node.api("PATCH", f"/api/workloads/{workload_id}", json=body)


def gone(node: Node, *workload_ids: str) -> None:
    for workload_id in workload_ids:
        node.api("DELETE", f"/api/workloads/{workload_id}")
    wait_for(lambda: node.resources()["allocated"]["cpu"] == 0, timeout_s=30, diagnose=node.resources)


def test_what_an_autoscaled_deployment_cannot_be_is_refused_and_leaves_nothing(node: Node) -> None:
    assert faces(node, "fixed", replicas=1).status_code == 201
    assert faces(node, "scaled", autoscale={"min_replicas": 1, "max_replicas": 2}).status_code == 201
    try:
        refusals = [
            (patch(node, "scaled", {"replicas": 2}), 409, "conflict", 'PATCH {"autoscale": {"min_replicas": N'),
            (patch(node, "fixed", {"autoscale": {"max_replicas": 3}}), 409, "conflict", "not an autoscaled"),
            (patch(node, "scaled", {"autoscale": {"min_replicas": 3}}), 400, "invalid_request",
             "autoscale.min_replicas: 3 is more than autoscale.max_replicas (2)"),
            (patch(node, "scaled", {"autoscale": {"target_ongoing_requests": 0}}), 400, "invalid_request",
             "autoscale.target_ongoing_requests"),
            (patch(node, "scaled", {"autoscale": {"max_replicas": 5}}), 422, "unprocessable", "replicas.max"),
            (patch(node, "scaled", {"autoscale": {"min_replicas": 2}, "replicas": 2}), 400, "invalid_request",
             "change it alone"),
            (faces(node, "bad", autoscale={"min_replicas": 3, "max_replicas": 2}), 400, "invalid_request",
             "autoscale.min_replicas"),
            (faces(node, "bad", autoscale={"downscale_delay_s": -1}), 400, "invalid_request",
             "autoscale.downscale_delay_s"),
            (faces(node, "bad", autoscale={}, replicas=2), 400, "invalid_request", "replicas: not with autoscale"),
            (node.submit({"command": "sleep", "args": ["9"]}, id="bad", autoscale={}), 400, "invalid_request",
             "autoscale: a process workload has no replicas"),
            (faces(node, "bad", autoscale={"max_replicas": 5}), 422, "unprocessable", "replicas.max"),
            (faces(node, "bad", cpu=1, autoscale={"min_replicas": 3}), 409, "insufficient_resources", "cpu"),
        ]
        for answer, status, code, says in refusals:
            assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
            assert says in answer.json()["message"], answer.text
        assert sorted(view["id"] for view in node.workloads()
                      if not view.get("replica_of")) == ["fixed", "scaled"]
        assert node.resources()["allocated"]["cpu"] == 1.0
        policy = node.workload("scaled")["deployment"]["autoscale"]["policy"]
        assert (policy["min_replicas"], policy["max_replicas"]) == (1, 2)  # unchanged by what was refused
    finally:
        gone(node, "fixed", "scaled")


def test_new_bounds_move_the_count_at_once_and_the_decision_is_recorded_and_measured(node: Node) -> None:
    created = faces(node, "bounded", cpu=0.25, autoscale={"min_replicas": 1, "max_replicas": 3,
                                                         "downscale_delay_s": 600})
    assert created.status_code == 201 and created.json()["deployment"]["replicas"] == 1, created.text
    try:
        raised = patch(node, "bounded", {"autoscale": {"min_replicas": 2}})
        assert raised.status_code == 200, raised.text
        deployment = raised.json()["deployment"]
        assert deployment["replicas"] == 2 and deployment["autoscale"]["policy"]["max_replicas"] == 3
        decision = deployment["autoscale"]["decision"]
        assert (decision["from"], decision["to"], decision["reason"]) == (1, 2, "bounds changed to 2–3")
        assert deployment["autoscale"]["history"] == [decision]
        wait_for(lambda: node.workload("bounded")["deployment"]["healthy"] == 2, timeout_s=30,
                 diagnose=lambda: node.workload("bounded"))
        assert metric(node, "cnet_deployment_replicas", deployment="bounded", state="desired") == 2
        assert metric(node, "cnet_deployment_replicas", deployment="bounded", state="healthy") == 2
        assert metric(node, "cnet_deployment_autoscale_signal", deployment="bounded") == 0
        assert metric(node, "cnet_deployment_resource_limited", deployment="bounded") == 0
    finally:
        gone(node, "bounded")


def test_an_idle_deployment_goes_to_zero_and_the_next_request_is_held_until_a_replica_answers(node: Node) -> None:
    created = faces(node, "sleepy", autoscale={"min_replicas": 0, "max_replicas": 2, "downscale_delay_s": 1,
                                               "metrics_window_s": 1})
    assert created.status_code == 201, created.text
    try:
        # Idle for the downscale delay: no replica, nothing held, the record says how it wakes.
        wait_for(lambda: node.workload("sleepy")["deployment"]["replicas"] == 0, timeout_s=30,
                 diagnose=lambda: node.workload("sleepy"))
        wait_for(lambda: node.resources()["allocated"]["cpu"] == 0, timeout_s=30, diagnose=node.resources)
        asleep = node.workload("sleepy")
        assert asleep["deployment"]["summary"] == "scaled to zero (a request starts a replica)", asleep
        assert not [line for line in node.supervisorctl("status").splitlines() if "sleepy" in line and "RUNNING" in line]
        started = time.monotonic()
        answer = node.api("POST", "/api/workloads/sleepy/predict", data=IMAGE, headers={"Content-Type": "image/png"})
        held_s = time.monotonic() - started
        assert answer.status_code == 200 and answer.json()["count"] >= 1, answer.text
        cold_ms = float(answer.headers["X-CNET-Cold-Start-Ms"])
        assert 0 < cold_ms <= held_s * 1000 and held_s < 30, (cold_ms, held_s)  # within replicas.cold_start_timeout_s
        woken = wait_for(lambda: (lambda view: view if view["deployment"]["autoscale"].get("cold_start_s") else None)(
            node.workload("sleepy")), timeout_s=10)
        history = [(item["from"], item["to"]) for item in woken["deployment"]["autoscale"]["history"]]
        assert history[-2:] == [(1, 0), (0, 1)], history
        assert woken["deployment"]["autoscale"]["cold_start_s"] > 0
        assert metric(node, "cnet_deployment_cold_start_seconds_count") >= 1
    finally:
        gone(node, "sleepy")


def test_the_signal_is_what_the_endpoint_has_in_flight(node: Node) -> None:
    """Eight clients keep requests in flight through the deployment's endpoint: the balancer's gauge and the
    record's signal see them; once they stop, both go back to 0 (the control: idle reads 0)."""
    assert faces(node, "counted", cpu=0.25, autoscale={"min_replicas": 1, "max_replicas": 1}).status_code == 201
    try:
        assert metric(node, "cnet_deployment_ongoing_requests", deployment="counted") in (None, 0)
        with PredictionLoad(node.url + "/api/workloads/counted/predict", clients=8,
                            headers=dict(node.http.headers)) as load:
            seen = wait_for(lambda: metric(node, "cnet_deployment_ongoing_requests", deployment="counted"),
                            timeout_s=20)
            signal = wait_for(lambda: node.workload("counted")["deployment"]["autoscale"]["signal"], timeout_s=20)
        failures = load.failed()
        assert 0 < seen <= 8 and 0 < signal <= 8 and not failures, (seen, signal, failures[:3])
        wait_for(lambda: metric(node, "cnet_deployment_ongoing_requests", deployment="counted") == 0, timeout_s=10)
        wait_for(lambda: node.workload("counted")["deployment"]["autoscale"]["signal"] == 0, timeout_s=20)
    finally:
        gone(node, "counted")
