"""Heartbeat fan-in: children send their heartbeats up to the parent over the connection they hold to it.

A child connects one XSUB socket to its parent's mesh endpoint (the parent's XPUB): through it the child
subscribes to the parent's heartbeats, and sends its own upstream, where the parent's XPUB hands them to the
register with the subscriptions. The parent holds no socket per child, only the children's connections, and
reads all of them from one socket.

The sender is checked per message by a signed field: at registration the parent answers a key of the child's
own, ``HMAC(parent secret, node id)``, and the child appends ``HMAC(key, heartbeat)`` to each heartbeat it sends
up. The parent derives the key again from the node id the heartbeat names, so it stores nothing per child. Not
ZeroMQ's peer address: nodes that share an address (on one host, behind one NAT) could speak for each other.
Not the CURVE key: it is the cluster's, the same for every node.
"""
from __future__ import annotations

import functools
import hashlib
import hmac

from mesh.messages import HEARTBEAT_TOPIC, Heartbeat, MalformedMessage

SUBSCRIBE = b"\x01"  # the first byte of a subscription message (XPUB hands these to its reader too)
UNSUBSCRIBE = b"\x00"


class WrongSender(MalformedMessage):
    """A heartbeat sent up whose signature is not that of the node it names."""

    reason = "wrong_sender"


@functools.lru_cache(maxsize=65536)  # a parent checks each child's heartbeats every period: derived once each
def child_key(secret: bytes, node_id: str) -> bytes:
    """The key a parent with ``secret`` gives the child ``node_id`` at registration."""
    return hmac.new(secret, b"cnet fan-in\0" + node_id.encode(), hashlib.sha256).digest()


def signed(frames: list[bytes], key: bytes) -> list[bytes]:
    """A heartbeat's frames (``Heartbeat.encode``) with the signature frame the parent checks. In hex: an XPUB
    takes any frame sent up that starts with byte 0 or 1 for a (un)subscription, the later frames of a message
    too (libzmq without ZMQ_ONLY_FIRST_SUBSCRIBE), and a raw digest does one time in 128."""
    return [*frames, _signature(key, frames[1])]


def _signature(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).hexdigest().encode()


def is_subscription(frames: list[bytes]) -> bool:
    """Whether an XPUB's message is a (un)subscription rather than a message sent up."""
    return len(frames) == 1 and frames[0][:1] in (SUBSCRIBE, UNSUBSCRIBE)


def verified(frames: list[bytes], secret: bytes) -> Heartbeat:
    """The heartbeat sent up in ``frames``, if it is signed with the key of the node it names; else
    ``WrongSender`` (or ``MalformedMessage`` for frames that are no signed heartbeat)."""
    if len(frames) != 3 or frames[0] != HEARTBEAT_TOPIC:
        raise MalformedMessage("not a signed heartbeat")
    beat = Heartbeat.decode(frames[:2])
    if not hmac.compare_digest(_signature(child_key(secret, beat.node_id), frames[1]), frames[2]):
        raise WrongSender(f"a heartbeat in the name of {beat.node_id[:100]!r} is not signed with its key")
    return beat
