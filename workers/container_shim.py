"""The supervised program of a container workload: start (or find) the container, stream its logs, wait.

    python -m workers.container_shim SPEC.json

Exits with the container's exit code (137 after a memory kill or SIGKILL). SIGTERM stops the container.
A container of this workload that is already running (the node restarted) is followed, not duplicated.
"""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any

import orjson

LOG_DRAIN_S = 2.0


def _follow(container: Any, stdout: bool, sink: IO[bytes]) -> threading.Thread:
    def pump() -> None:
        try:
            for chunk in container.logs(stream=True, follow=True, stdout=stdout, stderr=not stdout):
                sink.write(chunk)
                sink.flush()
        except Exception as exc:  # the stream may break when the container goes; the exit code still counts
            print(f"container-shim: log stream ended: {exc}", file=sys.stderr, flush=True)
    thread = threading.Thread(target=pump, daemon=True)  # Podman's follow can hang at exit: never join forever
    thread.start()
    return thread


def _container(client: Any, spec: dict[str, Any]) -> Any:
    workload_filter = {"label": f"cnet.workload={spec['labels']['cnet.workload']}"}
    for existing in client.containers.list(all=True, sparse=True, filters=workload_filter):
        if existing.status == "running":
            print(f"container-shim: following running container {existing.short_id}", file=sys.stderr, flush=True)
            return existing
        existing.remove(force=True)  # a finished one from an earlier run: this run starts afresh
    return client.containers.run(
        spec["image"], spec["command"], detach=True, init=True, name=spec["name"], labels=spec["labels"],
        environment=spec["environment"], ports=spec["ports"] or None, volumes=spec["volumes"] or None,
        working_dir=spec["working_dir"], network_mode=spec["network_mode"], nano_cpus=spec["nano_cpus"],
        mem_limit=spec["mem_limit"])


class _StopRequest:
    """SIGTERM can come before the container exists: remember it, and stop the container once it does."""

    def __init__(self, timeout_s: int) -> None:
        self.requested = False
        self.container: Any = None
        self._timeout_s = timeout_s

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self.container is not None:
            self.container.stop(timeout=self._timeout_s)

    def attach(self, container: Any) -> None:
        self.container = container
        if self.requested:
            container.stop(timeout=self._timeout_s)


def main() -> int:
    with open(sys.argv[1], "rb") as handle:
        spec = orjson.loads(handle.read())
    stop = _StopRequest(spec["stop_timeout_s"])
    signal.signal(signal.SIGTERM, stop)
    # Imported after the handler: importing docker takes a moment in which a stop may already come.
    import docker

    from workers.container import CONTAINER_ID_FILE
    client = docker.DockerClient(base_url=spec["engine"], timeout=spec["stop_timeout_s"] + 30)
    container = _container(client, spec)
    print(f"container-shim: container {container.short_id} of image {spec['image']}", file=sys.stderr, flush=True)
    (Path(sys.argv[1]).parent / CONTAINER_ID_FILE).write_text(container.id)
    stop.attach(container)
    followers = [_follow(container, True, sys.stdout.buffer), _follow(container, False, sys.stderr.buffer)]
    code = int(container.wait()["StatusCode"])
    for follower in followers:
        follower.join(LOG_DRAIN_S)
    if code == 137:
        print("container-shim: exit 137: killed (out of memory, or SIGKILL)", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
