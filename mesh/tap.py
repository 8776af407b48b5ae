"""``cnet-tap``: prints one line per heartbeat published on a node's mesh endpoint (the monitoring tool).

    cnet-tap tcp://127.0.0.1:9080        # a mesh endpoint
    cnet-tap http://127.0.0.1:8080       # a node's API: its mesh endpoint is looked up
"""
from __future__ import annotations

import argparse
import sys
import time

import orjson
import yaml
import zmq

from cnetd.common.httpclient import TimedOut, Unreachable, call
from mesh import curve
from mesh.curve import ClusterKeys
from mesh.messages import HEARTBEAT_TOPIC, Heartbeat, MalformedMessage

GIB = 2**30


def cluster_keys(config_path: str) -> ClusterKeys | None:
    """The ``mesh.curve`` pair of a node config (None: the cluster has no CURVE)."""
    with open(config_path) as handle:
        pair = ((yaml.safe_load(handle) or {}).get("mesh") or {}).get("curve")
    return ClusterKeys.parse(pair["public_key"], pair["secret_key"]) if pair else None


def resolve(target: str) -> str:
    """The mesh endpoint for a tcp:// endpoint or a node's http:// API address."""
    if target.startswith("tcp://"):
        return target
    if target.startswith("http://"):
        status, body = call("GET", f"{target.rstrip('/')}/api/health", timeout_s=5)
        if status != 200 or not isinstance(body, dict) or "mesh_endpoint" not in body:
            raise ValueError(f"{target} did not answer /api/health with a mesh endpoint (HTTP {status})")
        return body["mesh_endpoint"]
    raise ValueError(f"expected tcp://HOST:PORT or http://HOST:PORT, got {target!r}")


def describe(beat: Heartbeat, received_at: float) -> str:
    available, capacity = beat.available, beat.capacity
    counts = ", ".join(f"{status}={count}" for status, count in sorted(beat.workloads.items()))
    return (f"{time.strftime('%H:%M:%S', time.localtime(received_at))} node={beat.node_id} seq={beat.seq} "
            f"age={(received_at - beat.sent_at) * 1000:.1f}ms "
            f"free cpu {available.get('cpu', 0):g} of {capacity.get('cpu', 0):g}, "
            f"memory {available.get('memory', 0) / GIB:.1f} of {capacity.get('memory', 0) / GIB:.1f} GiB, "
            f"gpu {available.get('gpu', 0):g} of {capacity.get('gpu', 0):g}; "
            f"workloads={sum(beat.workloads.values())}" + (f" ({counts})" if counts else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnet-tap", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="tcp://HOST:MESHPORT or http://HOST:APIPORT")
    parser.add_argument("--count", type=int, default=0, help="exit after this many heartbeats (0: run until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="print each heartbeat as JSON")
    parser.add_argument("--config", help="a node config whose mesh.curve keys to use (a CURVE cluster)")
    args = parser.parse_args(argv)
    try:
        endpoint = resolve(args.target)
    except (ValueError, Unreachable, TimedOut) as exc:
        print(f"cnet-tap: {exc}", file=sys.stderr)
        return 2
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    if args.config:
        try:
            keys = cluster_keys(args.config)
        except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"cnet-tap: cannot read mesh.curve from {args.config}: {exc!r}", file=sys.stderr)
            return 2
        if keys is not None:
            curve.join(socket, keys)
    socket.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_TOPIC)
    socket.connect(endpoint)
    print(f"cnet-tap: listening on {endpoint} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    seen = malformed = 0
    try:
        while not args.count or seen < args.count:
            frames = socket.recv_multipart()
            try:
                beat = Heartbeat.decode(frames)
            except MalformedMessage as exc:
                malformed += 1
                print(f"cnet-tap: dropped malformed message: {exc}", file=sys.stderr)
                continue
            seen += 1
            print(orjson.dumps(beat.to_dict()).decode() if args.json else describe(beat, time.time()), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        socket.close()
    print(f"cnet-tap: {seen} heartbeat(s), {malformed} malformed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
