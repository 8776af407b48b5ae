"""The version of what nodes say to each other, carried by every message that crosses nodes: heartbeats
(``v`` and ``minor`` in the message), and every node-to-node HTTP request (registration, forwards, settling,
artifact fetches, the replica relay) in the ``X-CNET-Protocol`` header, with the agent's own version beside
it.

The skew policy (docs/skew-policy.md): nodes whose protocol majors agree work together, whatever their
minors; a minor adds fields, which receivers that do not know them ignore. A major changes only when an
old node could not understand a new message; such a neighbour is refused (at registration, 409 naming both
versions) or marked incompatible (a peer), never silently dropped.
"""
from __future__ import annotations

import re

from cnetd import __version__

PROTOCOL_MAJOR = 1
# 1.0: the protocol before it was versioned (it carried v: 1 alone); 1.1: minor, agent; 1.2: heartbeat fan-in
# (a child that says fan_in at registration gets a key and sends its heartbeats up: mesh/fanin.py)
PROTOCOL_MINOR = 2
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
AGENT_VERSION = __version__
PROTOCOL_HEADER, AGENT_HEADER = "X-CNET-Protocol", "X-CNET-Agent"
UNVERSIONED = "1.0"  # what a node that says nothing speaks: the last protocol before versions were sent
_VERSION = re.compile(r"^([0-9]{1,6})\.([0-9]{1,6})$")


def protocol_headers() -> dict[str, str]:
    """The headers every node-to-node request and every API answer carries."""
    return {PROTOCOL_HEADER: PROTOCOL_VERSION, AGENT_HEADER: AGENT_VERSION}


def major_of(version: str | None) -> int | None:
    """The major of a ``MAJOR.MINOR`` protocol version (None: not one)."""
    matched = _VERSION.match(version if version is not None else UNVERSIONED)
    return int(matched.group(1)) if matched else None


def compatible(version: str | None) -> bool:
    """Whether a node speaking ``version`` (None: it did not say) and this one understand each other."""
    return major_of(version) == PROTOCOL_MAJOR


def incompatibility(version: str | None, agent: str | None) -> str:
    """What to tell an operator about a neighbour that speaks another major."""
    return (f"incompatible version: this node speaks protocol {PROTOCOL_VERSION} (agent {AGENT_VERSION}), "
            f"the other protocol {(version or UNVERSIONED)[:20]} (agent {(agent or 'unknown')[:40]}); upgrade one "
            "of them to the other's major (docs/skew-policy.md)")
