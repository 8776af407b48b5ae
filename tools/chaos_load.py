"""The chaos run's load: clients that keep the cluster busy through its nodes' APIs while faults come and go,
each request and its answer written to the history, and what the cluster was told kept for the invariants.

- processes: submitted at a random node (they run where placement puts them), later stopped or deleted;
- a face detector deployment of replicas at the parent, scaled between 1 and 3, and predictions through the
  parent, each an image whose answer is known (a face, or none);
- data uploads of random bytes at a random node, later deleted, and read back through that node's S3 data
  gateway (boto3, signed) while they are stored;
- model fetches across hops: a YOLO model uploaded as data at the parent is deployed at a child (which fetches
  it from the parent by its hash), predicted through once, deleted, and evicted from the child's cache (so the
  next deployment fetches it again);
- reads at a random node: its workloads (all, or one that was submitted anywhere: a delegated one is read
  through its next hop), nodes, resources, models, data and metrics.
"""
from __future__ import annotations

import collections
import hashlib
import os
import random
import threading
from typing import Any, Callable

import boto3
import botocore.config
import botocore.exceptions
import requests

from tests.support.assets import ASTRONAUT, COFFEE, YOLO_MODEL
from tests.support.load import LoadThreads
from tools.chaos_cluster import NAMES, ChaosCluster
from tools.chaos_history import History, Told

DEPLOYMENT = "chaos-faces"
GATEWAY, BUCKET, ACCESS_KEY, SECRET_KEY = "chaos-gw", "chaos", "chaos", "chaos-gateway-secret"
MODEL_NODES = ("child1", "child2")  # the parent's children: they fetch its data by hash
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
                                       self._uploads, self._gateway_reads, self._models, self._reads)],
                         REQUEST_TIMEOUT_S + 5)
        self._s3: dict[str, Any] = {}  # node name → a boto3 client of its gateway (made again after an error)

    def __enter__(self) -> Load:
        self._ensure_deployment()
        self._ensure_gateways()
        self._ensure_model()
        super().__enter__()
        return self

    def summary(self) -> str:
        return ", ".join(f"{name}: {count}" for name, count in sorted(self.statuses.items()))

    # -- requests -------------------------------------------------------------------------------

    def _call(self, name: str, method: str, path: str, what: str, **kwargs: Any) -> requests.Response | None:
        node = self._cluster.nodes[name]
        workload_id = (kwargs.get("json") or {}).get("id")  # a submission's, which its later lines name too
        about = {"id": workload_id} if workload_id else {}
        self._history.add("request", node=name, method=method, path=path, what=what, **about)
        try:
            answer = requests.request(method, node.url + path, headers={**node.http.headers,
                                      **kwargs.pop("headers", {})}, timeout=REQUEST_TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            self.statuses[f"{what} error"] += 1
            self._history.add("answer", node=name, method=method, path=path, what=what, error=type(exc).__name__,
                              **about)
            return None
        self.statuses[f"{what} {answer.status_code}"] += 1
        body: Any = answer.text[:300] if not answer.headers.get("Content-Type", "").startswith("application/json") \
            else _brief(answer.json())
        self._history.add("answer", node=name, method=method, path=path, what=what, status=answer.status_code,
                          body=body, **about)
        self.told.answered(name, what, workload_id or path, answer.status_code, body)
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
            self._delete(told.admitted[workload_id], workload_id, "delete")
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

    def _reads(self, generator: random.Random) -> None:
        with self.told.lock:
            tried = list(self.told.tried)
        paths = ["/api/workloads", "/api/nodes", "/api/resources", "/api/models", "/api/data", "/metrics",
                 f"/api/workloads/{DEPLOYMENT}"] + ([f"/api/workloads/{generator.choice(tried)}"] if tried else [])
        self._call(generator.choice(NAMES), "GET", generator.choice(paths), "read")

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
            with told.lock:
                told.deleting.add(key)  # a gateway read may now find it gone
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

    def _ensure_gateways(self) -> None:
        """A signed S3 gateway on each node, over its data path, on its host's address."""
        for name in NAMES:
            node = self._cluster.nodes[name]
            if node.api("GET", f"/api/workloads/{GATEWAY}", fresh_connection=True).status_code == 200:
                continue
            answer = node.submit({"base_path": str(self._cluster.data_path(name)), "bucket": BUCKET,
                                  "service_host": self._cluster.hosts[name].address, "access_key": ACCESS_KEY,
                                  "secret_key": SECRET_KEY}, {"cpu": 0.1}, workload_type="datagateway", id=GATEWAY,
                                 fresh_connection=True)
            if answer.status_code != 201:
                raise RuntimeError(f"the chaos gateway on {name} could not be made: {answer.text}")

    def _gateway_reads(self, generator: random.Random) -> None:
        told = self.told
        with told.lock:
            stored = [key for key in told.stored if key not in told.deleting]
        if not stored:
            return
        key = generator.choice(stored)
        name, sha256, md5 = told.stored[key]
        object_key = f"{key}/blob.bin"
        self._history.add("request", node=name, method="GET", path=f"s3://{BUCKET}/{object_key}", what="gateway read")
        try:
            if name not in self._s3:
                endpoint = self._cluster.nodes[name].api("GET", f"/api/workloads/{GATEWAY}",
                                                         fresh_connection=True).json().get("endpoint")
                if not endpoint:
                    raise KeyError(f"{name}'s gateway has no endpoint now")
                self._s3[name] = boto3.client(
                    "s3", endpoint_url=f"{endpoint}/s3", aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                    region_name="us-east-1", config=botocore.config.Config(
                        s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=5,
                        read_timeout=REQUEST_TIMEOUT_S))
            answer = self._s3[name].get_object(Bucket=BUCKET, Key=object_key)
            content = answer["Body"].read()
        except botocore.exceptions.ClientError as exc:
            code = exc.response["Error"]["Code"]
            self.statuses[f"gateway read {code}"] += 1
            self._history.add("answer", node=name, path=object_key, what="gateway read", error=code)
            told.answered(name, "gateway read", f"s3://{BUCKET}/{object_key}",
                          exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"].get("Message"))
            with told.lock:
                if code == "NoSuchKey" and key not in told.deleting:
                    told.wrong_reads.append(f"{key} was stored (201) on {name}; its gateway says NoSuchKey")
            return
        except (botocore.exceptions.BotoCoreError, requests.RequestException, OSError, KeyError, ValueError) as exc:
            self._s3.pop(name, None)  # its node restarting, say: ask for the gateway's endpoint again
            self.statuses["gateway read error"] += 1
            self._history.add("answer", node=name, path=object_key, what="gateway read", error=type(exc).__name__)
            return
        self.statuses["gateway read 200"] += 1
        self._history.add("answer", node=name, path=object_key, what="gateway read", status=200, bytes=len(content))
        etag = answer["ETag"].strip('"')
        if hashlib.sha256(content).hexdigest() != sha256 or etag != md5:
            with told.lock:
                told.wrong_reads.append(f"{key} read through {name}'s gateway is not what was sent (ETag {etag})")

    def _ensure_model(self) -> None:
        """The model, uploaded once at the parent: data there, a model source for its children."""
        if self.told.model_key is not None:
            return
        with open(YOLO_MODEL, "rb") as handle:
            answer = self._cluster.nodes["parent"].api("POST", "/api/workloads", fresh_connection=True,
                                                       files=[("file", ("faces.onnx", handle))])
        if answer.status_code != 201:
            raise RuntimeError(f"the chaos model could not be uploaded: {answer.text}")
        self.told.model_key = answer.json()["data_key"]

    def _models(self, generator: random.Random) -> None:
        """A deployment at a child of the model only the parent has, one prediction, its delete and eviction."""
        told, name = self.told, generator.choice(MODEL_NODES)
        workload_id = f"chaos-m-{generator.randrange(16**8):08x}"
        with told.lock:
            told.tried[workload_id] = name
        answer = self._call(name, "POST", "/api/workloads", "model deploy", json={
            "id": workload_id, "type": "mlmodel", "requirements": {"cpu": 0.5},
            "config": {"model_type": "yolo", "model_path": f"data://{told.model_key}/faces.onnx"}})
        if answer is None or answer.status_code != 201:
            return
        with told.lock:
            told.admitted[workload_id] = name
        sha256 = answer.json()["config"]["model_sha256"]
        predicted = self._call(name, "POST", f"/api/workloads/{workload_id}/predict", "model predict",
                               data=IMAGES["face"], headers={"Content-Type": "image/png"})
        if predicted is not None and predicted.status_code == 200 and not predicted.json()["detections"]:
            with told.lock:
                told.wrong_answers.append(f"{workload_id} found nothing in the astronaut")
        if self._delete(name, workload_id, "model delete"):
            self._call(name, "DELETE", f"/api/models/{sha256}", "model evict")

    def _delete(self, name: str, workload_id: str, what: str) -> bool:
        """DELETE a workload at ``name``; whether it was answered 200. From the request on, the workload may be
        gone, answered or not (an API killed while the scheduler deletes it answers nothing)."""
        with self.told.lock:
            self.told.deleting.add(workload_id)
        answer = self._call(name, "DELETE", f"/api/workloads/{workload_id}", what)
        if answer is None or answer.status_code != 200:
            return False
        with self.told.lock:
            self.told.deleted.add(workload_id)
        return True


def _brief(body: Any) -> Any:
    """What the history keeps of an answer: its id, status, node and error, not the whole record."""
    if not isinstance(body, dict):
        return body
    return {name: body[name] for name in ("id", "data_key", "status", "node", "delegated_to", "error", "message")
            if name in body}
