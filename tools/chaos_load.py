"""The chaos run's load: clients that keep the cluster busy through its nodes' APIs while faults come and go,
each request and its answer written to the history, and what the cluster was told kept for the invariants.

- processes: submitted at a random node (they run where placement puts them), later stopped or deleted;
- a face detector deployment of replicas at the parent, scaled between 1 and 3, and predictions through the
  parent, each an image whose answer is known (a face, or none);
- data uploads of random bytes at a random node, later deleted.
"""
from __future__ import annotations

import collections
import hashlib
import os
import random
import threading
from typing import Any, Callable

import requests

from tests.support.assets import ASTRONAUT, COFFEE
from tests.support.load import LoadThreads
from tools.chaos_cluster import NAMES, ChaosCluster
from tools.chaos_history import History, Told

DEPLOYMENT = "chaos-faces"
REQUEST_TIMEOUT_S = 20.0
IMAGES = {"face": open(ASTRONAUT, "rb").read(), "none": open(COFFEE, "rb").read()}


class Load(LoadThreads):
    def __init__(self, cluster: ChaosCluster, history: History, generator: random.Random) -> None:
        self._cluster, self._history = cluster, history
        self.statuses: collections.Counter[str] = collections.Counter()
        self.told: Told = cluster.told
        super().__init__([threading.Thread(target=self._loop, args=(work, random.Random(generator.random())),
                                           name=f"load-{work.__name__}", daemon=True)
                          for work in (self._processes, self._processes, self._scale, self._predict, self._predict,
                                       self._uploads)], REQUEST_TIMEOUT_S + 5)

    def __enter__(self) -> Load:
        self._ensure_deployment()
        super().__enter__()
        return self

    def summary(self) -> str:
        return ", ".join(f"{name}: {count}" for name, count in sorted(self.statuses.items()))

    # -- requests -------------------------------------------------------------------------------

    def _call(self, name: str, method: str, path: str, what: str, **kwargs: Any) -> requests.Response | None:
        node = self._cluster.nodes[name]
        self._history.add("request", node=name, method=method, path=path, what=what)
        try:
            answer = requests.request(method, node.url + path, headers={**node.http.headers,
                                      **kwargs.pop("headers", {})}, timeout=REQUEST_TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            self.statuses[f"{what} error"] += 1
            self._history.add("answer", node=name, method=method, path=path, what=what, error=type(exc).__name__)
            return None
        self.statuses[f"{what} {answer.status_code}"] += 1
        body: Any = answer.text[:300] if not answer.headers.get("Content-Type", "").startswith("application/json") \
            else _brief(answer.json())
        self._history.add("answer", node=name, method=method, path=path, what=what, status=answer.status_code, body=body)
        return answer

    def _loop(self, work: Callable[[random.Random], None], generator: random.Random) -> None:
        while not self._stop.is_set():
            work(generator)
            self._stop.wait(generator.uniform(0.05, 0.4))

    # -- kinds of load --------------------------------------------------------------------------

    def _processes(self, generator: random.Random) -> None:
        told = self.told
        with told.lock:
            mine = [workload_id for workload_id in told.admitted if workload_id.startswith("chaos-p-")
                    and workload_id not in told.deleted]
        if mine and generator.random() < 0.4:
            workload_id = generator.choice(mine)
            origin = told.admitted[workload_id]
            answer = self._call(origin, "DELETE", f"/api/workloads/{workload_id}", "delete")
            if answer is not None and answer.status_code == 200:
                with told.lock:
                    told.deleted.add(workload_id)
            return
        origin, workload_id = generator.choice(NAMES), f"chaos-p-{generator.randrange(16**8):08x}"
        with told.lock:
            told.tried[workload_id] = origin
        answer = self._call(origin, "POST", "/api/workloads", "submit", json={
            "id": workload_id, "type": "process", "config": {"command": "sleep", "args": ["3600"]},
            "requirements": {"cpu": generator.choice((0.1, 0.5, 2.0)), "memory": 2**20}})
        if answer is not None and answer.status_code == 201:
            with told.lock:
                told.admitted[workload_id] = origin

    def _ensure_deployment(self) -> None:
        parent = self._cluster.nodes["parent"]
        if parent.api("GET", f"/api/workloads/{DEPLOYMENT}", fresh_connection=True).status_code == 200:
            return
        answer = parent.submit({"cascade_type": "face"}, {"cpu": 0.5}, workload_type="opencv", replicas=2,
                               id=DEPLOYMENT, fresh_connection=True)
        if answer.status_code != 201:
            raise RuntimeError(f"the chaos deployment could not be made: {answer.text}")

    def _scale(self, generator: random.Random) -> None:
        if generator.random() < 0.15:
            self._call("parent", "PATCH", f"/api/workloads/{DEPLOYMENT}", "scale", json={"replicas": generator.randint(1, 3)})

    def _predict(self, generator: random.Random) -> None:
        expected = generator.choice(tuple(IMAGES))
        answer = self._call("parent", "POST", f"/api/workloads/{DEPLOYMENT}/predict", "predict", data=IMAGES[expected],
                            headers={"Content-Type": "image/png"})
        if answer is None or answer.status_code != 200:
            return
        found = [item["class"] for item in answer.json()["detections"]]
        if (expected == "face") != ("face" in found):
            with self.told.lock:
                self.told.wrong_answers.append(f"a {expected!r} image answered {found} by "
                                               f"{answer.headers.get('X-Cnet-Replica')}")

    def _uploads(self, generator: random.Random) -> None:
        told = self.told
        with told.lock:
            stored = [key for key in told.stored if key not in told.deleted]
        if stored and generator.random() < 0.3:
            key = generator.choice(stored)
            answer = self._call(told.stored[key][0], "DELETE", f"/api/data/{key}", "data delete")
            if answer is not None and answer.status_code == 200:
                with told.lock:
                    told.deleted.add(key)
            return
        name, content = generator.choice(NAMES), os.urandom(generator.randint(1, 4) * 256 * 1024)
        answer = self._call(name, "POST", "/api/workloads", "upload", data={"type": "data", "name": "chaos"},
                            files={"file": ("blob.bin", content, "application/octet-stream")})
        if answer is not None and answer.status_code == 201:
            with told.lock:
                told.stored[answer.json()["data_key"]] = (name, hashlib.sha256(content).hexdigest(),
                                                          hashlib.md5(content).hexdigest())


def _brief(body: Any) -> Any:
    """What the history keeps of an answer: its id, status, node and error, not the whole record."""
    if not isinstance(body, dict):
        return body
    return {name: body[name] for name in ("id", "data_key", "status", "node", "delegated_to", "error", "message")
            if name in body}
