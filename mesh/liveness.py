"""Liveness of mesh connections: ZMTP heartbeats, quick reconnects and TCP keep-alive, from the heartbeat period.

A partition leaves TCP connections half-open: with no RST, a side that sent meanwhile waits out TCP's
retransmission back-off (seen: 8–25 s after a 20–30 s cut), and a connect sent into the partition waits
for the kernel's connect timeout (minutes). ZMTP heartbeats end a connection that stops answering after
``ZMTP_TIMEOUT_INTERVALS`` intervals; a connect attempt gives up after one period; reconnects are tried at
most ``RECONNECT_MAX_PERIODS`` apart; so each side is connected again within a period of the heal, and the
publisher's XPUB sends a heartbeat as soon as the subscription arrives.
"""
from __future__ import annotations

import zmq

ZMTP_INTERVAL_PERIODS = 0.5  # a ZMTP PING this often (in heartbeat periods) on a subscriber's connection
UPLINK_INTERVAL_PERIODS = None  # a child's connection to its parent: no PINGs (the parent would answer each of
# thousands); the parent's own heartbeats prove it, and the register connects again after a silence
PUBLISHER_INTERVAL_PERIODS = None  # the mesh endpoint sends no PINGs either: libzmq cancels a PING's timeout
# timer by a linear scan of every timer of its IO thread, on the next message from that peer (at 10,000
# children, 58% of the IO thread: perf, std::_Rb_tree_increment). A dead child's connection is ended by the
# kernel instead: the parent's heartbeats to it go unacknowledged for PUBLISHER_UNACKNOWLEDGED_PERIODS.
PUBLISHER_UNACKNOWLEDGED_PERIODS = 15.0
ZMTP_TIMEOUT_INTERVALS = 3  # no traffic for this many intervals after a PING: the connection is dead
RECONNECT_MS = 100
RECONNECT_MAX_PERIODS = 0.5
CONNECT_TIMEOUT_PERIODS = 1.0
TCP_KEEPALIVE_IDLE_S, TCP_KEEPALIVE_INTERVAL_S, TCP_KEEPALIVE_COUNT = 5, 2, 3  # the kernel's own backstop


def keep_mesh_socket_alive(socket: zmq.Socket, heartbeat_period_s: float,
                           interval_periods: float | None = ZMTP_INTERVAL_PERIODS,
                           unacknowledged_periods: float | None = None) -> None:
    """Set the liveness options of a mesh socket (before it binds or connects): a PING each
    ``interval_periods`` (None: none); a connection whose data goes unacknowledged for
    ``unacknowledged_periods`` is ended by the kernel (TCP_USER_TIMEOUT). A parent pays for its children's
    PINGs and its own to them, so it gets none from them and sends none; a partition longer than either
    timeout still ends the connection during the partition."""
    period_ms = heartbeat_period_s * 1000
    if interval_periods is not None:
        interval_ms = max(100, int(period_ms * interval_periods))
        socket.setsockopt(zmq.HEARTBEAT_IVL, interval_ms)
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, interval_ms * ZMTP_TIMEOUT_INTERVALS)
    if unacknowledged_periods is not None:
        socket.setsockopt(zmq.TCP_MAXRT, int(period_ms * unacknowledged_periods))
    socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, max(RECONNECT_MS, int(period_ms * RECONNECT_MAX_PERIODS)))
    socket.setsockopt(zmq.CONNECT_TIMEOUT, max(500, int(period_ms * CONNECT_TIMEOUT_PERIODS)))
    socket.setsockopt(zmq.TCP_KEEPALIVE, 1)
    socket.setsockopt(zmq.TCP_KEEPALIVE_IDLE, TCP_KEEPALIVE_IDLE_S)
    socket.setsockopt(zmq.TCP_KEEPALIVE_INTVL, TCP_KEEPALIVE_INTERVAL_S)
    socket.setsockopt(zmq.TCP_KEEPALIVE_CNT, TCP_KEEPALIVE_COUNT)
