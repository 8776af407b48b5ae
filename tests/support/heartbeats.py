"""A well-formed heartbeat in any node's name, for tests that speak the mesh protocol themselves (forged,
malformed-neighbour and fan-in tests, and the simulated children)."""
from __future__ import annotations

from mesh.messages import Heartbeat


def heartbeat(node_id: str, free: dict[str, float], seq: int = 1, api_url: str = "http://127.0.0.1:9",
              mesh_endpoint: str = "tcp://127.0.0.1:9") -> Heartbeat:
    """``node_id`` announcing ``free`` (its capacity, none of it allocated), alone in its subtree."""
    idle = {kind: 0 for kind in free}
    return Heartbeat(node_id=node_id, seq=seq, boot_id="b", api_url=api_url, mesh_endpoint=mesh_endpoint,
                     capacity=free, allocated=idle, available=free, workloads={}, ledger_version=1,
                     subtree={"nodes": 1, "online": 1, "capacity": free, "allocated": idle, "available_max": free})
