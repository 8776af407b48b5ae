"""Relayed requests (a predict through the next hop) reach an https node over TLS with its certificate
checked, and the cluster's token they carry never crosses the network in the clear; a service that dies with
the request, on its kept connection and on a new one, is ``Unreachable`` (which the balancer takes as a
replica that could not serve), not an error of the relay's own."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from cnetd.common.httpclient import Unreachable
from cnetd.common.relay import relay
from tests.support.tls import tls_recorder

TOKEN = {"Authorization": "Bearer cluster-secret"}


def test_an_https_node_is_relayed_to_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_recorder(tmp_path) as (server, certificate):
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
        url = server.url.replace("http://", "https://")
        first = relay("GET", f"{url}/v2/models/m", None, TOKEN, timeout_s=10)
        again = relay("GET", f"{url}/v2/models/m", None, TOKEN, timeout_s=10)  # on the kept connection
    assert (first.status, first.data) == (again.status, again.data) == (200, b'{"status": "ok"}')
    assert server.seen == [("/v2/models/m", TOKEN["Authorization"])] * 2


def test_an_untrusted_certificate_stops_the_relay_before_it_sends(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_recorder(tmp_path) as (server, _):
        monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent")
        with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED") as refused:
            relay("GET", f"{server.url.replace('http://', 'https://')}/v2/models/m", None, TOKEN, timeout_s=10)
    assert refused.value.delivered is False
    assert server.seen == []


def test_the_token_never_goes_in_the_clear_to_an_https_address() -> None:
    """What an https URL's port receives is a TLS handshake, never the request (control: a relay that spoke
    plain HTTP to it would hand the listener the token)."""
    listener = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def record_one() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(5)
            received.extend(connection.recv(65536))
    recorder = threading.Thread(target=record_one)
    recorder.start()
    try:
        with pytest.raises(Unreachable):
            relay("GET", f"https://127.0.0.1:{listener.getsockname()[1]}/v2/models/m", None, TOKEN, timeout_s=10)
    finally:
        recorder.join(10)
        listener.close()
    assert received[:1] == b"\x16"  # a TLS record: the handshake
    assert b"cluster-secret" not in received and b"GET " not in received


@pytest.mark.parametrize("port_closed, reason, delivered", [
    (False, "closed|reset", True),  # the new connection is taken, the request read, and closed unanswered (or reset)
    (True, "refused", False),  # the service's port is closed: the new connection cannot be made
])
def test_a_service_that_dies_with_the_request_is_unreachable_also_when_it_is_sent_again(
        port_closed: bool, reason: str, delivered: bool) -> None:
    """A replica killed while a request was on its way: its kept connection is closed as the request goes,
    and the request sent again on a new connection finds it gone too. That second failure went out of the
    relay raw (http.client's RemoteDisconnected, or the relay's own _NotSent), and the node's API answered 500
    "internal error" (two chaos runs) rather than trying another replica."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/predict"

    def serve() -> None:
        first, _ = listener.accept()
        with first:  # one answer, kept alive; then the next request is read and the connection closed
            first.settimeout(5)
            first.recv(65536)
            first.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            if port_closed:
                listener.close()
            first.recv(65536)
        if not port_closed:
            again, _ = listener.accept()
            with again:  # the request sent again: read, and closed unanswered
                again.settimeout(5)
                again.recv(65536)
    server = threading.Thread(target=serve)
    server.start()
    try:
        assert relay("POST", url, b"x", {}, timeout_s=10).data == b"ok"
        with pytest.raises(Unreachable, match=reason) as lost:
            relay("POST", url, b"x", {}, timeout_s=10)
    finally:
        server.join(10)
        listener.close()
    assert lost.value.delivered is delivered  # delivered: it reached the service, acted on or not
