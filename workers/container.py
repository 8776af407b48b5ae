"""Executor of ``container`` workloads: a container on a Docker Engine API (Docker or Podman), run by a shim.

The shim (``workers.container_shim``) is the supervised program: it starts the container, streams its
logs, waits, and stops it on SIGTERM, so restarts, logs and the ledger treat it like any workload.
Submission checks that the engine answers (422 naming the address when there is none, 503 when it fails) and that the image exists
(422 naming it, before anything is created). Declared cpu and memory become the container's limits.
"""
from __future__ import annotations

import http.client
import os
import re
import sys
import urllib.parse
from typing import TYPE_CHECKING, Any

import orjson

from cnetd.common.errors import Invalid, Unavailable, Unprocessable
from cnetd.common.unix_http import UnixHTTPConnection
from ledger.records import WorkloadRecord
from workers.base import RESTART_POLICIES, NodeContext, ProgramSpec, config_schema, port_number, reject_unknown_fields
from workers.process import ENV_NAME_PATTERN, ENV_SCHEMA

if TYPE_CHECKING:
    import docker

ENGINE_TIMEOUT_S = 10
PROBE_TIMEOUT_S = 2.0  # what a node offers is probed off any request path; a hung engine offers nothing
CONTAINER_ID_FILE = "container.id"  # written by the shim once its container exists
STOP_TIMEOUT_S = 10
PORT_KEY_PATTERN = r"^[0-9]{1,5}(/(tcp|udp|sctp))?$"  # a container port, as the engine names it
_FIELDS = ("image", "command", "env", "ports", "volumes", "working_dir", "network_mode", "restart")
# An image reference as the engines parse one (distribution's reference grammar): [domain/]path[:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_PATTERN = (rf"^(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?/)?{_PATH_PART}(?:/{_PATH_PART})*"
                 r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,})?$")


def labels(node_id: str, workload_id: str) -> dict[str, str]:
    """Every container of a workload carries these: a restarted node finds its containers by them."""
    return {"cnet.node": node_id, "cnet.workload": workload_id}


def engine(address: str) -> docker.DockerClient:
    """A client of the engine at ``address`` that answered a ping (docker-py loads here: only nodes that run
    containers pay for it)."""
    import docker
    import docker.errors

    if address.startswith("unix://") and not os.path.exists(address.removeprefix("unix://")):
        raise Unprocessable(f"this node has no container engine: nothing at {address} (container.engine)",
                            engine=address)
    try:
        client = docker.DockerClient(base_url=address, timeout=ENGINE_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise Unavailable(f"no container engine answers at {address}: {exc}", engine=address) from None
    return client


def engine_answers(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a Docker Engine API answers ``GET /_ping`` at ``address`` (``unix://`` or ``tcp://``), asked
    without docker-py (which a node's processes do not load)."""
    try:
        if address.startswith("unix://"):
            connection: http.client.HTTPConnection = UnixHTTPConnection(address.removeprefix("unix://"), timeout_s)
        else:
            parsed = urllib.parse.urlsplit(address.replace("tcp://", "http://", 1))
            connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port or 2375, timeout=timeout_s)
        try:
            connection.request("GET", "/_ping")
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except (OSError, ValueError, http.client.HTTPException):
        return False


def remove_labelled(address: str, label: str) -> None:
    """Remove every container carrying ``label`` (``key=value``); with no engine answering there is none."""
    import docker.errors

    try:
        client = engine(address)
    except (Unavailable, Unprocessable):  # no engine, or none answering: no containers to remove
        return
    try:
        for container in client.containers.list(all=True, sparse=True, filters={"label": label}):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass  # removed meanwhile (by the shim replacing a finished one): gone either way
    finally:
        client.close()


def _check_shapes(config: dict[str, Any]) -> None:
    command = config.get("command")
    if command is not None and not (isinstance(command, str) or
                                    (isinstance(command, list) and all(isinstance(a, str) for a in command))):
        raise Invalid("config.command: expected a string or a list of strings")
    env = {} if config.get("env") is None else config["env"]
    if not isinstance(env, dict) or not all(re.fullmatch(ENV_NAME_PATTERN, k) and isinstance(v, str)
                                            for k, v in env.items()):
        raise Invalid("config.env: expected an object of NAME: value strings")
    ports = {} if config.get("ports") is None else config["ports"]
    if not isinstance(ports, dict) or not all(re.fullmatch(PORT_KEY_PATTERN, k) and (v is None or port_number(v))
                                              for k, v in ports.items()):
        raise Invalid("config.ports: expected {\"8080/tcp\": host port (or null for a random one)}")
    volumes = {} if config.get("volumes") is None else config["volumes"]
    if not isinstance(volumes, dict) or not all(
            isinstance(v, dict) and set(v) <= {"bind", "mode"} and isinstance(v.get("bind"), str)
            and v.get("mode", "rw") in ("ro", "rw") for v in volumes.values()):
        raise Invalid("config.volumes: expected {\"/host/path\": {\"bind\": \"/in/container\", \"mode\": \"ro\"|\"rw\"}}")
    for key in ("working_dir", "network_mode"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise Invalid(f"config.{key}: expected a string")
    if config.get("restart", "never") not in RESTART_POLICIES:
        raise Invalid(f"config.restart: expected one of {', '.join(RESTART_POLICIES)}")


class ContainerExecutor:
    type_name = "container"
    serves_a_model = False
    replicable = False
    config_schema = config_schema({
        "image": {"type": "string", "pattern": IMAGE_PATTERN, "maxLength": 255,
                  "description": "an image on this node's engine ([registry/]name[:tag][@digest])"},
        "command": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        "env": ENV_SCHEMA,
        "ports": {"type": ["object", "null"], "propertyNames": {"pattern": PORT_KEY_PATTERN},
                  "additionalProperties": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535}},
        "volumes": {"type": ["object", "null"], "additionalProperties": {
            "type": "object", "required": ["bind"], "additionalProperties": False,
            "properties": {"bind": {"type": "string"}, "mode": {"enum": ["ro", "rw"]}}}},
        "working_dir": {"type": ["string", "null"]}, "network_mode": {"type": ["string", "null"]},
        "restart": {"enum": list(RESTART_POLICIES)}}, required=("image",))

    def feature(self, config: dict[str, Any]) -> str:
        return self.type_name

    def check(self, config: dict[str, Any], node: NodeContext) -> None:
        return None  # validate asked the engine for the image already

    def probe(self, config: dict[str, Any], node: NodeContext) -> None:
        return None  # its image is pulled by the engine when the container starts

    def features(self, node: NodeContext) -> dict[str, str | None]:
        answers = engine_answers(node.container_engine)
        return {self.type_name: None if answers else
                f"no container engine answers at {node.container_engine} (container.engine)"}

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        reject_unknown_fields(config, _FIELDS)
        image = config.get("image")
        if not isinstance(image, str) or not image:
            raise Invalid("config.image: required, an image name")
        if len(image) > 255 or not re.fullmatch(IMAGE_PATTERN, image):
            raise Invalid(f"config.image: {image[:100]!r} is not an image reference ([registry/]name[:tag][@digest], "
                          "lowercase name)")
        _check_shapes(config)
        import docker.errors

        client = engine(node.container_engine)
        try:
            client.images.get(image)  # a missing image would fail only after seconds of pull retries
        except docker.errors.ImageNotFound:
            raise Unprocessable(f"config.image: image {image!r} is not on this node's engine") from None
        except docker.errors.APIError as exc:
            raise Unavailable(f"the container engine at {node.container_engine} failed: {exc}") from None
        finally:
            client.close()
        return {"image": image, "command": config.get("command"), "env": config.get("env") or {},
                "ports": {key: port_number(value) for key, value in (config.get("ports") or {}).items()},
                "volumes": config.get("volumes") or {},
                "working_dir": config.get("working_dir"), "network_mode": config.get("network_mode"),
                "restart": config.get("restart", "never")}

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        config = record.config
        spec = {"engine": node.container_engine, "image": config["image"], "command": config["command"],
                "environment": config["env"], "ports": config["ports"], "volumes": config["volumes"],
                "working_dir": config["working_dir"], "network_mode": config["network_mode"],
                "labels": labels(node.node_id, record.id), "name": f"cnet-{node.node_id}-{record.id}",
                "nano_cpus": int(record.requirements.cpu * 1e9) or None,
                "mem_limit": record.requirements.memory or None, "stop_timeout_s": STOP_TIMEOUT_S}
        folder = node.paths.workload_dir(record.id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "container.json").write_bytes(orjson.dumps(spec))
        published = [port for port in config["ports"].values() if port]
        return ProgramSpec(argv=[sys.executable, "-m", "workers.container_shim", str(folder / "container.json")],
                           env={}, cwd=str(folder), restart_policy=config["restart"],
                           stop_timeout_s=STOP_TIMEOUT_S + 5,
                           endpoint=f"http://127.0.0.1:{published[0]}" if published else None)

    def facts(self, record: WorkloadRecord, node: NodeContext) -> dict[str, Any]:
        try:
            return {"container_id": (node.paths.workload_dir(record.id) / CONTAINER_ID_FILE).read_text()}
        except FileNotFoundError:
            return {"container_id": None}  # not created yet (or never will be: the record says why)

    def shown_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return config

    def cleanup(self, record: WorkloadRecord, node: NodeContext) -> None:
        """Remove the workload's containers (kept until now so that they can be inspected)."""
        remove_labelled(node.container_engine, f"cnet.workload={record.id}")
