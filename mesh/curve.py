"""Optional ZeroMQ CURVE on the mesh: every node of a cluster holds the cluster's key pair.

A node's heartbeat publisher is a CURVE server with the cluster key, and its ZAP handler admits only
subscribers that prove they hold the cluster key too, so a process without it reads nothing. Subscribers
require the publisher to prove the same key, so a forged publisher cannot inject heartbeats.
"""
from __future__ import annotations

from dataclasses import dataclass

import zmq

Z85_KEY_LENGTH = 40


@dataclass(frozen=True)
class ClusterKeys:
    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> ClusterKeys:
        public, secret = zmq.curve_keypair()
        return cls(public, secret)

    @classmethod
    def parse(cls, public: str, secret: str) -> ClusterKeys:
        """Both keys in Z85 (what ``cnetd keygen`` prints); ValueError unless they form a pair."""
        if not all(isinstance(key, str) and len(key) == Z85_KEY_LENGTH for key in (public, secret)):
            raise ValueError(f"CURVE keys are {Z85_KEY_LENGTH} Z85 characters; make a pair with `cnetd keygen`")
        try:
            derived = zmq.curve_public(secret.encode())
        except (ValueError, zmq.ZMQError):
            raise ValueError("secret_key is not a Z85 CURVE key") from None
        if derived != public.encode():
            raise ValueError("public_key and secret_key are not one pair")
        return cls(public.encode(), secret.encode())


def serve(socket: zmq.Socket, keys: ClusterKeys) -> None:
    """Make a (not yet bound) publisher a CURVE server holding the cluster key."""
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_server = True


def join(socket: zmq.Socket, keys: ClusterKeys) -> None:
    """Make a (not yet connected) subscriber accept only publishers holding the cluster key, proving its own."""
    socket.curve_serverkey = keys.public
    socket.curve_publickey = keys.public
    socket.curve_secretkey = keys.secret


class ClusterAuthenticator:
    """ZAP handler of this process's context: a CURVE client is admitted only with the cluster's key."""

    def __init__(self, context: zmq.Context, keys: ClusterKeys) -> None:
        # Imported here: it brings asyncio, which a node without CURVE never needs (a few MiB in each process).
        from zmq.auth.thread import ThreadAuthenticator
        self._keys = keys
        self._thread = ThreadAuthenticator(context)
        self._thread.start()
        self._thread.configure_curve_callback(domain="*", credentials_provider=self)

    def callback(self, domain: str, client_key: bytes) -> bool:
        return client_key == self._keys.public
